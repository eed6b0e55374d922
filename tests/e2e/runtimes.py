"""Helpers of ``test_runtimes_agree``: a user's gRPC moves, and the kubelet's part in a pod.

There is no kubelet on the test control plane, so :func:`run_pod` does what
one would do with a Job pod: run its init container and then its main
container as processes on this machine, with the pod's environment
translated (``fieldRef`` values resolved from the pod; the ``/input``
emptyDir and the ``/output`` subPath of the output volume mapped to local
folders), and report the exit code through :class:`KubeletDouble`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format

from dtpoc.files.v1alpha1 import files_pb2, files_pb2_grpc
from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2, orchestrator_pb2_grpc
from dtpoc_local import waiting
from dtpoc_local.credentials import credentials
from tests.realdeps.kubelet_double import KubeletDouble, Pod

RPC_TIMEOUT = 20.0
CONTAINER_TIMEOUT = 240.0
"""A short histolab simulation on a shared two-core machine."""

INPUT_MOUNT = "/input"
OUTPUT_MOUNT = "/output"


# --- what a user does, over gRPC ---------------------------------------------------------------


def upload(files: files_pb2_grpc.FilesServiceStub, path: Path, name: str) -> str:
    def requests() -> Iterator[files_pb2.UploadFileRequest]:
        yield files_pb2.UploadFileRequest(header=files_pb2.UploadFileHeader(filename=name))
        yield files_pb2.UploadFileRequest(chunk=path.read_bytes())
        yield files_pb2.UploadFileRequest(finish=True)

    return str(files.UploadFile(requests(), timeout=RPC_TIMEOUT).file_id)


def status_dict(
    orchestrator: orchestrator_pb2_grpc.OrchestratorServiceStub, service_id: str
) -> dict[str, Any]:
    answer = orchestrator.GetServiceStatus(
        orchestrator_pb2.GetServiceStatusRequest(id=service_id), timeout=RPC_TIMEOUT
    )
    return json_format.MessageToDict(answer.status, preserving_proto_field_name=True)


def output_of(
    orchestrator: orchestrator_pb2_grpc.OrchestratorServiceStub, service_id: str, idx: int
) -> Any:
    answer = orchestrator.GetServiceOutput(
        orchestrator_pb2.GetServiceOutputRequest(id=service_id, idx=idx), timeout=RPC_TIMEOUT
    )
    return json_format.MessageToDict(answer.output, preserving_proto_field_name=True)


@dataclass
class Orchestrator:
    """A channel to one orchestrator and its stub (closed by the caller)."""

    channel: grpc.Channel
    stub: orchestrator_pb2_grpc.OrchestratorServiceStub

    @classmethod
    def open(cls, address: str) -> Orchestrator:
        channel = credentials().channel(address)
        return cls(channel=channel, stub=orchestrator_pb2_grpc.OrchestratorServiceStub(channel))


# --- the kubelet's part -----------------------------------------------------------------------


def _resolve(pod: Pod, variable: Mapping[str, Any]) -> str:
    """The value a kubelet gives an env entry of ``pod`` (``value`` or a metadata fieldRef)."""
    if "value" in variable:
        return str(variable["value"])
    field_path = str(variable["valueFrom"]["fieldRef"]["fieldPath"])
    meta = pod["metadata"]
    if field_path == "metadata.name":
        return str(meta["name"])
    if field_path == "metadata.namespace":
        return str(meta["namespace"])
    prefix = "metadata.annotations['"
    if field_path.startswith(prefix) and field_path.endswith("']"):
        return str(meta["annotations"][field_path[len(prefix) : -2]])
    prefix = "metadata.labels['"
    if field_path.startswith(prefix) and field_path.endswith("']"):
        return str(meta["labels"][field_path[len(prefix) : -2]])
    raise AssertionError(f"the kubelet double cannot resolve fieldRef {field_path}")


def _translate(value: str, mounts: Mapping[str, Path]) -> str:
    """Map a container path under one of ``mounts`` to its folder on this machine."""
    for mount, folder in mounts.items():
        if value == mount or value.startswith(mount + "/"):
            return str(folder) + value[len(mount) :]
    return value


def _subpath(expression: str, env: Mapping[str, str]) -> str:
    """Expand ``$(VAR)`` references of a ``subPathExpr`` as the kubelet does."""
    for name, value in env.items():
        expression = expression.replace(f"$({name})", value)
    assert "$(" not in expression, f"unexpanded subPathExpr {expression}"
    return expression


def _executable(command: list[str]) -> list[str]:
    """The operator's image entrypoints are console scripts of this environment."""
    local = Path(sys.executable).parent / command[0]
    return [str(local), *command[1:]] if local.exists() else command


