"""An Analytics resource (a dict, from either store) as a domain object.

The status is written by another program; a status the contract cannot
parse is logged and treated as "no status yet" rather than failing every
answer about the service.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from dtpoc.analytics.v1alpha1 import analytics_pb2
from dtpoc_common import analytics
from dtpoc_common import logging as dlog
from dtpoc_orchestrator import domain

log = dlog.get_logger(__name__)


def from_resource(raw: dict[str, Any]) -> domain.AnalyticsObject:
    metadata = raw.get("metadata") or {}
    name = str(metadata.get("name", ""))
    try:
        spec = analytics.spec_from_dict(raw.get("spec") or {})
    except json_format.ParseError as exc:
        log.warning("unparsable analytics spec", service_id=name, error=str(exc)[:300])
        spec = analytics_pb2.AnalyticsSpec()
    try:
        status = analytics.status_from_dict(raw.get("status") or {})
    except json_format.ParseError as exc:
        log.warning("unparsable analytics status", service_id=name, error=str(exc)[:300])
        status = analytics_pb2.AnalyticsStatus()
    return domain.AnalyticsObject(
        name=name,
        namespace=str(metadata.get("namespace", "")),
        spec=spec,
        status=status,
        labels=dict(metadata.get("labels") or {}),
        generation=int(metadata.get("generation") or 1),
        deleting=bool(metadata.get("deletionTimestamp")),
    )
