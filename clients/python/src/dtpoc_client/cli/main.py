"""The ``dtpoc`` command: the root group, global options and exit codes.

Exit codes scripts can trust: 0 done; 1 the server refused (its message on
stderr) or could not be reached; 2 a usage error (a bad flag, a missing
file, a launch spec that is not the launch body's shape); 3 ``service watch
--exit-status`` saw the service fail, 4 saw it terminated; 130 interrupted.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import click

from dtpoc_client import Client, __version__, errors
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
            self._client = Client(target.server, target.token or None)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT_SETTINGS)
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
@click.version_option(__version__, "--client-version", prog_name="dtpoc client")
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


def _register() -> None:
    from dtpoc_client.cli import contexts, files, misc, services

    cli.add_command(files.files)
    cli.add_command(services.service)
    cli.add_command(contexts.context)
    for command in misc.COMMANDS:
        cli.add_command(command)


_register()


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
