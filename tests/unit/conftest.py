"""The unit tier (``make test-fast``): use cases and rules on in-memory fakes, no servers.

Everything under ``tests/unit`` runs without FerretDB, an API server, a
container engine or a child process of ours; it uses the named fakes of each
room's ports (``dtpoc_orchestrator.adapters.memory``, ``dtpoc_files.memory``,
``dtpoc_operator.memory``), which pass the same contract tests as the real
adapters, or a test double inside this process (the gateway in front of its
in-process gRPC double). A test here that asks for a fixture that starts a
server fails at setup, so the tier stays a clean selection; such a test belongs
beside its room's real-dependency tests.
"""

from __future__ import annotations

import pytest

#: Fixtures (tests/realdeps, tests/platform) that start a server or a child process.
SERVER_FIXTURES = frozenset(
    {
        "mongodb_uri",
        "mongo_client",
        "mongo_db_name",
        "kube",
        "kube_namespace",
        "kubelet_double",
        "helm_bin",
        "buf_bin",
        "files_server_factory",
        "files_server",
        "gateway_server",
        "operator_process",
        "orchestrator_server_factory",
        "orchestrator_server",
    }
)


def pytest_runtest_setup(item: pytest.Item) -> None:
    wanted = SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
    if wanted:
        pytest.fail(
            f"{item.nodeid} is in the unit tier but asks for {', '.join(sorted(wanted))}, "
            "which start servers: move it beside its room's real-dependency tests",
            pytrace=False,
        )
