"""Fixtures of the end-to-end tests (helpers live in :mod:`tests.e2e.localrun`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.localrun import LocalPlatform, start_platform, stop_platform


@pytest.fixture(scope="module")
def local_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    """The platform as ``make run --no-demo`` runs it, shared by a test module.

    FerretDB, files, orchestrator, operator (local runtime) and gateway on a
    free port with a data directory of their own; after the module's last test,
    SIGTERM, and ``python -m dtpoc_local.up`` must exit 0. Shared because a
    start is the costliest step of these tests and each test works on services
    of its own (found by id), so nothing one test does changes what another sees;
    the tests that stop or break the platform start their own.
    """
    platform = start_platform(tmp_path_factory.mktemp("local-platform") / "data")
    try:
        yield platform
    finally:
        code = stop_platform(platform)
        assert code == 0, f"run_local exited {code}:\n{platform.process.log_tail(60)}"
