"""Failures a test arms on a named in-memory fake, as an unreachable dependency would fail.

The fakes of the orchestrator's and the operator's ports (their ``memory``
modules) each hold a :class:`Faults` and call :meth:`Faults.check` with the
method's name before they change anything.
"""

from __future__ import annotations


class Faults:
    """Errors armed for the next calls of a fake's methods (a dependency failing)."""

    def __init__(self) -> None:
        self._armed: dict[str, list[Exception]] = {}

    def arm(self, method: str, error: Exception, *, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` raise ``error`` and change nothing."""
        self._armed.setdefault(method, []).extend([error] * times)

    def check(self, method: str) -> None:
        """Raise the error armed next for ``method``, if any."""
        armed = self._armed.get(method)
        if armed:
            raise armed.pop(0)