def _run(argv: list[str], env: dict[str, str], log: Path) -> int:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DTPOC_")}
    with log.open("ab") as out:
        return subprocess.run(
            argv,
            env={**base, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=CONTAINER_TIMEOUT,
            check=False,
        ).returncode


@dataclass
class PodRun:
    """What the kubelet double did with one pod."""

    name: str
    index: int
    exit_code: int
    env: dict[str, str]


def run_pod(kubelet: KubeletDouble, pod: Pod, *, output_root: Path, workdir: Path) -> PodRun:
    """Run ``pod``'s init and main containers here and report how they ended (module docs).

    ``output_root`` is the folder the operator sees the output volume at;
    the main container's ``/output`` is its ``subPathExpr`` below it.
    """
    namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    index = kubelet.completion_index(pod)
    assert index is not None, f"pod {name} has no completion index"
    kubelet.set_pod_running(namespace, name)
    spec = pod["spec"]
    input_dir = workdir / name / "input"
    input_dir.mkdir(parents=True)
    log = workdir / name / "containers.log"

    for init in spec.get("initContainers") or []:
        env = {e["name"]: _resolve(pod, e) for e in init.get("env") or []}
        env = {k: _translate(v, {INPUT_MOUNT: input_dir}) for k, v in env.items()}
        env.setdefault("DTPOC_FETCH_INPUT_DIR", str(input_dir))
        code = _run(_executable([*init["command"], *(init.get("args") or [])]), env, log)
        if code != 0:
            kubelet.finish_pod(namespace, name, exit_code=code)
            return PodRun(name=name, index=index, exit_code=code, env=env)

    (main,) = spec["containers"]
    raw = {e["name"]: _resolve(pod, e) for e in main.get("env") or []}
    mounts: dict[str, Path] = {}
    for mount in main.get("volumeMounts") or []:
        if mount["mountPath"] == INPUT_MOUNT:
            mounts[INPUT_MOUNT] = input_dir
        elif mount["mountPath"] == OUTPUT_MOUNT:
            relative = mount.get("subPathExpr") or mount.get("subPath") or ""
            mounts[OUTPUT_MOUNT] = output_root / _subpath(relative, raw)
    assert set(mounts) == {INPUT_MOUNT, OUTPUT_MOUNT}, main.get("volumeMounts")
    mounts[OUTPUT_MOUNT].mkdir(parents=True, exist_ok=True)
    env = {k: _translate(v, mounts) for k, v in raw.items()}
    code = _run([*main["command"], *(main.get("args") or [])], env, log)
    kubelet.finish_pod(namespace, name, exit_code=code)
    return PodRun(name=name, index=index, exit_code=code, env=env)


def play_kubelet_for_job(
    kubelet: KubeletDouble,
    namespace: str,
    job_name: str,
    *,
    reps: int,
    output_root: Path,
    workdir: Path,
    timeout: float,
) -> list[PodRun]:
    """Run every pod the Job controller creates until ``reps`` indexes have exited 0."""
    runs: list[PodRun] = []
    done: set[int] = set()
    seen: set[str] = set()
    while len(done) < reps:

        def fresh() -> list[Pod]:
            return [
                p
                for p in kubelet.job_pods(namespace, job_name)
                if p["metadata"]["name"] not in seen
                and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
                and "deletionTimestamp" not in p["metadata"]
            ]

        pods = waiting.wait_for(
            fresh,
            timeout=timeout,
            what=f"a new pod of Job {namespace}/{job_name} (indexes done: {sorted(done)})",
        )
        for pod in pods:
            seen.add(pod["metadata"]["name"])
            run = run_pod(kubelet, pod, output_root=output_root, workdir=workdir)
            runs.append(run)
            assert run.exit_code == 0, (
                f"pod {run.name} (index {run.index}) exited {run.exit_code}; "
                f"see {workdir / run.name / 'containers.log'}"
            )
            done.add(run.index)
    return runs
