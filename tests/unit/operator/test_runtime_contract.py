"""The Runtime contract where it needs no workload: both real runtimes and the fake refuse
the same specs for the same reasons and put a replica's outputs in the same place; then
what one real runtime refuses and the other runs (a launch without command, inputs
without an init image, a schedule the local scheduler cannot read).

The real runtimes are built without connecting to anything (the refusals and the
output layout are decided before any API call or process); what they do with a
workload is shown against the real apiserver and real processes in tests/operator
and tests/e2e (``test_runtimes_agree.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio.client import Configuration

from dtpoc_common import analytics
from dtpoc_common.vocabulary import Phase
from dtpoc_operator import collector, memory, model, ports, reconciler
from dtpoc_operator.kube import api as kapi
from dtpoc_operator.kube import manifests
from dtpoc_operator.kube.runtime import KubeRuntime
from dtpoc_operator.local.runtime import LocalRuntime
from dtpoc_operator.model import AnalyticsResource, ServiceKey, Status

SID = "0123456789abcdef01234567"
BASE: dict[str, Any] = {"image": "img", "jobType": "ondemand", "reps": 2, "command": ["run"]}


@pytest.fixture(scope="module")
async def kube_api() -> AsyncIterator[kapi.KubeApi]:
    """One client for the module: its TLS context is the slow part of building it."""
    configuration = Configuration()
    configuration.host = "https://127.0.0.1:9"  # never called: refusals come first
    api = kapi.KubeApi(configuration)
    yield api
    await api.close()


@pytest.fixture(params=["kubernetes", "local", "memory"])
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> ports.Runtime:
    if request.param == "memory":
        return memory.InMemoryRuntime(output_root=tmp_path)
    if request.param == "local":
        return LocalRuntime(
            output_root=tmp_path,
            state_root=tmp_path / "state",
            files_address="127.0.0.1:9",
            max_processes=4,
        )
    return KubeRuntime(
        request.getfixturevalue("kube_api"),
        children=manifests.ChildSettings(
            init_image="operator:1", output_pvc="outputs", files_address="files:50051"
        ),
        output_root=tmp_path,
    )


def resource(service_id: str = SID, **spec: Any) -> AnalyticsResource:
    return AnalyticsResource(
        key=ServiceKey(namespace="lab", name=service_id),
        uid="u",
        generation=1,
        spec=model.ServiceSpec.from_proto(analytics.spec_from_dict({**BASE, **spec})),
        status=Status(),
    )


@pytest.mark.parametrize(
    ("service_id", "spec", "reason"),
    [
        ("../escape", {}, "InvalidServiceId"),
        ("a/b", {}, "InvalidServiceId"),
        (SID, {"jobType": "hourly"}, "InvalidSpec"),
        (SID, {"inputFiles": {SID: "../passwd"}}, "InvalidSpec"),
        (SID, {"inputFiles": {SID: "sub/in.csv"}}, "InvalidSpec"),
    ],
)
def test_a_spec_no_runtime_can_run_is_refused_with_the_same_reason(
    runtime: ports.Runtime, service_id: str, spec: dict[str, Any], reason: str
) -> None:
    problem = runtime.problem(resource(service_id, **spec))
    assert problem is not None
    assert problem[0] == reason
    assert problem[1], "the message says what is wrong"


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"inputFiles": {SID: "input.xlsx"}},
        {"jobType": "scheduled", "schedule": "*/5 * * * *"},
        {"jobType": "persistent", "port": 8080},
    ],
)
def test_a_runnable_spec_is_not_refused(runtime: ports.Runtime, spec: dict[str, Any]) -> None:
    assert runtime.problem(resource(**spec)) is None


@pytest.mark.parametrize(
    ("spec", "run", "relative"),
    [
        ({}, SID, f"{SID}/1"),
        ({"jobType": "scheduled", "schedule": "* * * * *"}, "r-5", f"{SID}/r-5/1"),
    ],
)
def test_outputs_are_found_under_the_shared_layout(
    runtime: ports.Runtime, tmp_path: Path, spec: dict[str, Any], run: str, relative: str
) -> None:
    assert runtime.output_folder(resource(**spec), run=run, index=1) == tmp_path / relative


# --- what one runtime refuses and the other runs -----------------------------------------------


def local_runtime(tmp_path: Path) -> LocalRuntime:
    return LocalRuntime(
        output_root=tmp_path,
        state_root=tmp_path / "state",
        files_address="127.0.0.1:9",
        max_processes=4,
    )


async def test_without_an_engine_a_launch_without_command_fails_saying_so(tmp_path: Path) -> None:
    """The original's launch body (image, no command) on the local runtime with no
    container engine: the service fails at once with the reason, and nothing runs."""
    store = memory.InMemoryAnalyticsStore()
    files = memory.InMemoryFiles()
    runtime = local_runtime(tmp_path)
    key = store.create(SID, {"image": "ghcr.io/example/sim", "jobType": "ondemand", "reps": 1})
    await reconciler.Reconciler(
        store=store,
        runtime=runtime,
        collector=collector.OutputCollector(files, max_parallel_uploads=1, timeout_seconds=5),
        options=reconciler.ReconcilerOptions(),
    ).reconcile(key)
    failed = store.resources[key].status
    assert failed.phase == Phase.FAILED
    assert "needs a command" in failed.message
    assert failed.condition("Failed").reason == "CommandRequired"  # type: ignore[union-attr]
    assert not (tmp_path / "state" / SID).exists(), "no workload was created"


def test_kubernetes_runs_an_image_without_command(kube_api: kapi.KubeApi, tmp_path: Path) -> None:
    runtime = KubeRuntime(
        kube_api,
        children=manifests.ChildSettings(
            init_image="operator:1", output_pvc="outputs", files_address="files:50051"
        ),
        output_root=tmp_path,
    )
    assert runtime.problem(resource(command=[])) is None


def test_inputs_without_an_init_image_are_an_operator_misconfiguration(
    kube_api: kapi.KubeApi, tmp_path: Path
) -> None:
    runtime = KubeRuntime(
        kube_api,
        children=manifests.ChildSettings(init_image="", output_pvc="o", files_address="f:1"),
        output_root=tmp_path,
    )
    problem = runtime.problem(resource(inputFiles={SID: "in.csv"}))
    assert problem is not None and problem[0] == "OperatorMisconfigured"
    assert "DTPOC_OPERATOR_IMAGE" in problem[1]


def test_the_local_scheduler_refuses_a_schedule_it_cannot_read(tmp_path: Path) -> None:
    problem = local_runtime(tmp_path).problem(resource(jobType="scheduled", schedule="often"))
    assert problem is not None and problem[0] == "InvalidSchedule"
    assert "'often'" in problem[1]
