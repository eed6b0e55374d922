"""The container engine port of the local runtime: which CLI runs replica images, and how.

A replica launched with an image and no command runs that image in a
container, through the command-line client of whichever engine the machine
has: podman, else docker (only when ``docker info`` answers: a client without
a daemon is no engine), else nerdctl. ``DTPOC_OPERATOR_LOCAL_CONTAINER_ENGINE``
picks one explicitly (``none`` turns containers off). The three CLIs take the
same ``run`` flags, so one command builder serves them; what differs
(podman's OCI runtime flag and its containers.conf) is a field of
:class:`Engine`.

Decisions visible from outside, kept equal to what a pod gets (see
:mod:`dtpoc_operator.kube.manifests`):

- the container is named ``dtpoc-<run id>`` (:func:`container_name`) and
  labelled with the service id, so terminate and a restarted operator find it;
- ``/input`` is the replica's input folder, read-only; ``/output`` its output
  folder; the environment is the pod's (:func:`container_env`);
- ``--pull=never``: no registry is assumed reachable, an image must already be
  in the engine's store (its absence is reported as Kubernetes reports it with
  ``imagePullPolicy: Never``: ``ErrImageNeverPull``);
- ``resources.limits`` ``memory`` and ``cpu`` are applied (requests are not:
  one machine has nothing to schedule); a persistent service's ``port`` is
  published on 127.0.0.1 only;
- podman runs with a containers.conf whose ``default_ulimits`` is empty, so
  containers inherit the engine's limits (hosts without CAP_SYS_RESOURCE
  refuse podman's default ulimits), unless ``DTPOC_OPERATOR_LOCAL_CONTAINERS_CONF``
  names another file or ``system``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from dtpoc_common import analytics
from dtpoc_common import logging as dlog
from dtpoc_common.vocabulary import JobType
from dtpoc_operator import layout
from dtpoc_operator.model import AnalyticsResource

log = dlog.get_logger(__name__)

EngineChoice = Literal["auto", "podman", "docker", "nerdctl", "none"]
#: Engines tried by ``auto``, in order.
AUTO_ORDER: Final = ("podman", "docker", "nerdctl")
#: The setting that enables containers (named in every "how to enable" message).
ENGINE_SETTING: Final = "DTPOC_OPERATOR_LOCAL_CONTAINER_ENGINE"
CONTAINERS_CONF_SETTING: Final = "DTPOC_OPERATOR_LOCAL_CONTAINERS_CONF"
INPUT_MOUNT: Final = "/input"
OUTPUT_MOUNT: Final = "/output"
NAME_PREFIX: Final = "dtpoc-"
MAX_NAME: Final = 128
INFO_TIMEOUT_SECONDS: Final = 30.0
CLI_TIMEOUT_SECONDS: Final = 60.0
#: What the generated containers.conf says (see module docs).
GENERATED_CONTAINERS_CONF: Final = (
    "# Written by dtpoc-operator (local runtime): containers inherit the engine's\n"
    "# ulimits instead of podman's defaults, which need CAP_SYS_RESOURCE.\n"
    "[containers]\n"
    "default_ulimits = []\n"
)
#: Environment of the engine CLI taken from the operator's own (never DTPOC_*).
CLI_ENV_KEEP: Final = (
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "TMPDIR",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "DOCKER_HOST",
    "DOCKER_CONFIG",
    "DOCKER_CONTEXT",
    "CONTAINER_HOST",
    "CONTAINERD_ADDRESS",
    "CONTAINERD_NAMESPACE",
    "REGISTRIES_CONFIG_PATH",
    "CONTAINERS_STORAGE_CONF",
    "CONTAINERS_REGISTRIES_CONF",
    "SSL_CERT_FILE",
)

_NOT_NAME = re.compile(r"[^a-zA-Z0-9_.-]+")


class EngineUnavailable(RuntimeError):
    """The configured engine cannot run containers here; the message says why."""


@dataclass(frozen=True)
class Engine:
    """One container engine CLI and how to call it (serialised into each attempt's spec)."""

    name: str
    binary: str
    #: OCI runtime (``--runtime``), podman only; empty: the engine's default.
    oci_runtime: str = ""
    #: ``CONTAINERS_CONF`` for podman; empty: the engine's own configuration.
    containers_conf: str = ""
    #: True when the runner may put each container under a memory cgroup of its
    #: own (cgroup v1, cgroupfs manager, writable hierarchy): see :mod:`.container_run`.
    memory_cgroup_v1: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Engine:
        return cls(
            name=str(data["name"]),
            binary=str(data["binary"]),
            oci_runtime=str(data.get("oci_runtime") or ""),
            containers_conf=str(data.get("containers_conf") or ""),
            memory_cgroup_v1=bool(data.get("memory_cgroup_v1")),
        )

    def cli_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The CLI's environment: a few of the operator's variables, the engine's
        config, then ``extra`` (the container's variables, passed by name)."""
        env = {k: os.environ[k] for k in CLI_ENV_KEEP if k in os.environ}
        env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        if self.containers_conf:
            env["CONTAINERS_CONF"] = self.containers_conf
        env.update(extra or {})
        return env

    def cli(
        self, *args: str, timeout: float = CLI_TIMEOUT_SECONDS
    ) -> subprocess.CompletedProcess[str]:
        """Run ``<engine> args...`` to completion, output captured."""
        return subprocess.run(
            [self.binary, *args],
            env=self.cli_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    # --- commands ------------------------------------------------------------------------

    def run_argv(self, job: ContainerJob, *, cgroup_parent: str = "") -> list[str]:
        """``<engine> run`` for one replica, attached (its output is the replica's log)."""
        argv = [self.binary, "run", "--name", job.name, "--pull=never", "--sig-proxy=false"]
        if self.oci_runtime and self.name == "podman":
            argv += ["--runtime", self.oci_runtime]
        for key, value in sorted(job.labels.items()):
            argv += ["--label", f"{key}={value}"]
        argv += [
            "--mount",
            f"type=bind,source={job.input_dir},target={INPUT_MOUNT},readonly",
            "--mount",
            f"type=bind,source={job.output_dir},target={OUTPUT_MOUNT}",
            "--security-opt",
            "no-new-privileges",
        ]
        for name in sorted(job.env):
            argv += ["--env", name]  # the value comes from the CLI's environment
        if cgroup_parent:
            argv += ["--cgroup-parent", cgroup_parent]
        elif job.memory_bytes is not None:
            argv += ["--memory", str(job.memory_bytes), "--memory-swap", str(job.memory_bytes)]
        if job.cpus is not None:
            argv += ["--cpus", f"{job.cpus:g}"]
        if job.port is not None:
            argv += ["--publish", f"127.0.0.1:{job.port}:{job.port}"]
        argv.append(job.image)
        return argv

    def image_present(self, image: str) -> bool:
        return self.cli("image", "inspect", image).returncode == 0

    def inspect_state(self, name: str) -> dict[str, Any] | None:
        """The container's ``State`` (ExitCode, OOMKilled, Error, StartedAt...), or None."""
        answer = self.cli("inspect", "--type", "container", "--format", "{{json .State}}", name)
        if answer.returncode != 0:
            return None
        try:
            state = json.loads(answer.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return None
        return state if isinstance(state, dict) else None

    def stop(self, name: str, *, grace_seconds: float) -> None:
        """Stop signal, then SIGKILL after the grace period (the engine's ``stop``)."""
        self.cli("stop", "-t", str(math.ceil(grace_seconds)), name, timeout=grace_seconds + 60.0)

    def wait(self, name: str) -> None:
        """Until the container exits (however long that takes)."""
        subprocess.run(
            [self.binary, "wait", name],
            env=self.cli_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )

    def remove(self, name: str) -> bool:
        """Kill and remove the container; True when it is gone (or never existed)."""
        answer = self.cli("rm", "-f", name)
        if answer.returncode == 0:
            return True
        return self.inspect_state(name) is None

    def names(self, *, label: str) -> list[str]:
        """Names of every container (running or not) carrying ``label`` (``key=value``)."""
        answer = self.cli("ps", "-a", "--filter", f"label={label}", "--format", "{{.Names}}")
        return [line.strip() for line in answer.stdout.splitlines() if line.strip()]


@dataclass(frozen=True)
class ContainerJob:
    """What one replica's container is (serialised into the attempt's spec)."""

    name: str
    image: str
    env: Mapping[str, str]
    input_dir: str
    output_dir: str
    labels: Mapping[str, str] = field(default_factory=dict)
    memory_bytes: int | None = None
    cpus: float | None = None
    port: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "env": dict(self.env), "labels": dict(self.labels)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ContainerJob:
        return cls(
            name=str(data["name"]),
            image=str(data["image"]),
            env={str(k): str(v) for k, v in dict(data.get("env") or {}).items()},
            input_dir=str(data["input_dir"]),
            output_dir=str(data["output_dir"]),
            labels={str(k): str(v) for k, v in dict(data.get("labels") or {}).items()},
            memory_bytes=data.get("memory_bytes"),
            cpus=data.get("cpus"),
            port=data.get("port"),
        )


# --- names and environment ----------------------------------------------------------------


def container_name(run_id: str) -> str:
    """``dtpoc-<run id>``; unusual or long ids get a hash suffix (never shared)."""
    cleaned = _NOT_NAME.sub("-", run_id).strip("-.")
    name = f"{NAME_PREFIX}{cleaned}"
    if cleaned == run_id and len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME - 9]}-{digest}"


def service_label(service_id: str) -> str:
    """The ``key=value`` label every container of the service carries."""
    return f"{analytics.LABEL_SERVICE_ID}={layout.label_value(service_id)}"


def container_env(
    resource: AnalyticsResource, *, run: str, index: int, run_id: str, attempt: int = 1
) -> dict[str, str]:
    """The pod's environment (:func:`dtpoc_operator.kube.manifests.replica_env`) with
    the values Kubernetes fills in from the pod: RUN_ID is the run id."""
    spec = resource.spec
    env = {"DTPOC_SERVICE_ID": resource.service_id, "RUN_ID": run_id, "REPLICA_INDEX": str(index)}
    if spec.job_type != JobType.PERSISTENT:
        env["JOB_COMPLETION_INDEX"] = str(index)
        env["DTPOC_ATTEMPT"] = str(attempt)
    if spec.job_type == JobType.SCHEDULED:
        env["DTPOC_RUN"] = run
    env["OUTPUT_FOLDER"] = OUTPUT_MOUNT
    env["INPUT_FOLDER"] = INPUT_MOUNT
    user = {k: v for k, v in spec.env.items() if k not in layout.RESERVED_ENV}
    for name, path in layout.input_env(dict(spec.input_files), input_folder=INPUT_MOUNT).items():
        if name not in user:
            env[name] = path
    env.update(user)
    return env


# --- resource quantities ------------------------------------------------------------------

_SUFFIX = {
    "": 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}
_QUANTITY = re.compile(r"^\+?([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[KMGTPE]i|[mkMGTPE])?$")


def quantity(text: str) -> float:
    """A Kubernetes quantity (``500m``, ``1.5``, ``64Mi``, ``1e3``) as a number."""
    found = _QUANTITY.match(text.strip())
    if not found:
        raise ValueError(f"{text!r} is not a resource quantity")
    number, suffix = float(found.group(1)), found.group(2) or ""
    if suffix[:1] in ("e", "E"):
        return number * 10.0 ** int(suffix[1:])
    return number * _SUFFIX[suffix]


def limits_of(limits: Mapping[str, str]) -> tuple[int | None, float | None]:
    """(memory bytes, cpus) of ``resources.limits``; other resources are not applied."""
    memory = limits.get("memory")
    cpu = limits.get("cpu")
    memory_bytes = math.ceil(quantity(memory)) if memory else None
    cpus = quantity(cpu) if cpu else None
    return memory_bytes, cpus


# --- choosing an engine -------------------------------------------------------------------


def _works(binary: str, env: Mapping[str, str]) -> tuple[bool, str]:
    try:
        answer = subprocess.run(
            [binary, "info", "--format", "{{json .}}"],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=INFO_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, str(error)
    if answer.returncode != 0:
        return False, (answer.stderr.strip() or answer.stdout.strip())[-400:]
    return True, answer.stdout


def _memory_cgroup_v1(info_json: str) -> bool:
    """podman on cgroup v1 with the cgroupfs manager, as root (see :mod:`.container_run`)."""
    try:
        host = json.loads(info_json).get("host") or {}
    except ValueError:
        return False
    return (
        host.get("cgroupVersion") == "v1"
        and host.get("cgroupManager") == "cgroupfs"
        and os.geteuid() == 0
        and os.access("/sys/fs/cgroup/memory", os.W_OK)
    )


def containers_conf_path(setting: str, *, state_root: Path) -> str:
    """The containers.conf podman runs with (see module docs); written when generated."""
    if setting == "system":
        return os.environ.get("CONTAINERS_CONF", "")
    if setting:
        return setting
    path = state_root / "containers.conf"
    state_root.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != GENERATED_CONTAINERS_CONF:
        path.write_text(GENERATED_CONTAINERS_CONF)
    return str(path)


def detect(
    choice: EngineChoice,
    *,
    oci_runtime: str,
    containers_conf: str,
    state_root: Path,
) -> Engine | None:
    """The engine ``choice`` names, or the first that works (``auto``); None for ``none``
    and for ``auto`` when none works. An explicit engine that does not work raises."""
    if choice == "none":
        return None
    candidates: Sequence[str] = AUTO_ORDER if choice == "auto" else (choice,)
    reasons: list[str] = []
    for name in candidates:
        binary = shutil.which(name)
        if binary is None:
            reasons.append(f"{name}: not installed")
            continue
        conf = (
            containers_conf_path(containers_conf, state_root=state_root) if name == "podman" else ""
        )
        engine = Engine(
            name=name,
            binary=binary,
            oci_runtime=oci_runtime if name == "podman" else "",
            containers_conf=conf,
        )
        ok, answer = _works(binary, engine.cli_env())
        if not ok:
            reasons.append(f"{name}: `{name} info` failed: {answer}")
            continue
        if name == "podman":
            engine = Engine(
                name=engine.name,
                binary=engine.binary,
                oci_runtime=engine.oci_runtime,
                containers_conf=engine.containers_conf,
                memory_cgroup_v1=_memory_cgroup_v1(answer),
            )
        log.info(
            "container engine found",
            engine=name,
            binary=binary,
            oci_runtime=engine.oci_runtime,
            containers_conf=engine.containers_conf,
            memory_cgroup_v1=engine.memory_cgroup_v1,
        )
        return engine
    if choice == "auto":
        log.info("no container engine: launches need a command", tried="; ".join(reasons))
        return None
    raise EngineUnavailable(f"{ENGINE_SETTING}={choice}, but " + "; ".join(reasons))
