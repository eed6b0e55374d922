"""The demo of ``make run``: what a user does through the REST API, done for them.

Upload the sample workbook, launch the histolab simulation with two replicas
over REST (with a container engine, the launch body of a client of the
original: its image, no command; the image is built first when missing),
follow its progress on the watch stream and print each replica's KPIs. It
speaks REST through :mod:`dtpoc_client`, as a researcher's script would. A
failure raises :class:`~dtpoc_local.platform.LaunchFailed` naming the step.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2
from dtpoc_client import Client, errors
from dtpoc_client.cli import output
from dtpoc_common.vocabulary import API_PREFIX, FINAL_PHASES, Phase
from dtpoc_local.paths import REPO_ROOT
from dtpoc_local.platform import LaunchFailed, Platform, say
from dtpoc_operator.local import containers

SAMPLE_WORKBOOK = REPO_ROOT / "examples" / "histolab" / "sample" / "input.xlsx"
DEMO_REPS = 2
DEMO_SIM_HOURS = "1176"
"""Seven weeks, as the seed's sample resource ran."""
DEMO_TIMEOUT = 600.0
"""Seconds the demo's replicas get to finish."""
IMAGE_BUILD = REPO_ROOT / "tools" / "images" / "build"
ORIGINAL_IMAGE = "ghcr.io/cam-digital-hospitals/digital-hosp-des"
"""The image clients of the original launch; the histolab example image carries its name."""
ORIGINAL_VERSION = "latest"


def histolab_command() -> list[str]:
    """How a replica runs the example module: this environment's Python, ``-m histolab``."""
    return [sys.executable, "-m", "histolab"]


def _check_histolab_installed() -> None:
    if importlib.util.find_spec("histolab") is None:
        raise LaunchFailed(
            "the example module dtpoc-histolab is not installed in this environment "
            f"({sys.prefix}); run `uv sync --all-packages` and try again"
        )


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@contextlib.contextmanager
def _step(what: str) -> Iterator[None]:
    """LaunchFailed naming the step and the API's own message when the client raises."""
    try:
        yield
    except errors.DtpocError as exc:
        raise LaunchFailed(f"{what}: {exc}") from exc


def upload_sample(client: Client) -> str:
    """Upload the sample workbook as a user would; answers its file id."""
    with _step("upload of the sample workbook"):
        reply = client.files.upload(SAMPLE_WORKBOOK, filename="input.xlsx", content_type=XLSX)
    note = f" ({reply.message})" if reply.message else ""
    say(f"  uploaded {SAMPLE_WORKBOOK.relative_to(REPO_ROOT)} -> file {reply.file_id}{note}")
    return reply.file_id


def original_launch_request(*, file_id: str, reps: int, sim_hours: str) -> dict[str, Any]:
    """Exactly what a client of the original sends (shared/seed/api-contract.md): the
    image and version, the original's env, no command."""
    return {
        "image": ORIGINAL_IMAGE,
        "version": ORIGINAL_VERSION,
        "description": "Histopathology lab simulation reporting KPIs",
        "port": None,
        "env": {
            "INPUT_EXCEL_FILE": "/input/input.xlsx",
            "OUTPUT_FOLDER": "/output",
            "SIM_HOURS": sim_hours,
            "NUM_REPS": str(reps),
        },
        "mount_files": {file_id: "input.xlsx"},
        "ana": {"job_type": "ondemand", "reps": reps, "schedule": None},
        "sim": None,
    }


