"""Fixtures of the end-to-end tests (helpers live in :mod:`tests.e2e.localrun`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.localrun import LocalPlatform, start_platform, stop_platform


@pytest.fixture
def local_platform(tmp_path: Path) -> Iterator[LocalPlatform]:
    """The platform as ``make run --no-demo`` runs it, for one test.

    FerretDB, files, orchestrator, operator (local runtime) and gateway on a
    free port with a data directory of their own; after the test, SIGTERM,
    and ``python -m dtpoc_local.up`` must exit 0.
    """
    platform = start_platform(tmp_path / "data")
    try:
        yield platform
    finally:
        code = stop_platform(platform)
        assert code == 0, f"run_local exited {code}:\n{platform.process.log_tail(60)}"
