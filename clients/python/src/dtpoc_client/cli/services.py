"""``dtpoc service``: launch, list, status, watch, logs, output, outputs, terminate, retry,
resubmit, suspend, resume."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import click
import yaml
from google.protobuf import json_format
from rich.console import Console, Group
from rich.live import Live
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2
from dtpoc_client import api
from dtpoc_client.cli import output
from dtpoc_client.cli.main import EXIT_SERVICE_FAILED, EXIT_SERVICE_TERMINATED, State

PHASE_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "terminated": "yellow",
    "running": "cyan",
    "pending": "dim",
}


@click.group()
def service() -> None:
    """Analytics services: launch one, follow it, read its outputs, stop it.

    \b
    Example:
      dtpoc service launch -f examples/histolab/launch.yaml
    """


def _pairs(values: tuple[str, ...], flag: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint=flag)
        pairs[key] = rest
    return pairs


def read_spec(source: str) -> dict[str, Any]:
    """A launch body from a YAML or JSON file (``-`` for stdin)."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except OSError as exc:
        raise click.BadParameter(f"cannot read {source}: {exc.strerror}", param_hint="-f") from exc
    except yaml.YAMLError as exc:
        raise click.BadParameter(f"{source} is not YAML or JSON: {exc}", param_hint="-f") from exc
    if not isinstance(data, dict):
        raise click.BadParameter(f"{source} is not a launch body (a map)", param_hint="-f")
    return data


