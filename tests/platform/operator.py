"""The ``operator_process`` fixture: real ``dtpoc-operator`` processes for a test.

``operator_process`` -> ``start(**options) -> OperatorProcess``
    A factory: each call starts ``dtpoc-operator`` with
    :mod:`dtpoc_local.servers.operator` (log under the pytest tmp dir) and
    returns once its ``/readyz`` answers 200. Keyword options:

    - ``runtime``: ``"kubernetes"`` (default) or ``"local"``;
    - ``kubeconfig`` (Path) and ``namespace``: for the Kubernetes runtime
      (see :func:`dtpoc_local.servers.operator.operator_kubeconfig` to run as
      the operator's ServiceAccount with exactly ``infra/rbac/operator-role.yaml``);
    - ``files_address``, ``output_root`` (Path), ``mongodb_uri``,
      ``local_database``, ``local_collection`` (local runtime);
    - ``fault_crash_after_upload`` (bool): runs the operator under
      :mod:`tests.operator.crashing_operator`, which SIGKILLs it between an
      upload and the status write recording it (a test-only fault, injected
      at the store port; restart with ``argv=[operator_executable()]``);
    - ``env``: any other ``DTPOC_OPERATOR_*`` overrides;
    - ``wait_ready`` (default True).

    Every process still running is stopped (SIGTERM, then SIGKILL) after the test.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dtpoc_common import grpcauth
from dtpoc_local.credentials import credentials
from dtpoc_local.paths import REPO_ROOT
from dtpoc_local.servers.operator import OperatorProcess, start_operator

CRASHING_OPERATOR = "tests.operator.crashing_operator"
"""The operator under a fault-injecting wrapper (the tests' module, run with ``-m``)."""


@pytest.fixture
def operator_process(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., OperatorProcess]]:
    """Factory starting ``dtpoc-operator`` processes (see the module docstring)."""
    started: list[OperatorProcess] = []
    workdir = tmp_path_factory.mktemp("operator")

    def start(
        *,
        runtime: str = "kubernetes",
        kubeconfig: Path | None = None,
        namespace: str = "",
        files_address: str = "127.0.0.1:1",
        output_root: Path | None = None,
        mongodb_uri: str = "",
        local_database: str = "",
        local_collection: str = "",
        fault_crash_after_upload: bool = False,
        env: dict[str, str] | None = None,
        wait_ready: bool = True,
    ) -> OperatorProcess:
        root = output_root or (workdir / "outputs")
        root.mkdir(parents=True, exist_ok=True)
        values = {
            "DTPOC_OPERATOR_RUNTIME": runtime,
            "DTPOC_OPERATOR_FILES_ADDRESS": files_address,
            "DTPOC_OPERATOR_OUTPUT_ROOT": str(root),
            "DTPOC_OPERATOR_LOG_LEVEL": "INFO",
            "DTPOC_OPERATOR_GRPC_TOKEN_FILE": str(credentials().token_file(grpcauth.OPERATOR)),
            "DTPOC_OPERATOR_FETCH_KEY_FILE": str(credentials().fetch_key_file),
        }
        if kubeconfig is not None:
            values["DTPOC_OPERATOR_KUBECONFIG"] = str(kubeconfig)
        if namespace:
            values["DTPOC_OPERATOR_NAMESPACES"] = namespace
        if mongodb_uri:
            values["DTPOC_MONGODB_URI"] = mongodb_uri
        if local_database:
            values["DTPOC_OPERATOR_LOCAL_DATABASE"] = local_database
        if local_collection:
            values["DTPOC_OPERATOR_LOCAL_COLLECTION"] = local_collection
        values.update(env or {})
        argv = None
        if fault_crash_after_upload:
            argv = [sys.executable, "-m", CRASHING_OPERATOR]
            values["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
            )
        return start_operator(
            values, workdir=workdir, started=started, wait_ready=wait_ready, argv=argv
        )

    yield start
    for operator in started:
        operator.stop()
