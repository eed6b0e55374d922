"""MongoDB client and the one place its failures become UNAVAILABLE."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pymongo
import pymongo.errors
from pymongo import AsyncMongoClient

from dtpoc_common import errors
from dtpoc_common import logging as dlog
from dtpoc_orchestrator.errors import DATABASE_UNREACHABLE

log = dlog.get_logger(__name__)

Document = dict[str, Any]


def open_client(uri: str, *, timeout_ms: int) -> AsyncMongoClient[Document]:
    """A client that gives up on an unreachable server after ``timeout_ms``."""
    return AsyncMongoClient(
        uri,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=max(timeout_ms * 2, 10_000),
        tz_aware=True,
    )


@contextlib.contextmanager
def unavailable_on_failure(action: str) -> Iterator[None]:
    """Turn "cannot reach / use the database" into UNAVAILABLE "database unreachable".

    Duplicate keys and other answers the caller handles itself pass through.
    """
    try:
        yield
    except pymongo.errors.DuplicateKeyError:
        raise
    except (pymongo.errors.ConnectionFailure, pymongo.errors.OperationFailure) as exc:
        log.warning("database call failed", action=action, error=str(exc)[:300])
        raise errors.Unavailable(DATABASE_UNREACHABLE) from exc
    except pymongo.errors.PyMongoError as exc:
        log.warning("database call failed", action=action, error=str(exc)[:300])
        raise errors.Unavailable(DATABASE_UNREACHABLE) from exc


async def ping(client: AsyncMongoClient[Document]) -> None:
    with unavailable_on_failure("ping"):
        await client.admin.command("ping")
