"""Calling a real gRPC server as a given caller, and reading the code it refuses with.

Shared by the rooms' caller tests (tests/files/test_callers.py,
tests/orchestrator/test_callers.py): each presents a component's token, a
wrong one or none, and asserts the status code of the refusal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import grpc
import pytest

from dtpoc_common import grpcauth

Stub = TypeVar("Stub")


def stubs_as(
    address: str, stub_class: Callable[[grpc.Channel], Stub]
) -> Iterator[Callable[[str | None], Stub]]:
    """Yield ``make(token)``: a stub presenting ``token`` (None: no metadata); closed after."""
    channels: list[grpc.Channel] = []

    def make(token: str | None) -> Stub:
        channel = grpcauth.sync_channel(address, token)
        channels.append(channel)
        return stub_class(channel)

    yield make
    for channel in channels:
        channel.close()


def refusal_code(call: Callable[[], object]) -> grpc.StatusCode:
    """The status code ``call`` is refused with (the test fails if it is not refused)."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    code: grpc.StatusCode = caught.value.code()  # type: ignore[attr-defined]
    return code
