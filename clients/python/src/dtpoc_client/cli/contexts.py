"""``dtpoc context``: named servers and tokens, like kubectl's contexts.

Tokens are stored in the config file (owner-only) and never printed: a
listing says only whether a context has one.
"""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.table import Table

from dtpoc_client.cli import config, output


@click.group()
def context() -> None:
    """Named contexts (server and token) in the user's config file.

    \b
    Example:
      dtpoc context set hospital --server https://dtpoc.example.org --token-stdin < token
      dtpoc context use hospital
    """


@context.command(name="set")
@click.argument("name")
@click.option("--server", required=True, metavar="URL", help="The gateway's URL.")
@click.option("--token", metavar="TOKEN", help="API token to keep with the context.")
@click.option("--token-stdin", is_flag=True, help="Read the token from stdin (not in argv).")
@click.option("--use/--no-use", "make_current", default=False, help="Also make it current.")
def set_context(
    name: str, server: str, token: str | None, token_stdin: bool, make_current: bool
) -> None:
    """Add or replace a context.

    \b
    Example:
      dtpoc context set local --server http://127.0.0.1:8000 --use
    """
    if token and token_stdin:
        raise click.UsageError("give --token or --token-stdin, not both")
    if token_stdin:
        token = sys.stdin.read().strip()
    cfg = config.Config.load()
    cfg.contexts[name] = config.Context(server=server, token=token or "")
    if make_current or not cfg.current:
        cfg.current = name
    path = cfg.save()
    click.echo(f"context {name} saved in {path}" + (" (current)" if cfg.current == name else ""))


@context.command()
@click.argument("name")
def use(name: str) -> None:
    """Make a context the current one.

    \b
    Example:
      dtpoc context use hospital
    """
    cfg = config.Config.load()
    if name not in cfg.contexts:
        raise click.UsageError(f"no context named {name!r} (dtpoc context list)")
    cfg.current = name
    cfg.save()
    click.echo(f"now using context {name}")


@context.command(name="delete")
@click.argument("name")
def delete_context(name: str) -> None:
    """Remove a context.

    \b
    Example:
      dtpoc context delete old-cluster
    """
    cfg = config.Config.load()
    if cfg.contexts.pop(name, None) is None:
        raise click.UsageError(f"no context named {name!r}")
    if cfg.current == name:
        cfg.current = ""
    cfg.save()
    click.echo(f"context {name} deleted")


@context.command(name="list")
@output.output_option()
def list_contexts(fmt: str) -> None:
    """List contexts (the token only as set or not).

    \b
    Example:
      dtpoc context list -o yaml
    """
    cfg = config.Config.load()
    rows = [
        {"name": n, "server": c.server, "token": bool(c.token), "current": n == cfg.current}
        for n, c in sorted(cfg.contexts.items())
    ]

    def table(console: Console) -> None:
        grid = Table(box=None, header_style="bold")
        for column in ("CURRENT", "NAME", "SERVER", "TOKEN"):
            grid.add_column(column)
        for row in rows:
            grid.add_row(
                "*" if row["current"] else "",
                str(row["name"]),
                str(row["server"]),
                "set" if row["token"] else "-",
            )
        console.print(grid)

    output.emit(rows, fmt, table=table)
