"""The pytest side of the harness in :mod:`dtpoc_local`: hooks and tool fixtures.

- Before any test runs, build the binaries the selected tests will start
  (:mod:`dtpoc_local.binaries`), so a first build is not charged to a test's
  timeout and its progress is not hidden by output capture.
- On a failed test, attach the log tail of every server still running
  (:func:`dtpoc_local.processes.running_servers`); at the end, stop any a
  fixture could not tear down (e.g. after Ctrl-C).
- ``helm_bin``, ``buf_bin`` (session): paths of the pinned tools.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Generator
from pathlib import Path

import pytest

from dtpoc_local import binaries, processes

_FIXTURE_BINARIES: dict[str, tuple[str, tuple[str, ...]]] = {
    # fixture: (environment variable that makes it use your own server, binaries it starts)
    "mongodb_uri": ("DTPOC_TEST_MONGODB_URI", ("ferretdb",)),
    "kube": ("DTPOC_TEST_KUBECONFIG", ("etcd", "kube-apiserver", "kube-controller-manager")),
    "helm_bin": ("", ("helm",)),
    "buf_bin": ("", ("buf",)),
}


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the binaries the selected tests will start, before any test runs.

    A first Kubernetes build takes minutes; done here it is not charged to the
    first test's timeout, and its progress is not hidden by output capture.
    Fixtures whose server you bring yourself (environment variables) need nothing.
    """
    if session.config.option.collectonly:
        return
    wanted: set[str] = set()
    for item in session.items:
        for fixture in getattr(item, "fixturenames", ()):
            variable, names = _FIXTURE_BINARIES.get(fixture, ("", ()))
            external = bool(variable and os.environ.get(variable))
            if fixture == "kube":
                external = external or bool(os.environ.get("KUBECONFIG"))
            if not external:
                wanted.update(names)
    missing = [
        n for n in binaries.NAMES if n in wanted and not os.access(binaries.cached_path(n), os.X_OK)
    ]
    if missing:
        # A failure is reported by the fixture that needs the binary, with the cause.
        subprocess.run([str(binaries.BUILD_SCRIPT), *missing], check=False)


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    """Path of the pinned ``helm`` binary (built on first use)."""
    return binaries.path("helm")


@pytest.fixture(scope="session")
def buf_bin() -> Path:
    """Path of the pinned ``buf`` binary (built on first use)."""
    return binaries.path("buf")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On a failed test, attach the log tail of every running test server."""
    report = yield
    if report.failed:
        for server in processes.running_servers():
            report.sections.append(
                (f"{server.name} log tail ({server.log_path})", server.log_tail(25))
            )
    return report


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop any server a fixture could not tear down (e.g. after Ctrl-C)."""
    for server in processes.running_servers():
        server.stop(timeout=5.0)
