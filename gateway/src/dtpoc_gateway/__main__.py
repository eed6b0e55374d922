"""``dtpoc-gateway``: serve the REST gateway; ``dtpoc-gateway hash-token``: hash a token.

Serving reads its settings from ``DTPOC_GATEWAY_*`` and stops with a clear
message (exit status 2) when they cannot make a safe gateway, e.g. no token
hashes and no explicit ``DTPOC_GATEWAY_AUTH_DISABLED=true``. Uvicorn serves
the application and on SIGTERM stops accepting connections and gives
in-flight requests ``shutdown_grace_seconds`` to finish.

``hash-token`` reads one token from standard input (without echo on a
terminal) and prints its SHA-256, the line to put into the tokens file; the
token itself is never stored by the gateway.
"""

from __future__ import annotations

import argparse
import getpass
import sys

import pydantic
import uvicorn

from dtpoc_common import logging as dlog
from dtpoc_gateway import app, auth, catalog, httpserver, settings


def _hash_token() -> int:
    interactive = sys.stdin.isatty()
    token = getpass.getpass("token: ") if interactive else sys.stdin.read().rstrip("\r\n")
    if not token.strip():
        print("dtpoc-gateway hash-token: no token on standard input", file=sys.stderr)
        return 2
    if token != token.strip():
        print("dtpoc-gateway hash-token: the token has surrounding spaces", file=sys.stderr)
        return 2
    print(auth.hash_token(token))
    return 0


def _serve() -> int:
    try:
        config = settings.GatewaySettings()
    except pydantic.ValidationError as exc:
        print(f"dtpoc-gateway: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    dlog.configure(config.log_level)
    try:
        host, port = config.listen_host_port()
        application = app.build(config)
    except (settings.SettingsError, catalog.CatalogError) as exc:
        print(f"dtpoc-gateway: {exc}", file=sys.stderr)
        return 2
    server = uvicorn.Server(
        uvicorn.Config(
            application,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=int(config.shutdown_grace_seconds) or None,
            timeout_keep_alive=config.keep_alive_seconds,
            http=httpserver.protocol_class(header_timeout_seconds=config.header_timeout_seconds),
            h11_max_incomplete_event_size=config.max_header_bytes,
            limit_concurrency=config.limit_concurrency,
            backlog=config.backlog,
            lifespan="on",
        )
    )
    server.run()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dtpoc-gateway",
        description="REST gateway of dtpoc, transcoding HTTP/JSON to the gRPC services.",
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve the REST API (the default)")
    commands.add_parser("hash-token", help="print the SHA-256 of a token read from stdin")
    args = parser.parse_args(argv)
    if args.command == "hash-token":
        return _hash_token()
    return _serve()


if __name__ == "__main__":
    sys.exit(main())
