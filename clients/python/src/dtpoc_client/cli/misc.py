"""``dtpoc version``, ``dtpoc up`` and ``dtpoc completion``."""

from __future__ import annotations

import importlib
from typing import Any

import click
from click.shell_completion import get_completion_class
from rich.console import Console
from rich.table import Table

from dtpoc_client import Client, __version__, errors
from dtpoc_client.cli import output
from dtpoc_client.cli.main import EXIT_REFUSED, State

UP_MODULE = "dtpoc_local.up"
"""The local platform (``make run``); its ``main(argv) -> int`` takes ``dtpoc up``'s arguments."""


def server_versions(client: Client) -> tuple[str, str]:
    """The server's release and API version; a server older than ``GetVersion`` has no
    release to tell (its API version comes from its OpenAPI document then)."""
    try:
        answer = client.version()
    except (errors.NotFound, errors.ServerError) as exc:
        if exc.code not in (404, 501):
            raise
        return "unknown (the server predates GetVersion)", client.api_version()
    return answer.version, answer.api_version


@click.command()
@output.output_option()
@click.pass_obj
def version(state: State, fmt: str) -> None:
    """Show the client's version and the server's: its release, API version and health.

    \b
    Example:
      dtpoc version -o json
    """
    target = state.target()
    info: dict[str, Any] = {"client": __version__, "server": target.server}
    try:
        client = state.client()
        info["server_version"], info["api"] = server_versions(client)
        info["health"] = client.healthz()
    except errors.DtpocError as exc:
        info["server_version"] = info["api"] = "unknown"
        info["health"] = f"unreachable: {exc}"

    def table(console: Console) -> None:
        grid = Table(box=None, show_header=False)
        for key, value in info.items():
            grid.add_row(key, str(value))
        console.print(grid)

    output.emit(info, fmt, table=table)


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def up(args: tuple[str, ...]) -> int:
    """Start the platform on this machine (what `make run` runs); `dtpoc up --help` for its flags.

    \b
    Examples:
      dtpoc up                      # start, run the demo, serve until Ctrl-C
      dtpoc up --no-demo --port 8080
    """
    try:
        module = importlib.import_module(UP_MODULE)
    except ModuleNotFoundError as exc:
        click.echo(
            f"error: dtpoc up needs the local platform package ({exc.name} is not installed;"
            " in the repository: uv sync)",
            err=True,
        )
        return EXIT_REFUSED
    code = module.main(list(args))
    return int(code or 0)


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script.

    \b
    Example:
      eval "$(dtpoc completion bash)"     # in ~/.bashrc
    """
    from dtpoc_client.cli.main import cli

    cls = get_completion_class(shell)
    assert cls is not None  # the choice lists only shells click knows
    click.echo(cls(cli, {}, "dtpoc", "_DTPOC_COMPLETE").source())
