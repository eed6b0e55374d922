"""Database names for servers started side by side on one MongoDB, and dropping them.

Tests and benches start many servers against one MongoDB-protocol server;
each gets a database no other uses, dropped afterwards (FerretDB keeps each
database as a file, and big uploads add up).
"""

from __future__ import annotations

import contextlib
from uuid import uuid4

import pymongo
import pymongo.errors


def unique_db_name(prefix: str = "t") -> str:
    """A database name no other server or test uses (MongoDB allows up to 63 bytes)."""
    return f"{prefix}_{uuid4().hex[:12]}"


def drop_databases(mongodb_uri: str, names: set[str]) -> None:
    """Drop the named databases, ignoring a server that is gone already."""
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
        mongodb_uri, serverSelectionTimeoutMS=2000
    )
    try:
        for name in names:
            with contextlib.suppress(pymongo.errors.PyMongoError):
                client.drop_database(name)
    finally:
        client.close()
