"""The one way a dtpoc process opens MongoDB and says it cannot be reached.

Files, the orchestrator and the operator's local store open their client
here, with the same timeouts, so "the database is down" reaches every caller
the same way: UNAVAILABLE with a message that says so, after at most the
configured timeout, never a hang or an INTERNAL with a driver traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pymongo.errors
from pymongo import AsyncMongoClient

from dtpoc_common import errors
from dtpoc_common import logging as dlog

log = dlog.get_logger(__name__)

Document = dict[str, Any]

#: What a caller is told when the database cannot be used.
DATABASE_UNREACHABLE = "database unreachable"


def open_client(uri: str, *, timeout_ms: int, appname: str) -> AsyncMongoClient[Document]:
    """A client that gives up on an unreachable server after ``timeout_ms``.

    Socket reads get twice as long (at least 10 s) so that a slow but living
    server answers a large read. Dates come back timezone-aware (UTC).
    """
    return AsyncMongoClient(
        uri,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=max(timeout_ms * 2, 10_000),
        tz_aware=True,
        appname=appname,
    )


@contextlib.contextmanager
def unavailable_on_failure(action: str, *, message: str = DATABASE_UNREACHABLE) -> Iterator[None]:
    """Turn "cannot reach / use the database" into :class:`errors.Unavailable`.

    A duplicate key is an answer the caller handles itself, so it passes
    through; every other driver error is logged (``action`` names the call)
    and answered with ``message``.
    """
    try:
        yield
    except pymongo.errors.DuplicateKeyError:
        raise
    except pymongo.errors.PyMongoError as exc:
        log.warning(
            "database call failed",
            action=action,
            error_type=type(exc).__name__,
            error=str(exc)[:300],
        )
        raise errors.Unavailable(message) from exc
