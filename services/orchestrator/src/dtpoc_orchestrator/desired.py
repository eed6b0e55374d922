"""A validated launch as desired state: the Analytics spec the operator reads."""

from __future__ import annotations

from dtpoc.analytics.v1alpha1 import analytics_pb2
from dtpoc_orchestrator import domain

DEFAULT_VERSION = "latest"


def analytics_spec(request: domain.LaunchRequest) -> analytics_pb2.AnalyticsSpec:
    """The spec for a launch that passed :func:`~dtpoc_orchestrator.validation.validate_launch`.

    ``mount_files`` becomes ``input_files``; an empty version becomes
    ``latest``, so the image that runs is always ``image:version``.
    """
    options = request.analytics
    assert options is not None, "validated launches are analytics launches"
    spec = analytics_pb2.AnalyticsSpec(
        image=request.image,
        version=request.version or DEFAULT_VERSION,
        description=request.description,
        job_type=options.job_type,
        schedule=options.schedule or "",
        env=request.env,
        command=request.command,
        args=request.args,
        input_files=request.mount_files,
    )
    if request.port is not None:
        spec.port = request.port
    if request.expose:
        spec.expose = True
    if options.reps is not None:
        spec.reps = options.reps
    if options.parallelism is not None:
        spec.parallelism = options.parallelism
    if options.backoff_limit_per_index is not None:
        spec.backoff_limit_per_index = options.backoff_limit_per_index
    if options.active_deadline_seconds is not None:
        spec.active_deadline_seconds = options.active_deadline_seconds
    if options.ttl_seconds_after_finished is not None:
        spec.ttl_seconds_after_finished = options.ttl_seconds_after_finished
    if request.resource_requests or request.resource_limits:
        spec.resources.CopyFrom(
            analytics_pb2.ResourceRequirements(
                requests=request.resource_requests, limits=request.resource_limits
            )
        )
    return spec
