"""Fixtures of the orchestrator's unit tier: the use cases on fresh fakes per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dtpoc_orchestrator import service
from tests.unit.orchestrator.helpers import Api, InProcessPlatform, Rig


@pytest.fixture
def rig() -> Rig:
    return Rig()


@pytest.fixture
def orchestrator(rig: Rig) -> service.Orchestrator:
    return rig.orchestrator()


@pytest.fixture
def api(rig: Rig) -> Api:
    return Api(rig)


@pytest.fixture
def platform() -> Iterator[InProcessPlatform]:
    """The use cases behind an in-process stub, for tests written as a gRPC client's."""
    made = InProcessPlatform()
    try:
        yield made
    finally:
        made.close()
