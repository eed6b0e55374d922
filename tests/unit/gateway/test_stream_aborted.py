"""A backend stream that fails after the answer's headers cuts the connection.

Once a download's or a log's headers are sent, an error can no longer be a
4xx/5xx answer; the body raises :class:`httperrors.StreamAborted` so the
server cuts the connection: a body that ended cleanly would pass for the
whole file or log. Both endpoints (download, text stream) share that rule.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import grpc
import pytest
from starlette.requests import Request

from dtpoc.files.v1alpha1 import files_pb2
from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2
from dtpoc_gateway import catalog, download, httperrors, textstream


class Call:
    """The part of a grpc.aio streaming call the endpoints read: scripted messages,
    then an error or the end."""

    def __init__(self, *items: Any) -> None:
        self._items = list(items)
        self.cancelled = False

    async def read(self) -> Any:
        item = self._items.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    def done(self) -> bool:
        return False

    def cancel(self) -> None:
        self.cancelled = True


METHOD = cast(catalog.Method, type("Method", (), {"grpc_path": "/svc/Method"})())
FIELDS = download._Shape(
    info_field="info", chunk_field="chunk", offset_field=None, length_field=None
)
UNAVAILABLE = grpc.aio.AioRpcError(
    grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), details="gone"
)


async def drain(body: AsyncIterator[bytes], got: list[bytes]) -> None:
    async for data in body:
        got.append(data)


async def test_a_download_that_fails_midway_cuts_the_body_after_what_arrived() -> None:
    call = Call(files_pb2.GetFileResponse(chunk=b"abc"), UNAVAILABLE)
    got: list[bytes] = []
    body = download._bytes(call, 10, skip=0, fields=FIELDS, method=METHOD)
    with pytest.raises(httperrors.StreamAborted, match="UNAVAILABLE"):
        await drain(body, got)
    assert got == [b"abc"] and call.cancelled


async def test_a_download_that_ends_early_is_cut_too() -> None:
    call = Call(files_pb2.GetFileResponse(chunk=b"abc"), grpc.aio.EOF)
    got: list[bytes] = []
    with pytest.raises(httperrors.StreamAborted, match="ended early"):
        await drain(download._bytes(call, 10, skip=0, fields=FIELDS, method=METHOD), got)
    assert got == [b"abc"]


async def test_a_log_stream_that_fails_midway_cuts_the_body_after_what_arrived() -> None:
    first = orchestrator_pb2.GetReplicaLogResponse(text="line 1\n")
    call = Call(orchestrator_pb2.GetReplicaLogResponse(text="line 2\n"), UNAVAILABLE)
    request = Request({"type": "http", "dtpoc.request_id": "req-1"})
    got: list[bytes] = []
    texts = textstream._texts(call, first, field="text", method=METHOD, request=request)
    with pytest.raises(httperrors.StreamAborted, match="UNAVAILABLE"):
        await drain(texts, got)
    assert got == [b"line 1\n", b"line 2\n"] and call.cancelled
