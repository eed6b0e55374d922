"""The refusals every runtime shares, written once (each runtime's ``problem`` calls them).

A runtime adds its own checks between the two (an init image, a container engine, limits, a
schedule), so which refusal a spec with several faults gets stays each runtime's order.
"""

from __future__ import annotations

from dtpoc_common.vocabulary import JOB_TYPES
from dtpoc_operator import layout
from dtpoc_operator.model import AnalyticsResource


def identity_problem(resource: AnalyticsResource) -> tuple[str, str] | None:
    """A service id that cannot name a folder, or a job type no runtime knows."""
    if not layout.is_safe_service_id(resource.service_id):
        return ("InvalidServiceId", f"{resource.service_id!r} cannot name an output folder")
    if resource.spec.job_type not in JOB_TYPES:
        return ("InvalidSpec", f"unknown jobType {resource.spec.job_type!r}")
    return None


def input_names_problem(resource: AnalyticsResource) -> tuple[str, str] | None:
    """An input file name that is not a plain file name (it would leave the inputs folder)."""
    for name in resource.spec.input_files.values():
        if not layout.is_plain_file_name(name):
            return ("InvalidSpec", f"input file name {name!r} is not a plain file name")
    return None
