"""Fixtures of the Files tests: a client of ``files_server`` and its database."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymongo
import pytest
from pymongo.database import Database

from dtpoc.files.v1alpha1 import files_pb2_grpc
from dtpoc_common import grpcauth
from dtpoc_local.servers.files import FilesServer
from tests.files import helpers


@pytest.fixture
def files(files_server: FilesServer) -> Iterator[files_pb2_grpc.FilesServiceStub]:
    """A gRPC client of ``files_server``."""
    with helpers.channel(files_server.address) as channel:
        yield files_pb2_grpc.FilesServiceStub(channel)


@pytest.fixture
def operator_files(files_server: FilesServer) -> Iterator[files_pb2_grpc.FilesServiceStub]:
    """A client of ``files_server`` with the operator's token: the one that stores outputs."""
    with helpers.channel(files_server.address, as_=grpcauth.OPERATOR) as channel:
        yield files_pb2_grpc.FilesServiceStub(channel)


@pytest.fixture
def files_db(
    mongo_client: pymongo.MongoClient[dict[str, Any]], files_server: FilesServer
) -> Database[dict[str, Any]]:
    """The database ``files_server`` stores in, to check what it really wrote."""
    return mongo_client[files_server.database]
