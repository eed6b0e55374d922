"""The demo of ``make run``: what a user does through the REST API, done for them.

Upload the sample workbook, launch the histolab simulation with two replicas
over REST (with a container engine, exactly the body a client of the original
sends: its image, no command; the image is built first when missing), follow
its progress on the watch stream and print each replica's KPIs. A failure
raises :class:`~dtpoc_local.platform.LaunchFailed` naming the step.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx

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


def _answer(response: httpx.Response, what: str) -> Any:
    """The JSON answer, or LaunchFailed naming the step and the API's own message."""
    if response.status_code >= 400:
        raise LaunchFailed(f"{what}: HTTP {response.status_code}: {response.text[:500]}")
    return response.json()


def upload_sample(client: httpx.Client) -> str:
    """Upload the sample workbook as a user would (multipart); answers its file id."""
    with SAMPLE_WORKBOOK.open("rb") as workbook:
        reply = _answer(
            client.post(
                "/files/upload",
                files={
                    "file": (
                        "input.xlsx",
                        workbook,
                        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    )
                },
            ),
            "upload of the sample workbook",
        )
    note = f" ({reply['message']})" if reply.get("message") else ""
    say(f"  uploaded {SAMPLE_WORKBOOK.relative_to(REPO_ROOT)} -> file {reply['file_id']}{note}")
    return str(reply["file_id"])


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


def _progress_line(status: dict[str, Any], started: float) -> str:
    counts = (
        f"{status.get('active_runs', 0)} running, {status.get('succeeded_runs', 0)} succeeded, "
        f"{status.get('failed_runs', 0)} failed of {status.get('total_runs', 0)}"
    )
    return f"  [{time.monotonic() - started:6.1f}s] {status.get('phase') or '?':<10} {counts}"


def _unwrap_status(event: Any) -> dict[str, Any]:
    """A status object from a watch event (``{"status": {...}}``) or a status answer."""
    if isinstance(event, dict):
        inner = event.get("status")
        status: dict[str, Any] = inner if isinstance(inner, dict) else event
        return status
    return {}


def _finished(status: dict[str, Any]) -> bool:
    """Final phase, and for a success every replica's outputs are stored in Files."""
    phase = status.get("phase")
    if phase not in FINAL_PHASES:
        return False
    if phase != Phase.SUCCEEDED:
        return True
    replicas = status.get("replicas") or []
    if replicas:
        return all(r.get("outputs_collected") for r in replicas)
    return len(status.get("output_files") or []) >= int(status.get("total_runs") or 0)


def _watch_events(client: httpx.Client, service_id: str) -> Iterator[dict[str, Any]]:
    """Statuses from the Server-Sent Events stream; returns when the stream ends or idles."""
    with client.stream(
        "GET", f"/service/{service_id}/watch", timeout=httpx.Timeout(10.0, read=5.0)
    ) as response:
        if response.status_code >= 400:
            response.read()
            raise LaunchFailed(f"watch: HTTP {response.status_code}: {response.text[:300]}")
        kind = ""
        with contextlib.suppress(httpx.ReadTimeout):
            for line in response.iter_lines():
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data = json.loads(line[5:].strip())
                    if kind == "error":
                        raise LaunchFailed(f"watch of service {service_id} failed: {data}")
                    yield _unwrap_status(data)
                elif not line:
                    kind = ""


def follow(
    client: httpx.Client, service_id: str, *, platform: Platform, timeout: float
) -> dict[str, Any]:
    """Print each change of the service's status until it is final; return the last one.

    Follows the SSE watch endpoint, reconnecting when it idles (every
    reconnect first sends the current status), and checks between events
    that no platform process has died.
    """
    started = time.monotonic()
    last_line = ""
    status: dict[str, Any] = {}
    while True:
        for status in _watch_events(client, service_id):
            line = _progress_line(status, started)
            if line.split("]", 1)[1] != last_line.split("]", 1)[-1]:
                say(line)
                last_line = line
            if _finished(status):
                return status
            platform.check_alive()
        platform.check_alive()
        if time.monotonic() - started > timeout:
            raise LaunchFailed(
                f"service {service_id} did not finish within {timeout:g}s; last status: "
                f"{json.dumps(status)}"
            )
        status = _unwrap_status(
            _answer(client.get(f"/service/{service_id}/status"), "service status")
        )
        if _finished(status):
            say(_progress_line(status, started))
            return status


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
    with httpx.Client(base_url=platform.api_url, timeout=30.0) as client:
        file_id = upload_sample(client)
        make_body = original_launch_request if chosen == "container" else launch_request
        body = make_body(file_id=file_id, reps=reps, sim_hours=sim_hours)
        service_id = str(_answer(client.post("/service/launch", json=body), "launch")["id"])
        say(f"  launched service {service_id}: POST {API_PREFIX}/service/launch -> 202")
        status = follow(client, service_id, platform=platform, timeout=timeout)
        if status.get("phase") != Phase.SUCCEEDED:
            replicas = json.dumps(status.get("replicas", []), indent=2)
            raise LaunchFailed(
                f"service {service_id} ended {status.get('phase')}: {status.get('message', '')}"
                f"\nreplicas: {replicas}\noperator log: {platform.logs_dir / 'operator.log'}"
            )
        outputs = [
            _answer(client.get(f"/service/{service_id}/output/{idx}"), f"output {idx}")
            for idx in range(reps)
        ]
    say("")
    say(f"KPIs per replica (GET {API_PREFIX}/service/{service_id}/output/<idx>):")
    say(kpi_table(outputs))
    say("")
    say("try:")
    say(f"  curl -s {platform.api_url}/service/{service_id}/status")
    say(f"  curl -s {platform.api_url}/service/{service_id}/output/0")
    say(f"  curl -s {platform.api_url}/files")
