"""``dtpoc files``: upload, list, get, info, rm."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING

import click

from dtpoc.files.v1alpha1 import files_pb2
from dtpoc_client.cli import output
from dtpoc_client.cli.main import State

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table


@contextlib.contextmanager
def transfer_bar(label: str, total: int | None, *, show: bool) -> Iterator[Progress | None]:
    """A progress bar on stderr (bytes, rate, ETA) when ``show``; else nothing."""
    if not show:
        yield None
        return
    # Rich's progress bar loads only when shown: a script's transfer starts faster.
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=output.stderr(),
        transient=False,
    )
    with bar:
        bar.add_task(label, total=total)
        yield bar


def _advance(bar: Progress | None, size: int) -> None:
    if bar is not None:
        bar.advance(bar.task_ids[0], size)


@click.group()
def files() -> None:
    """Stored files: inputs you upload and the outputs replicas write.

    \b
    Example:
      dtpoc files upload input.xlsx && dtpoc files list
    """


@files.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", help="Store under this file name (default: the file's own).")
@click.option("--content-type", default="", help="MIME type to store.")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr.")
@output.output_option()
@click.pass_obj
def upload(
    state: State, path: Path, name: str | None, content_type: str, progress: bool | None, fmt: str
) -> None:
    """Upload a file; prints its id (the existing one when the content is stored already).

    \b
    Example:
      dtpoc files upload examples/histolab/sample/input.xlsx -o json
    """
    show = output.is_terminal() if progress is None else progress
    client = state.client()
    with transfer_bar(f"upload {path.name}", path.stat().st_size, show=show) as bar:
        answer = client.files.upload(
            path, filename=name, content_type=content_type, progress=lambda n: _advance(bar, n)
        )

    def table(console: Console) -> None:
        said = f" ({answer.message})" if answer.message else ""
        console.print(f"{answer.file_id}  {answer.filename}{said}")

    output.emit(answer, fmt, table=table)


def _when(info: files_pb2.FileInfo) -> str:
    if not info.HasField("uploadDate"):
        return "-"
    moment = info.uploadDate.ToDatetime(tzinfo=UTC)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def files_table(records: list[files_pb2.FileInfo]) -> Table:
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    table.add_column("ID", no_wrap=True, min_width=24)
    table.add_column("NAME", overflow="fold")
    table.add_column("SIZE", no_wrap=True, justify="right")
    table.add_column("UPLOADED", no_wrap=True, min_width=19)
    for info in records:
        table.add_row(info.file_id, info.filename, output.human_bytes(info.length), _when(info))
    return table


@files.command(name="list")
@click.option("--skip", type=click.IntRange(min=0), default=0, help="Records to skip.")
@click.option("--limit", type=click.IntRange(1, 1000), help="Records to show (server: 10).")
@click.option(
    "--service",
    "service_id",
    default="",
    help="Only files of this service: its outputs and its replicas' logs.",
)
@click.option("--replica", type=click.IntRange(min=0), help="Only outputs of this replica.")
@click.option("--name", "filename", default="", help="Only files with this exact name.")
@output.output_option()
@click.pass_obj
def list_files(
    state: State,
    skip: int,
    limit: int | None,
    service_id: str,
    replica: int | None,
    filename: str,
    fmt: str,
) -> None:
    """List stored files, newest first.

    \b
    Example:
      dtpoc files list --service 6b0e... -o yaml
    """
    records = state.client().files.list(
        skip=skip, limit=limit, service_id=service_id, replica_index=replica, filename=filename
    )
    output.emit(records, fmt, table=lambda console: console.print(files_table(records)))


info = output.by_id(
    files,
    "info",
    argument="file_id",
    summary="Show one file's record.",
    fetch=lambda client, file_id: client.files.info(file_id),
    view=lambda _file_id, record: files_table([record]),
    example="6b0e... -o json",
)


@files.command()
@click.argument("file_id")
@click.option(
    "-O",
    "--output-file",
    "dest",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write to this file (replaced once complete). Default: stdout.",
)
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr.")
@click.pass_obj
def get(state: State, file_id: str, dest: Path | None, progress: bool | None) -> None:
    """Download a file's bytes to -O PATH, or to stdout.

    \b
    Examples:
      dtpoc files get 6b0e... -O input.xlsx
      dtpoc files get 6b0e... > kpis.json
    """
    show = output.is_terminal() if progress is None else progress
    client = state.client()
    bar_holder: list[Progress | None] = [None]
    with contextlib.ExitStack() as stack:

        def sized(record: files_pb2.FileInfo) -> None:
            bar_holder[0] = stack.enter_context(
                transfer_bar(f"get {record.filename or file_id}", record.length or None, show=show)
            )

        target = dest if dest is not None else sys.stdout.buffer
        client.files.download(
            file_id, target, on_info=sized, progress=lambda n: _advance(bar_holder[0], n)
        )
        if dest is None:
            sys.stdout.buffer.flush()


@files.command()
@click.argument("file_id")
@click.option("--force", is_flag=True, help="Delete even while a live service mounts it.")
@output.output_option()
@click.pass_obj
def rm(state: State, file_id: str, force: bool, fmt: str) -> None:
    """Delete one upload of a file (the file goes with its last reference).

    \b
    Example:
      dtpoc files rm 6b0e... --force
    """
    answer = state.client().files.delete(file_id, force=force)
    output.emit(answer, fmt, table=lambda console: console.print(answer.message))
