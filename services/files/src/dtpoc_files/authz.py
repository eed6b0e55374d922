"""Who may call which Files method (the mechanism is :mod:`dtpoc_common.grpcauth`).

- the gateway: everything people may do through REST (upload, download,
  info, list, delete);
- the operator: store replica outputs (``UploadFile``) and read files
  (``GetFile``, ``GetFileInfo``: the local runtime fetches inputs itself);
- the orchestrator: check mounts and read outputs (``GetFileInfo``,
  ``ListFiles``, ``GetFile``) and announce mounts (``PrepareMount``);
- a fetch token (the init container of a replica): ``GetFile`` of the ids
  its service mounts, nothing else.

Nobody else reaches a method: a replica's own container has no credential.

Within ``UploadFile``, output labels (``service_id``, ``replica_index``)
are the operator's alone: with the gateway's token anyone could otherwise
plant files that a service's ``output/{idx}`` answers or that deletion
treats as another service's recorded output.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dtpoc.files.v1alpha1 import files_pb2
from dtpoc_common import errors, grpcauth
from dtpoc_files import domain
from dtpoc_files.settings import FilesSettings

_SERVICE = files_pb2.DESCRIPTOR.services_by_name["FilesService"].full_name


def _method(name: str) -> str:
    return f"/{_SERVICE}/{name}"


def _requested_file(request: Any) -> str:
    return str(request.file_id)


POLICY = grpcauth.Policy(
    callers={
        _method("UploadFile"): frozenset({grpcauth.GATEWAY, grpcauth.OPERATOR}),
        _method("GetFile"): frozenset({grpcauth.GATEWAY, grpcauth.OPERATOR, grpcauth.ORCHESTRATOR}),
        _method("GetFileInfo"): frozenset(
            {grpcauth.GATEWAY, grpcauth.OPERATOR, grpcauth.ORCHESTRATOR}
        ),
        _method("ListFiles"): frozenset({grpcauth.GATEWAY, grpcauth.ORCHESTRATOR}),
        _method("DeleteFile"): frozenset({grpcauth.GATEWAY}),
        _method("PrepareMount"): frozenset({grpcauth.ORCHESTRATOR}),
    },
    fetcher={_method("GetFile"): _requested_file},
)


def interceptor(settings: FilesSettings) -> grpcauth.AuthInterceptor | None:
    """The server's authentication; None only with ``DTPOC_FILES_INSECURE_NO_AUTH``."""
    return grpcauth.configured_interceptor(
        env_prefix="DTPOC_FILES",
        caller_tokens_dir=settings.caller_tokens_dir,
        insecure_no_auth=settings.insecure_no_auth,
        fetch_key_file=settings.fetch_key_file,
        policy=POLICY,
    )


#: Who may store files labelled as a replica's output.
OUTPUT_WRITERS = frozenset({grpcauth.OPERATOR})


def check_output_labels(metadata: Mapping[str, Any], *, authenticated: bool) -> None:
    """Refuse (PERMISSION_DENIED) output labels from anyone but the operator.

    ``authenticated`` False is a server explicitly serving everyone
    (``DTPOC_FILES_INSECURE_NO_AUTH``): there is no caller to tell apart."""
    labels = domain.output_labels(metadata)
    if not labels or not authenticated:
        return
    caller = grpcauth.current_caller()
    if caller is not None and caller.grant is None and caller.name in OUTPUT_WRITERS:
        return
    who = f"the {caller.name}" if caller is not None else "an unknown caller"
    raise errors.PermissionDenied(
        f"metadata {', '.join(labels)} marks a file as a replica's output; only the "
        f"platform's operator stores outputs, not {who}: upload without these keys",
        field="header.metadata",
    )
