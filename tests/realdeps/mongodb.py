"""The ``mongodb_uri`` fixture: a real MongoDB-protocol server for the test session.

Chosen in this order:

1. ``DTPOC_TEST_MONGODB_URI`` if set: your own MongoDB (or replica set).
2. A MongoDB container via testcontainers, if that package is installed and a
   Docker engine answers.
3. FerretDB (SQLite backend) from the binary cache, built if missing.

Tests isolate themselves by database name: ``mongo_db_name`` gives each test a
fresh one and drops it afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pymongo
import pytest

from dtpoc_local import ferretdb
from dtpoc_local.databases import unique_db_name

ENV_URI = "DTPOC_TEST_MONGODB_URI"


def _docker_answers() -> bool:
    """True if testcontainers is importable and a Docker engine answers a ping."""
    try:
        import docker  # type: ignore[import-untyped]  # optional
    except ImportError:
        return False
    if not os.environ.get("DOCKER_HOST") and not os.path.exists("/var/run/docker.sock"):
        return False
    try:
        docker.from_env(timeout=3).ping()
    except Exception:  # docker raises many unrelated types for "no engine"
        return False
    return True


def _mongodb_from_testcontainers() -> Iterator[str] | None:
    """A MongoDB container's URI (as a one-item generator), or None without Docker."""
    if not _docker_answers():
        return None
    try:
        from testcontainers.community.mongodb import MongoDbContainer  # optional
    except ImportError:
        try:
            from testcontainers.mongodb import MongoDbContainer  # older testcontainers
        except ImportError:
            return None

    def run() -> Iterator[str]:
        with MongoDbContainer("mongo:7") as container:
            yield str(container.get_connection_url())

    return run()


@pytest.fixture(scope="session")
def mongodb_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URI of a MongoDB-protocol server for this session (see module docstring)."""
    external = os.environ.get(ENV_URI)
    if external:
        yield external
        return
    container = _mongodb_from_testcontainers()
    if container is not None:
        yield from container
        return
    server = ferretdb.start_ferretdb(workdir=tmp_path_factory.mktemp("ferretdb"))
    try:
        yield server.uri
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mongo_client(mongodb_uri: str) -> Iterator[pymongo.MongoClient[dict[str, Any]]]:
    """A pymongo client on ``mongodb_uri``, shared by the session."""
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongodb_uri)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def mongo_db_name(mongo_client: pymongo.MongoClient[dict[str, Any]]) -> Iterator[str]:
    """A fresh database name for one test; the database is dropped afterwards."""
    name = unique_db_name()
    yield name
    mongo_client.drop_database(name)