def build_spec(spec: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """The file's body with the flags laid over it."""
    body = dict(spec)
    for key in ("image", "version", "description", "port"):
        if flags[key] is not None:
            body[key] = flags[key]
    for key, values, flag in (
        ("env", flags["env"], "--env"),
        ("labels", flags["label"], "--label"),
    ):
        if values:
            body[key] = {**(body.get(key) or {}), **_pairs(values, flag)}
    if flags["mount"]:
        body["mount_files"] = {
            **(body.get("mount_files") or {}),
            **_pairs(flags["mount"], "--mount"),
        }
    if flags["command"] is not None:
        body["command"] = shlex.split(flags["command"])
    ana = dict(body.get("ana") or {})
    for key in ("job_type", "reps", "schedule"):
        if flags[key] is not None:
            ana[key] = flags[key]
    if ana or not body.get("sim"):
        ana.setdefault("job_type", "ondemand")
        body["ana"] = ana
    if "image" not in body:
        raise click.UsageError("a launch needs an image: -f SPEC or --image")
    return body


@service.command()
@click.option(
    "-f", "--file", "spec_file", metavar="SPEC", help="Launch body, YAML or JSON; - is stdin."
)
@click.option("--image", help="Container image without the tag.")
@click.option("--version", help="Image tag.")
@click.option("--description", help="What the service is for.")
@click.option("--job-type", type=click.Choice(["ondemand", "scheduled", "persistent"]))
@click.option("--reps", type=click.IntRange(1, 100), help="Replicas (ondemand, scheduled).")
@click.option("--schedule", help="Five-field cron expression (scheduled).")
@click.option("--port", type=click.IntRange(1024, 65535), help="Port (persistent).")
@click.option("--env", multiple=True, metavar="KEY=VALUE", help="Environment; repeatable.")
@click.option("--mount", multiple=True, metavar="FILE_ID=NAME", help="Input under /input.")
@click.option("--label", multiple=True, metavar="KEY=VALUE", help="Label; repeatable.")
@click.option("--command", help="Entrypoint override, one shell-quoted string.")
@output.output_option()
@click.pass_obj
def launch(state: State, /, spec_file: str | None, fmt: str, **flags: Any) -> None:
    """Launch a service from a launch body (-f) and/or flags; prints its id.

    \b
    Examples:
      dtpoc service launch -f examples/histolab/launch.yaml --mount 6b0e...=input.xlsx
      dtpoc service launch --image ghcr.io/org/ana --version 1.2 --reps 2 --env SIM_HOURS=48
    """
    body = build_spec(read_spec(spec_file) if spec_file else {}, flags)
    answer = state.client().services.launch(api.launch_request(body))
    output.emit(answer, fmt, table=lambda console: console.print(answer.id))


def _epoch(seconds: float) -> str:
    if not seconds:
        return "-"
    return datetime.fromtimestamp(seconds, tz=UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _phase(phase: str) -> Text:
    return Text(phase or "-", style=PHASE_STYLE.get(phase, ""))


@service.command(name="list")
@click.option("--skip", type=click.IntRange(min=0), default=0, help="Records to skip.")
@click.option("--limit", type=click.IntRange(1, 1000), help="Records to show (server: 10).")
@click.option("--status", default="", help="Only services in this phase or status.")
@output.output_option()
@click.pass_obj
def list_services(state: State, skip: int, limit: int | None, status: str, fmt: str) -> None:
    """List services, newest first.

    \b
    Example:
      dtpoc service list --status running -o yaml
    """
    records = state.client().services.list(skip=skip, limit=limit, status=status)

    def table(console: Console) -> None:
        grid = Table(box=None, header_style="bold")
        grid.add_column("ID", no_wrap=True, min_width=24)
        grid.add_column("IMAGE", overflow="fold")
        grid.add_column("PHASE", no_wrap=True, min_width=10)
        grid.add_column("RUNS", no_wrap=True)
        grid.add_column("CREATED", no_wrap=True, min_width=19)
        grid.add_column("DESCRIPTION", overflow="ellipsis", no_wrap=True)
        for s in records:
            runs = f"{s.succeeded_runs}/{s.total_runs}" + (
                f" ({s.failed_runs} failed)" if s.failed_runs else ""
            )
            image = f"{s.image}:{s.version}" if s.version else s.image
            grid.add_row(s.id, image, _phase(s.phase), runs, _epoch(s.created_at), s.description)
        console.print(grid)

    output.emit(records, fmt, table=table)


def status_view(service_id: str, status: orchestrator_pb2.ServiceStatus) -> Group:
    """The people's view of a status: one summary line and a row per replica."""
    head = Text.assemble(
        (service_id, "bold"),
        "  ",
        _phase(status.phase),
        f"  {status.succeeded_runs}/{status.total_runs} succeeded",
        f", {status.active_runs} active" if status.active_runs else "",
        (f", {status.failed_runs} failed", "red") if status.failed_runs else "",
    )
    grid = Table(box=None, header_style="bold")
    for column in ("REPLICA", "STATE", "EXIT", "STARTED", "FINISHED", "OUTPUTS", "MESSAGE"):
        grid.add_column(column, no_wrap=column != "MESSAGE")
    for r in sorted(status.replicas, key=lambda r: r.index):
        grid.add_row(
            str(r.index),
            _phase(r.state),
            str(r.exit_code) if r.HasField("exit_code") else "-",
            _stamp(r, "start_time"),
            _stamp(r, "finish_time"),
            str(len(r.output_file_ids)),
            r.message or r.reason,
        )
    parts: list[Any] = [head]
    if status.message:
        parts.append(Text(status.message, style="dim"))
    parts.append(grid)
    return Group(*parts)


def _stamp(replica: Any, name: str) -> str:
    if not replica.HasField(name):
        return "-"
    moment = getattr(replica, name).ToDatetime(tzinfo=UTC)
    return str(moment.astimezone().strftime("%H:%M:%S"))


status = output.by_id(
    service,
    "status",
    argument="service_id",
    summary="Show a service's status, one row per replica.",
    fetch=lambda client, service_id: client.services.status(service_id),
    view=status_view,
    example="6b0e... -o json",
)


@service.command()
@click.argument("service_id")
@click.option(
    "--exit-status",
    is_flag=True,
    help="Exit 3 when the service ends failed, 4 when terminated (0 when succeeded).",
)
@output.output_option()
@click.pass_obj
def watch(state: State, service_id: str, exit_status: bool, fmt: str) -> int:
    """Follow a service until it ends: a live table, or one JSON/YAML document per change.

    \b
    Example:
      dtpoc service watch 6b0e... --exit-status && dtpoc service output 6b0e... 0
    """
    last = orchestrator_pb2.ServiceStatus()
    updates = state.client().services.watch(service_id)
    if fmt == "table":
        console = Console()
        with Live(status_view(service_id, last), console=console, auto_refresh=False) as live:
            for last in updates:
                live.update(status_view(service_id, last), refresh=True)
    else:
        for last in updates:
            if fmt == "json":
                click.echo(json.dumps(output.to_json(last), ensure_ascii=False))
            else:
                click.echo(
                    "---\n" + yaml.safe_dump(output.to_json(last), sort_keys=False), nl=False
                )
    if not exit_status:
        return 0
    return {"failed": EXIT_SERVICE_FAILED, "terminated": EXIT_SERVICE_TERMINATED}.get(last.phase, 0)


@service.command()
@click.argument("service_id")
@click.argument("idx", type=click.IntRange(min=0))
@click.option(
    "-f", "--follow", is_flag=True, help="Keep printing new lines until the replica ends."
)
@click.option("--attempt", type=click.IntRange(min=1), help="Which attempt (default: the latest).")
@click.option("--tail", "tail_lines", type=click.IntRange(min=0), help="Only the last N lines.")
@click.option(
    "--since", "since_seconds", type=click.IntRange(min=1), help="Only the last N seconds."
)
@click.option("--timestamps", is_flag=True, help="Start each line with the time it was printed.")
@click.pass_obj
def logs(
    state: State,
    service_id: str,
    idx: int,
    follow: bool,
    attempt: int | None,
    tail_lines: int | None,
    since_seconds: int | None,
    timestamps: bool,
) -> None:
    """Print replica IDX's log (stdout and stderr), live while it runs, kept after.

    \b
    Example:
      dtpoc service logs 6b0e... 0 -f
    """
    pieces = state.client().services.logs(
        service_id,
        idx,
        follow=follow,
        attempt=attempt,
        tail_lines=tail_lines,
        since_seconds=since_seconds,
        timestamps=timestamps,
    )
    for piece in pieces:
        click.echo(piece, nl=False)


@service.command(name="output")
@click.argument("service_id")
@click.argument("idx", type=click.IntRange(min=0))
@output.output_option()
@click.pass_obj
def output_command(state: State, service_id: str, idx: int, fmt: str) -> None:
    """Show replica IDX's output: its JSON document, or the list of its files.

    \b
    Example:
      dtpoc service output 6b0e... 0 -o json | jq .kpis
    """
    answer = state.client().services.output(service_id, idx)
    document = output.plain(json_format.MessageToDict(answer.output))

    def table(console: Console) -> None:
        console.print(Syntax(json.dumps(document, indent=2, ensure_ascii=False), "json"))

    output.emit(document, fmt, table=table)


@service.command()
@click.argument("service_id")
@output.output_option()
@click.pass_obj
def outputs(state: State, service_id: str, fmt: str) -> None:
    """List every replica's output files.

    \b
    Example:
      dtpoc service outputs 6b0e... && dtpoc files get FILE_ID -O kpis.json
    """
    replicas = state.client().services.outputs(service_id)

    def table(console: Console) -> None:
        grid = Table(box=None, header_style="bold")
        for column in ("REPLICA", "STATE", "FILE", "PATH", "SIZE"):
            grid.add_column(column, no_wrap=True)
        for replica in replicas:
            for f in replica.files or [None]:
                grid.add_row(
                    str(replica.idx),
                    _phase(replica.state),
                    f.file_id if f else "-",
                    f.path if f else "-",
                    output.human_bytes(f.length) if f else "-",
                )
        console.print(grid)

    output.emit(replicas, fmt, table=table)


class _Said(Protocol):
    """An answer whose ``message`` is what the table view prints."""

    message: str


def _message(_service_id: str, answer: _Said) -> str:
    return answer.message


def _lifecycle(
    name: str, *, summary: str, call: Callable[[api.Services, str], _Said]
) -> click.Command:
    """``dtpoc service NAME SERVICE_ID``: one lifecycle call; the table view prints its message."""
    return output.by_id(
        service,
        name,
        argument="service_id",
        summary=summary,
        fetch=lambda client, service_id: call(client.services, service_id),
        view=_message,
    )


terminate = _lifecycle(
    "terminate",
    summary="Stop a service's replicas; its record and outputs stay.",
    call=api.Services.terminate,
)
retry = _lifecycle(
    "retry",
    summary="Run a finished service's failed replicas again (scheduled: of its latest run).",
    call=api.Services.retry,
)
resubmit = output.by_id(
    service,
    "resubmit",
    argument="service_id",
    summary="Launch a service's spec and inputs again as a new service; prints its id.",
    fetch=lambda client, service_id: {"id": client.services.resubmit(service_id)},
    view=lambda _service_id, answer: answer["id"],
)
suspend = _lifecycle(
    "suspend",
    summary="Stop a scheduled service from starting new runs.",
    call=api.Services.suspend,
)
resume = _lifecycle(
    "resume",
    summary="Let a suspended scheduled service run on schedule again.",
    call=api.Services.resume,
)
