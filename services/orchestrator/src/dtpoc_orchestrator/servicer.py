"""The gRPC edge: messages in, use cases called, messages out. Decides nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from importlib import metadata
from typing import Any, TypedDict

from google.protobuf import json_format, struct_pb2

from dtpoc.orchestrator.v1alpha1 import orchestrator_pb2, orchestrator_pb2_grpc
from dtpoc_common.vocabulary import JobType
from dtpoc_orchestrator import admission, domain, logs, service, status

SERVICE_NAME = orchestrator_pb2.DESCRIPTOR.services_by_name["OrchestratorService"].full_name


def _optional(message: Any, name: str) -> Any:
    return getattr(message, name) if message.HasField(name) else None


def launch_request(message: orchestrator_pb2.LaunchServiceRequest) -> domain.LaunchRequest:
    options = None
    if message.HasField("ana"):
        ana = message.ana
        reps = _optional(ana, "reps")
        if reps is None and ana.job_type == JobType.ONDEMAND:
            # The original's samples give ondemand services without reps: one
            # replica, as a Kubernetes Job defaults to one completion.
            reps = 1
        options = domain.AnalyticsOptions(
            job_type=ana.job_type,
            reps=reps,
            schedule=_optional(ana, "schedule"),
            parallelism=_optional(ana, "parallelism"),
            backoff_limit_per_index=_optional(ana, "backoff_limit_per_index"),
            active_deadline_seconds=_optional(ana, "active_deadline_seconds"),
            ttl_seconds_after_finished=_optional(ana, "ttl_seconds_after_finished"),
        )
    return domain.LaunchRequest(
        image=message.image,
        version=message.version,
        description=message.description,
        port=_optional(message, "port"),
        env=dict(message.env),
        mount_files=dict(message.mount_files),
        analytics=options,
        simulation=message.HasField("sim"),
        command=tuple(message.command),
        args=tuple(message.args),
        resource_requests=dict(message.resources.requests),
        resource_limits=dict(message.resources.limits),
        labels=dict(message.labels),
        expose=message.expose,
    )


class _RunSummary(TypedDict):
    """The fields a Service and its ServiceStatus both carry, from the same derived status."""

    active_runs: int
    succeeded_runs: int
    failed_runs: int
    total_runs: int
    status: str
    output_files: tuple[str, ...]
    phase: str


def _run_summary(derived: status.DerivedStatus) -> _RunSummary:
    return _RunSummary(
        active_runs=derived.active,
        succeeded_runs=derived.succeeded,
        failed_runs=derived.failed,
        total_runs=derived.total,
        status=derived.status,
        output_files=derived.output_files,
        phase=derived.phase,
    )


def status_message(derived: status.DerivedStatus) -> orchestrator_pb2.ServiceStatus:
    message = orchestrator_pb2.ServiceStatus(
        **_run_summary(derived),
        replicas=derived.source.replicas,
        conditions=derived.source.conditions,
        message=derived.message,
        job_type=derived.job_type,
        runs=derived.source.runs,
        suspended=derived.source.suspended,
    )
    for replica in message.replicas:
        # A status written before attempts were counted describes first attempts.
        replica.attempt = replica.attempt or 1
    if derived.updated_at is not None:
        message.updated_at.CopyFrom(derived.updated_at)
    return message


def service_message(view: service.ServiceView) -> orchestrator_pb2.Service:
    record, derived = view.record, view.status
    spec = record.spec
    message = orchestrator_pb2.Service(
        **_run_summary(derived),
        id=record.id,
        image=spec.image,
        version=spec.version,
        description=spec.description,
        reps=spec.reps,
        mount_files=dict(spec.input_files),
        created_at=record.created_at,
        job_type=spec.job_type,
        schedule=spec.schedule,
        env=dict(spec.env),
        labels=record.labels,
        command=spec.command,
        args=spec.args,
        resubmitted_from=record.resubmitted_from,
        resubmissions=record.resubmissions,
        suspended=view.suspended,
    )
    if spec.HasField("port"):
        message.port = spec.port
    if record.terminated_at is not None:
        message.terminated_at = record.terminated_at
    return message


def _output_file(stored: domain.StoredFile, idx: int) -> orchestrator_pb2.OutputFile:
    return orchestrator_pb2.OutputFile(
        file_id=stored.file_id,
        path=stored.path,
        length=stored.length,
        replica_index=stored.replica_index if stored.replica_index is not None else idx,
    )


def output_value(output: service.ReplicaOutput) -> struct_pb2.Value:
    document: Any = output.document
    if not output.has_document:
        document = [
            {"file_id": f.file_id, "path": f.path, "length": f.length} for f in output.files
        ]
    value = struct_pb2.Value()
    json_format.ParseDict(document, value)
    return value


def platform_version() -> str:
    """The platform's release, as installed: this package's version (the images install
    the workspace's packages as wheels of one release)."""
    try:
        return metadata.version("dtpoc-orchestrator")
    except metadata.PackageNotFoundError:  # run from a source tree without an install
        return "0+unknown"


API_VERSION = orchestrator_pb2.DESCRIPTOR.package.rsplit(".", 1)[-1]
"""The API version: the protos' package version (``v1alpha1``), the REST prefix's end."""


class OrchestratorServicer(orchestrator_pb2_grpc.OrchestratorServiceServicer):
    """``dtpoc.orchestrator.v1alpha1.OrchestratorService`` over :class:`service.Orchestrator`."""

    def __init__(
        self, orchestrator: service.Orchestrator, *, launches: admission.LaunchGate | None = None
    ) -> None:
        self._orchestrator = orchestrator
        self._launches = launches or admission.LaunchGate()

    async def Healthz(  # noqa: N802 - gRPC method name
        self, request: orchestrator_pb2.HealthzRequest, context: Any
    ) -> orchestrator_pb2.HealthzResponse:
        return orchestrator_pb2.HealthzResponse(status=await self._orchestrator.healthz())

    async def GetVersion(  # noqa: N802
        self, request: orchestrator_pb2.GetVersionRequest, context: Any
    ) -> orchestrator_pb2.GetVersionResponse:
        return orchestrator_pb2.GetVersionResponse(
            version=platform_version(), api_version=API_VERSION
        )

    async def ListServices(  # noqa: N802
        self, request: orchestrator_pb2.ListServicesRequest, context: Any
    ) -> orchestrator_pb2.ListServicesResponse:
        views = await self._orchestrator.list_services(
            skip=request.skip,
            limit=request.limit if request.HasField("limit") else None,
            status_filter=request.status,
        )
        return orchestrator_pb2.ListServicesResponse(services=[service_message(v) for v in views])

    async def LaunchService(  # noqa: N802
        self, request: orchestrator_pb2.LaunchServiceRequest, context: Any
    ) -> orchestrator_pb2.LaunchServiceResponse:
        remaining = context.time_remaining() if context is not None else None
        async with self._launches.slot(time_remaining=remaining):
            service_id = await self._orchestrator.launch(launch_request(request))
        return orchestrator_pb2.LaunchServiceResponse(id=service_id)

    async def GetService(  # noqa: N802
        self, request: orchestrator_pb2.GetServiceRequest, context: Any
    ) -> orchestrator_pb2.GetServiceResponse:
        view = await self._orchestrator.get_service(request.id)
        return orchestrator_pb2.GetServiceResponse(service=service_message(view))

    async def GetServiceStatus(  # noqa: N802
        self, request: orchestrator_pb2.GetServiceStatusRequest, context: Any
    ) -> orchestrator_pb2.GetServiceStatusResponse:
        derived = await self._orchestrator.get_status(request.id)
        return orchestrator_pb2.GetServiceStatusResponse(status=status_message(derived))

    async def GetServiceOutput(  # noqa: N802
        self, request: orchestrator_pb2.GetServiceOutputRequest, context: Any
    ) -> orchestrator_pb2.GetServiceOutputResponse:
        output = await self._orchestrator.get_output(request.id, request.idx)
        return orchestrator_pb2.GetServiceOutputResponse(
            output=output_value(output),
            files=[_output_file(f, output.idx) for f in output.files],
            idx=output.idx,
        )

    async def ListServiceOutputs(  # noqa: N802
        self, request: orchestrator_pb2.ListServiceOutputsRequest, context: Any
    ) -> orchestrator_pb2.ListServiceOutputsResponse:
        replicas = await self._orchestrator.list_outputs(request.id)
        return orchestrator_pb2.ListServiceOutputsResponse(
            replicas=[
                orchestrator_pb2.ReplicaOutputs(
                    idx=r.idx, state=r.state, files=[_output_file(f, r.idx) for f in r.files]
                )
                for r in replicas
            ]
        )

    async def TerminateService(  # noqa: N802
        self, request: orchestrator_pb2.TerminateServiceRequest, context: Any
    ) -> orchestrator_pb2.TerminateServiceResponse:
        message, view = await self._orchestrator.terminate(request.id)
        return orchestrator_pb2.TerminateServiceResponse(
            message=message, service=service_message(view)
        )

    async def RetryService(  # noqa: N802
        self, request: orchestrator_pb2.RetryServiceRequest, context: Any
    ) -> orchestrator_pb2.RetryServiceResponse:
        retry = await self._orchestrator.retry(request.id)
        attempts = retry.attempts
        indexes = sorted(attempts)
        described = ", ".join(f"{i} (attempt {attempts[i]})" for i in indexes)
        of_run = f" of run {retry.run}" if retry.run else ""
        return orchestrator_pb2.RetryServiceResponse(
            message=f"replicas{of_run} running again: {described}",
            indexes=indexes,
            attempts=[attempts[i] for i in indexes],
        )

    async def ResubmitService(  # noqa: N802
        self, request: orchestrator_pb2.ResubmitServiceRequest, context: Any
    ) -> orchestrator_pb2.ResubmitServiceResponse:
        return orchestrator_pb2.ResubmitServiceResponse(
            id=await self._orchestrator.resubmit(request.id)
        )

    async def SuspendService(  # noqa: N802
        self, request: orchestrator_pb2.SuspendServiceRequest, context: Any
    ) -> orchestrator_pb2.SuspendServiceResponse:
        message, view = await self._orchestrator.set_suspended(request.id, suspend=True)
        return orchestrator_pb2.SuspendServiceResponse(
            message=message, service=service_message(view)
        )

    async def ResumeService(  # noqa: N802
        self, request: orchestrator_pb2.ResumeServiceRequest, context: Any
    ) -> orchestrator_pb2.ResumeServiceResponse:
        message, view = await self._orchestrator.set_suspended(request.id, suspend=False)
        return orchestrator_pb2.ResumeServiceResponse(
            message=message, service=service_message(view)
        )

    async def WatchService(  # noqa: N802
        self, request: orchestrator_pb2.WatchServiceRequest, context: Any
    ) -> AsyncIterator[orchestrator_pb2.WatchServiceResponse]:
        async for derived in self._orchestrator.watch(request.id):
            yield orchestrator_pb2.WatchServiceResponse(status=status_message(derived))

    async def GetReplicaLog(  # noqa: N802
        self, request: orchestrator_pb2.GetReplicaLogRequest, context: Any
    ) -> AsyncIterator[orchestrator_pb2.GetReplicaLogResponse]:
        query = logs.LogQuery(
            attempt=_optional(request, "attempt"),
            follow=request.follow,
            tail_lines=_optional(request, "tail_lines"),
            since_seconds=_optional(request, "since_seconds"),
            timestamps=request.timestamps,
        )
        async for chunk in self._orchestrator.replica_log(request.id, request.idx, query):
            yield orchestrator_pb2.GetReplicaLogResponse(
                text=chunk.text, attempt=chunk.attempt, truncated=chunk.truncated
            )

    async def GetFileUsage(  # noqa: N802
        self, request: orchestrator_pb2.GetFileUsageRequest, context: Any
    ) -> orchestrator_pb2.GetFileUsageResponse:
        usage = await self._orchestrator.file_usage(request.file_id)
        return orchestrator_pb2.GetFileUsageResponse(
            active_service_ids=usage.active, terminated_service_ids=usage.terminated
        )
