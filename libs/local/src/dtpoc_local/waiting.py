"""Wait for a condition with a deadline, the only way tests here wait.

Every wait in the real-dependency fixtures (and in tests that use them) polls
a condition until it holds or a deadline passes; nothing sleeps and hopes.
The failure names what was awaited, so a red test says which step stalled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The awaited condition did not hold before the deadline.

    An ``AssertionError`` so that pytest reports it as a test failure, not as
    an error in the test's machinery.
    """


def wait_for(
    predicate: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
    max_interval: float = 0.5,
    details: Callable[[], str] | None = None,
) -> T:
    """Call ``predicate`` until it returns a truthy value, and return that value.

    Polls at ``interval`` seconds, backing off to ``max_interval``. Exceptions
    raised by ``predicate`` propagate at once: a probe that may fail while a
    server is still starting should catch its own errors and return False.

    On timeout raises :class:`WaitTimeout` whose message names ``what`` and,
    if given, the text of ``details()`` (e.g. the last observed state or a
    server's log tail).
    """
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        result = predicate()
        if result:
            return result
        now = time.monotonic()
        if now >= deadline:
            message = f"timed out after {timeout:g}s waiting for {what}"
            if details is not None:
                message += "\n" + details()
            raise WaitTimeout(message)
        time.sleep(min(delay, deadline - now))
        delay = min(delay * 1.5, max_interval)
