"""The shared MongoDB client: an unreachable server is UNAVAILABLE with a plain message, soon."""

from __future__ import annotations

import asyncio
import socket

import pymongo.errors
import pytest

from dtpoc_common import errors, mongo


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_server_is_unavailable_with_the_rooms_message() -> None:
    async def ping() -> None:
        client = mongo.open_client(
            f"mongodb://127.0.0.1:{_closed_port()}/", timeout_ms=300, appname="dtpoc-test"
        )
        try:
            with mongo.unavailable_on_failure("ping", message="the test database is down"):
                await client.admin.command("ping")
        finally:
            await client.close()

    with pytest.raises(errors.Unavailable) as raised:
        asyncio.run(ping())
    assert raised.value.message == "the test database is down"
    assert isinstance(raised.value.__cause__, pymongo.errors.ServerSelectionTimeoutError)


def test_the_default_message_and_duplicate_keys_pass_through() -> None:
    unavailable = pytest.raises(errors.Unavailable, match="database unreachable")
    with unavailable, mongo.unavailable_on_failure("write"):
        raise pymongo.errors.OperationFailure("not authorized", code=13)
    duplicate = pytest.raises(pymongo.errors.DuplicateKeyError)
    with duplicate, mongo.unavailable_on_failure("insert"):
        raise pymongo.errors.DuplicateKeyError("E11000 duplicate key")
