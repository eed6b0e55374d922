"""What readiness waits ask a server: the status of a GET on its health URL.

A server that does not answer yet (refused, reset, timed out) is not ready:
status 0, never an exception, so a probe can go straight into
:func:`dtpoc_local.waiting.wait_for`.
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request


def http_status(url: str, *, context: ssl.SSLContext | None = None) -> int:
    """The status of ``GET url`` on a local or node address; 0 without an answer.

    ``context`` is for an https URL: whom to trust, and the client certificate, if any.
    """
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:  # noqa: S310 - local
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, ConnectionError, TimeoutError, ssl.SSLError):
        return 0


def http_ok(url: str, *, context: ssl.SSLContext | None = None) -> bool:
    """Whether ``GET url`` answers 200."""
    return http_status(url, context=context) == 200
