"""Error kinds the orchestrator needs beyond :mod:`dtpoc_common.errors`.

The shared server interceptor answers any :class:`~dtpoc_common.errors.DomainError`
with its ``code``, so a subclass here is all it takes to add a status code.
"""

from __future__ import annotations

import grpc

from dtpoc_common import errors


class PermissionDenied(errors.DomainError):
    """A dependency (the Kubernetes API server) refused our credentials."""

    code = grpc.StatusCode.PERMISSION_DENIED
