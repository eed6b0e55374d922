"""The API's methods as the protos declare them: descriptors and REST bindings.

The client builds its REST requests from the same ``google.api.http``
rules the gateway serves, read from the generated descriptors, so no path
is written twice and an RPC added to the protos is reachable at once.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from functools import cache

from google.api import annotations_pb2
from google.protobuf import descriptor, message

from dtpoc.files.v1alpha1 import files_pb2
from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2

FILES = files_pb2.DESCRIPTOR.services_by_name["FilesService"]
ORCHESTRATOR = orchestrator_pb2.DESCRIPTOR.services_by_name["OrchestratorService"]
API_VERSION = "v1alpha1"
"""The protos' package version, which is the REST prefix's last segment."""

_VARIABLE = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


@dataclass(frozen=True)
class Binding:
    """One REST binding of a method: verb, path template, body and response field."""

    verb: str
    template: str
    body: str
    response_body: str

    def path_fields(self) -> list[str]:
        return _VARIABLE.findall(self.template)

    def path(self, request: message.Message) -> str:
        """The template with the request's path fields filled in (URL-quoted)."""

        def fill(match: re.Match[str]) -> str:
            value = getattr(request, match.group(1))
            return urllib.parse.quote(str(value), safe="")

        return _VARIABLE.sub(fill, self.template)


def method(name: str) -> descriptor.MethodDescriptor:
    """The method ``name`` of FilesService or OrchestratorService."""
    for service in (FILES, ORCHESTRATOR):
        if name in service.methods_by_name:
            return service.methods_by_name[name]
    raise KeyError(f"no RPC named {name}")


@cache
def binding(name: str) -> Binding:
    """The primary REST binding of RPC ``name`` (KeyError when it has none)."""
    rule = method(name).GetOptions().Extensions[annotations_pb2.http]
    verb = rule.WhichOneof("pattern")
    if verb is None or verb == "custom":
        raise KeyError(f"{name} has no REST binding")
    return Binding(
        verb=verb.upper(),
        template=str(getattr(rule, verb)),
        body=rule.body,
        response_body=rule.response_body,
    )


def api_prefix() -> str:
    """The REST prefix, from the health route (``/api/orchestrator/v1alpha1``)."""
    template = binding("Healthz").template
    return template.rsplit("/", 1)[0]
