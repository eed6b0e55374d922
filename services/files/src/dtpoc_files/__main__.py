"""``dtpoc-files``: run the Files service until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio

from dtpoc_common import grpcserver
from dtpoc_common import logging as dlog
from dtpoc_files import server
from dtpoc_files.settings import FilesSettings


async def _run(settings: FilesSettings) -> None:
    registrations, cleanup = await server.build(settings)
    await grpcserver.serve(registrations, settings, on_stop=[cleanup])


def main() -> None:
    settings = FilesSettings()
    dlog.configure(settings.log_level)
    asyncio.run(_run(settings))


if __name__ == "__main__":
    main()
