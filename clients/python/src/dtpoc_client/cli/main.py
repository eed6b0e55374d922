"""The ``dtpoc`` command: the root group, global options and exit codes.

Exit codes scripts can trust: 0 done; 1 the server refused (its message on
stderr) or could not be reached; 2 a usage error (a bad flag, a missing
file, a launch spec that is not the launch body's shape); 3 ``service watch
--exit-status`` saw the service fail, 4 saw it terminated; 130 interrupted.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field

import click

from dtpoc_client import Client, errors
from dtpoc_client.cli import config

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_SERVICE_FAILED = 3
EXIT_SERVICE_TERMINATED = 4
EXIT_INTERRUPTED = 130


@dataclass
class State:
    """What the global options said; the client is made on first use."""

    server: str | None
    token: str | None
    context: str | None
    _client: Client | None = field(default=None, repr=False)

    def target(self) -> config.Target:
        try:
            return config.resolve(server=self.server, token=self.token, context=self.context)
        except config.ConfigError as exc:
            raise click.UsageError(str(exc)) from exc

    def client(self) -> Client:
        if self._client is None:
            target = self.target()
            read_in_large_pieces()
            self._client = Client(target.server, target.token or None)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


READ_BYTES = 1024 * 1024
"""What one socket read of an HTTP answer may bring: one chunk of the Files service."""


def read_in_large_pieces() -> None:
    """Let httpcore read an answer's body in pieces of up to :data:`READ_BYTES`.

    httpcore reads 64 KiB per call and h11 copies each piece twice on its way
    out: a 200 MiB download cost half a second of CPU in Python, a third of
    the command's whole run. Larger reads cut that by three quarters; memory
    stays bounded (one read). The knob is process-wide, so it is turned only
    here, in the command's own process, not by the library.
    """
    from httpcore._sync import http11

    if getattr(http11.HTTP11Connection, "READ_NUM_BYTES", READ_BYTES) < READ_BYTES:
        http11.HTTP11Connection.READ_NUM_BYTES = READ_BYTES


CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

COMMANDS = {
    "files": "dtpoc_client.cli.files:files",
    "service": "dtpoc_client.cli.services:service",
    "context": "dtpoc_client.cli.contexts:context",
    "version": "dtpoc_client.cli.misc:version",
    "up": "dtpoc_client.cli.misc:up",
    "completion": "dtpoc_client.cli.misc:completion",
}
"""Each top-level command and where it is defined (``module:attribute``)."""


class LazyGroup(click.Group):
    """Imports a command's module when the command is used.

    A run pays only for what it touches: ``dtpoc files upload -o json`` in a
    script never imports the live table, YAML or the syntax highlighter of
    ``service``, and the start-up is part of every transfer a user waits for.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *super().list_commands(ctx)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        module, _, attribute = COMMANDS[cmd_name].partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):  # pragma: no cover - a wrong table entry
            raise TypeError(f"{COMMANDS[cmd_name]} is not a click command")
        return command


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.option(
    "--server",
    metavar="URL",
    help="The gateway's URL (or grpc://host:port). Env DTPOC_SERVER; else the context's.",
)
@click.option(
    "--token",
    metavar="TOKEN",
    help="API bearer token. Env DTPOC_TOKEN; else the context's. Never printed.",
)
@click.option("--context", "context_name", metavar="NAME", help="Use this named context.")
@click.version_option(
    None, "--client-version", package_name="dtpoc-client", prog_name="dtpoc client"
)
@click.pass_context
def cli(
    ctx: click.Context, server: str | None, token: str | None, context_name: str | None
) -> None:
    """Work with the dtpoc platform: files, analytics services, the local platform.

    \b
    Examples:
      dtpoc up                                  # the platform on this machine
      dtpoc files upload input.xlsx
      dtpoc service launch -f examples/histolab/launch.yaml
      dtpoc service watch 6b0e... --exit-status
      dtpoc service output 6b0e... 0 -o json
    """
    state = State(server=server, token=token, context=context_name)
    ctx.obj = state
    ctx.call_on_close(state.close)


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit code (see the module docstring)."""
    try:
        result = cli.main(args=argv, prog_name="dtpoc", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except errors.InvalidSpec as exc:
        click.echo(f"error: {exc}", err=True)
        return EXIT_USAGE
    except errors.ApiError as exc:
        click.echo(f"error: {exc.message} ({exc.code} {exc.status or 'refused'})", err=True)
        return EXIT_REFUSED
    except errors.DtpocError as exc:
        click.echo(f"error: {exc}", err=True)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
