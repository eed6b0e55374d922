"""``dtpoc-files``: run the Files service until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio

from dtpoc_common import grpcauth, grpcserver
from dtpoc_common import logging as dlog
from dtpoc_files import authz, server
from dtpoc_files.settings import FilesSettings

#: Exit status when the configuration does not allow starting.
EXIT_CONFIGURATION = 2


async def _run(settings: FilesSettings, auth: grpcauth.AuthInterceptor | None) -> None:
    registrations, cleanup = await server.build(settings)
    await grpcserver.serve(registrations, settings, on_stop=[cleanup], auth=auth)


def main() -> None:
    settings = FilesSettings()
    dlog.configure(settings.log_level)
    try:
        auth = authz.interceptor(settings)
        grpcauth.own_token(settings.grpc_token_file)
    except ValueError as exc:
        dlog.get_logger("dtpoc_files").error("cannot start", reason=str(exc))
        raise SystemExit(EXIT_CONFIGURATION) from None
    asyncio.run(_run(settings, auth))


if __name__ == "__main__":
    main()
