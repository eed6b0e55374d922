"""MongoDB for the orchestrator: the shared client and failure mapping (dtpoc_common.mongo)."""

from __future__ import annotations

from pymongo import AsyncMongoClient

from dtpoc_common import mongo
from dtpoc_common.mongo import Document, unavailable_on_failure

__all__ = ["Document", "open_client", "ping", "unavailable_on_failure"]


def open_client(uri: str, *, timeout_ms: int) -> AsyncMongoClient[Document]:
    """The shared client, named ``dtpoc-orchestrator``."""
    return mongo.open_client(uri, timeout_ms=timeout_ms, appname="dtpoc-orchestrator")


async def ping(client: AsyncMongoClient[Document]) -> None:
    with unavailable_on_failure("ping"):
        await client.admin.command("ping")
