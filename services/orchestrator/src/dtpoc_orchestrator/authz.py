"""Who may call which Orchestrator method (the mechanism is :mod:`dtpoc_common.grpcauth`).

The gateway may call every method people reach through REST (``GetFileUsage``
is one: ``GET /files/{id}/usage``); the Files service may ask ``GetFileUsage``
before a delete and nothing else. The
operator never calls the orchestrator (it watches the Analytics store
itself), so it has no method here; fetch tokens are not accepted at all.
"""

from __future__ import annotations

from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2
from dtpoc_common import grpcauth
from dtpoc_orchestrator.settings import OrchestratorSettings

_DESCRIPTOR = orchestrator_pb2.DESCRIPTOR.services_by_name["OrchestratorService"]

#: Methods the Files service calls (the gateway may call every method).
_FILES_METHODS = frozenset({"GetFileUsage"})


def _policy() -> grpcauth.Policy:
    callers: dict[str, frozenset[str]] = {}
    for method in _DESCRIPTOR.methods:
        path = f"/{_DESCRIPTOR.full_name}/{method.name}"
        callers[path] = frozenset(
            {grpcauth.GATEWAY, grpcauth.FILES}
            if method.name in _FILES_METHODS
            else {grpcauth.GATEWAY}
        )
    return grpcauth.Policy(callers=callers)


POLICY = _policy()


def interceptor(settings: OrchestratorSettings) -> grpcauth.AuthInterceptor | None:
    """The server's authentication; None only with ``DTPOC_ORCHESTRATOR_INSECURE_NO_AUTH``."""
    return grpcauth.configured_interceptor(
        env_prefix="DTPOC_ORCHESTRATOR",
        caller_tokens_dir=settings.caller_tokens_dir,
        insecure_no_auth=settings.insecure_no_auth,
        fetch_key_file=None,
        policy=POLICY,
    )