def ensure_demo_image(engine: containers.Engine) -> str | None:
    """Build (or find, cached) the histolab image under the original's name; None when
    it cannot be had, after saying why. The build's progress goes to the terminal."""
    reference = f"{ORIGINAL_IMAGE}:{ORIGINAL_VERSION}"
    if engine.name == "nerdctl":
        return reference if engine.image_present(reference) else None
    say(
        "  ensuring the histolab image (tools/images/build histolab, cached by content; "
        "a first build makes the Debian base too: a few minutes) ..."
    )
    started = time.monotonic()
    try:
        built = subprocess.run(
            [str(IMAGE_BUILD), "--ref", "histolab"],
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHON": sys.executable},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,  # the reference; progress goes to stderr, shown as it comes
            text=True,
            check=False,
            timeout=DEMO_TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        say(f"  the image build did not finish: {error}")
        return None
    if built.returncode != 0 or not engine.image_present(reference):
        say(f"  the image build failed (exit {built.returncode}); see its output above")
        return None
    say(f"  image {reference} ready ({time.monotonic() - started:.0f}s)")
    return reference


def launch_request(*, file_id: str, reps: int, sim_hours: str) -> dict[str, Any]:
    """The seed's sample resource in the process form: a command instead of an image."""
    return {
        "image": "dtpoc-histolab",
        "version": "local",
        "description": "Histopathology lab simulation reporting KPIs (make run demo)",
        "env": {"SIM_HOURS": sim_hours, "NUM_REPS": str(reps)},
        "mount_files": {file_id: "input.xlsx"},
        "ana": {"job_type": "ondemand", "reps": reps},
        "command": histolab_command(),
    }


def _progress_line(status: orchestrator_pb2.ServiceStatus, started: float) -> str:
    counts = (
        f"{status.active_runs} running, {status.succeeded_runs} succeeded, "
        f"{status.failed_runs} failed of {status.total_runs}"
    )
    return f"  [{time.monotonic() - started:6.1f}s] {status.phase or '?':<10} {counts}"


def _finished(status: orchestrator_pb2.ServiceStatus) -> bool:
    """Final phase, and for a success every replica's outputs are stored in Files."""
    if status.phase not in FINAL_PHASES:
        return False
    if status.phase != Phase.SUCCEEDED:
        return True
    if status.replicas:
        return all(r.outputs_collected for r in status.replicas)
    return len(status.output_files) >= status.total_runs


_STREAM_ENDED = object()
"""What the watch's thread queues when the stream ends without an error."""


def _watch_in_background(client: Client, service_id: str) -> queue.Queue[object]:
    """The watch's statuses (then an error or :data:`_STREAM_ENDED`) on a queue.

    The stream is read in a daemon thread so that the demo can check, while
    no status changes, that every platform process is still alive; closing
    the client ends the thread.
    """
    updates: queue.Queue[object] = queue.Queue()

    def pump() -> None:
        try:
            for status in client.services.watch(service_id):
                updates.put(status)
            updates.put(_STREAM_ENDED)
        except errors.DtpocError as exc:
            updates.put(exc)

    threading.Thread(target=pump, name=f"watch-{service_id}", daemon=True).start()
    return updates


def follow(
    client: Client, service_id: str, *, platform: Platform, timeout: float
) -> orchestrator_pb2.ServiceStatus:
    """Print each change of the service's status until it is final; return the last one.

    Follows the watch stream, checking every second without news that no
    platform process has died; once the stream has ended (at the final
    phase) asks for the status until the replicas' outputs are stored.
    """
    started = time.monotonic()
    deadline = started + timeout
    last_line = ""
    status = orchestrator_pb2.ServiceStatus()
    updates: queue.Queue[object] | None = _watch_in_background(client, service_id)
    while time.monotonic() < deadline:
        try:
            item = updates.get(timeout=1.0) if updates is not None else _STREAM_ENDED
        except queue.Empty:
            platform.check_alive()
            continue
        if isinstance(item, errors.DtpocError):
            raise LaunchFailed(f"watch of service {service_id} failed: {item}")
        if isinstance(item, orchestrator_pb2.ServiceStatus):
            status = item
        else:
            updates = None
            time.sleep(0.5)  # between status asks while the outputs are being stored
            with _step("service status"):
                status = client.services.status(service_id)
        line = _progress_line(status, started)
        if line.split("]", 1)[1] != last_line.split("]", 1)[-1]:
            say(line)
            last_line = line
        if _finished(status):
            return status
        platform.check_alive()
    raise LaunchFailed(
        f"service {service_id} did not finish within {timeout:g}s; last status: "
        f"{json.dumps(output.to_json(status))}"
    )


def _fmt(value: Any, digits: int = 1) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.{digits}f}"
    return "-"


def _seed(value: Any) -> str:
    """Seeds are integers; JSON through the API may render them as 1.0e15-style floats."""
    return str(int(value)) if isinstance(value, int | float) else str(value)


