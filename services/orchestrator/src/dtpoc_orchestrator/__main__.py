"""``dtpoc-orchestrator``: run the Orchestrator service until SIGTERM/SIGINT.

``--backend local|kubernetes`` overrides ``DTPOC_ORCHESTRATOR_BACKEND``.
"""

from __future__ import annotations

import argparse
import asyncio

from dtpoc_common import grpcauth, grpcserver
from dtpoc_common import logging as dlog
from dtpoc_orchestrator import authz, server
from dtpoc_orchestrator.settings import BACKEND_KUBERNETES, BACKEND_LOCAL, OrchestratorSettings

log = dlog.get_logger("dtpoc_orchestrator")

#: Exit status when the configuration does not allow starting.
EXIT_CONFIGURATION = 2


async def _run(settings: OrchestratorSettings, auth: grpcauth.AuthInterceptor | None) -> None:
    registrations, cleanup = await server.build(settings)
    await grpcserver.serve(registrations, settings, on_stop=[cleanup], auth=auth)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="dtpoc-orchestrator",
        description="Orchestrator service; settings come from DTPOC_ORCHESTRATOR_* variables.",
    )
    parser.add_argument(
        "--backend",
        choices=(BACKEND_LOCAL, BACKEND_KUBERNETES),
        help="where Analytics resources live (default: $DTPOC_ORCHESTRATOR_BACKEND or kubernetes)",
    )
    options = parser.parse_args(argv)
    settings = OrchestratorSettings()
    if options.backend:
        settings = settings.model_copy(update={"backend": options.backend})
    dlog.configure(settings.log_level)
    try:
        auth = authz.interceptor(settings)
        grpcauth.own_token(settings.grpc_token_file)
    except ValueError as exc:
        log.error("cannot start", reason=str(exc))
        raise SystemExit(EXIT_CONFIGURATION) from None
    try:
        asyncio.run(_run(settings, auth))
    except server.StartupError as exc:
        log.error("cannot start", reason=str(exc))
        raise SystemExit(EXIT_CONFIGURATION) from None


if __name__ == "__main__":
    main()