def kpi_table(outputs: list[Any]) -> str:
    """One row per replica: counts, turnaround percentiles, WIP and the busiest resource."""
    header = (
        "replica",
        "seed",
        "arrived",
        "done",
        "in lab",
        "TAT p50 h",
        "p90 h",
        "p95 h",
        "urgent p90 h",
        "mean WIP",
        "busiest resource (of shift)",
    )
    rows: list[tuple[str, ...]] = [header]
    for idx, kpis in enumerate(outputs):
        if not isinstance(kpis, dict) or "turnaround_hours" not in kpis:
            rows.append((str(idx), "no KPI document", *[""] * (len(header) - 2)))
            continue
        tat = kpis["turnaround_hours"]["overall"]
        urgent = kpis["turnaround_hours"]["by_priority"].get("urgent", {})
        resources = kpis["utilisation"]["resources"]
        busiest = max(resources, key=lambda r: resources[r].get("utilisation_of_shift") or 0)
        share = resources[busiest].get("utilisation_of_shift")
        rows.append(
            (
                str(kpis.get("replica_index", idx)),
                _seed(kpis["seed"]),
                str(kpis["specimens"]["arrived"]),
                str(kpis["specimens"]["completed"]),
                str(kpis["specimens"]["wip_at_end"]),
                _fmt(tat["p50"]),
                _fmt(tat["p90"]),
                _fmt(tat["p95"]),
                _fmt(urgent.get("p90")),
                _fmt(kpis["wip"]["mean"]),
                f"{busiest} {_fmt(100 * share if share is not None else None, 0)}%",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  " + "  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows
    ]
    lines.insert(1, "  " + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def demo_form(platform: Platform, wanted: str) -> str:
    """``container`` (the original's body) when an engine and the image are there, else
    ``process``, saying why; ``wanted`` forces one (``container`` fails without them)."""
    if wanted == "process":
        say("  form: process (--demo-form process): the launch gives a command")
        return "process"
    if platform.engine is None:
        if wanted == "container":
            raise LaunchFailed(
                f"--demo-form container needs a container engine ({containers.ENGINE_SETTING})"
            )
        say("  no container engine: falling back to the process form (the launch gives a command)")
        return "process"
    if ensure_demo_image(platform.engine) is None:
        if wanted == "container":
            raise LaunchFailed("--demo-form container: the histolab image is not available")
        say("  falling back to the process form (the launch gives a command)")
        return "process"
    say(f"  form: container ({platform.engine.name}): the original's launch body, no command")
    return "container"


def run_demo(
    platform: Platform, *, reps: int, sim_hours: str, timeout: float, form: str = "auto"
) -> None:
    """Upload, launch, follow, print the KPIs: the seed's sample resource, done over REST."""
    say("")
    say(f"demo: the histolab lab simulation, {reps} replicas of {sim_hours} simulated hours")
    chosen = demo_form(platform, form)
    if chosen == "process":
        _check_histolab_installed()
    with Client(platform.api_url) as client:
        file_id = upload_sample(client)
        make_body = original_launch_request if chosen == "container" else launch_request
        body = make_body(file_id=file_id, reps=reps, sim_hours=sim_hours)
        with _step("launch"):
            service_id = client.services.launch(body).id
        say(f"  launched service {service_id}: POST {API_PREFIX}/service/launch -> 202")
        status = follow(client, service_id, platform=platform, timeout=timeout)
        if status.phase != Phase.SUCCEEDED:
            replicas = json.dumps(output.to_json(list(status.replicas)), indent=2)
            raise LaunchFailed(
                f"service {service_id} ended {status.phase}: {status.message}"
                f"\nreplicas: {replicas}\noperator log: {platform.logs_dir / 'operator.log'}"
            )
        outputs = []
        for idx in range(reps):
            with _step(f"output {idx}"):
                outputs.append(output.to_json(client.services.output(service_id, idx).output))
    say("")
    say(f"KPIs per replica (GET {API_PREFIX}/service/{service_id}/output/<idx>):")
    say(kpi_table(outputs))
    say("")
    say("try:")
    say(f"  dtpoc service status {service_id}")
    say(f"  dtpoc service output {service_id} 0 -o json")
    say("  dtpoc files list")
    say(f"  curl -s {platform.api_url}/service/{service_id}/status")
