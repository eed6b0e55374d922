"""Rules a launch must pass before anything is written.

Each failure raises :class:`~dtpoc_common.errors.InvalidArgument` naming the
request field (``ana.reps: must be between 1 and 100 for an ondemand
service``), so a caller can fix the one thing that is wrong. The rules are
at least as strict as the Analytics CRD (``infra/crds/analytics.yaml``): a
launch that passes here is never refused by the API server later.

Pure functions; whether mounted files exist is checked by the service layer
against the Files service.
"""

from __future__ import annotations

import re

from croniter import croniter

from dtpoc_common import errors, limits
from dtpoc_common.vocabulary import JOB_TYPES, JobType
from dtpoc_orchestrator import domain

MIN_REPS = 1
MAX_REPS = 100
MIN_PORT = 1024
MAX_PORT = 65535
MAX_DESCRIPTION = 4096
MAX_IMAGE = 255
#: An input's temporary name (the fetcher's) must fit NAME_MAX too.
MAX_MOUNT_NAME_BYTES = limits.MAX_INPUT_NAME_BYTES
MAX_ENV_VARIABLES = 500
MAX_ENV_VALUE_BYTES = 32 * 1024
MAX_BACKOFF_LIMIT_PER_INDEX = 10

#: Environment variables the platform sets in every replica; a launch may
#: not set them (the platform's value would silently win or lose).
RESERVED_ENV = frozenset(
    {
        "RUN_ID",  # the pod (or local process) name, as in the original
        "REPLICA_INDEX",  # the replica's index 0..reps-1
        "JOB_COMPLETION_INDEX",  # set by Kubernetes for Indexed Jobs
        "SERVICE_ID",  # the service id
    }
)
#: Prefix of variables the platform may add in later versions.
RESERVED_ENV_PREFIX = "DTPOC_"

# Docker reference grammar (github.com/distribution/reference, regexp.go),
# for a name without tag or digest.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_HOST = rf"(?:{_DOMAIN_NAME}|\[[a-fA-F0-9:]+\])"
_DOMAIN_AND_PORT = rf"{_HOST}(?::[0-9]+)?"
IMAGE_NAME = re.compile(rf"^(?:{_DOMAIN_AND_PORT}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$")
TAG = re.compile(r"^[\w][\w.-]{0,127}$", re.ASCII)

FILE_ID = re.compile(r"^[0-9a-f]{24}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: The CRD's pattern for an input file name.
MOUNT_NAME = re.compile(r"^[A-Za-z0-9._-][A-Za-z0-9 ._-]*$")

# Kubernetes label syntax (apimachinery validation).
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
RESERVED_LABEL_PREFIXES = ("dtpoc.eng.cam.ac.uk/",)

#: A Kubernetes resource quantity such as ``500m``, ``1.5``, ``2Gi``, ``1e3``.
QUANTITY = re.compile(r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[mkMGTPE]|[eE][+-]?[0-9]+)?$")
#: A resource name: ``cpu``, ``memory``, ``ephemeral-storage``, ``nvidia.com/gpu``.
RESOURCE_NAME = re.compile(
    r"^(?:[a-z0-9]([-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)

_CRON_FIELD = re.compile(r"^[0-9*?,/-]+$")
_MONTH_NAMES = re.compile(r"JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC", re.IGNORECASE)
_DAY_NAMES = re.compile(r"SUN|MON|TUE|WED|THU|FRI|SAT", re.IGNORECASE)


def validate_launch(
    request: domain.LaunchRequest,
    *,
    backend: str,
    local_containers: bool = False,
    expose_services: bool = False,
) -> None:
    """Raise for the first rule ``request`` breaks; return when it passes all.

    ``local_containers``: the local backend's operator runs images in containers,
    so a launch without a command (the original's body) is accepted there too.
    ``expose_services``: the platform publishes services that ask for it.
    """
    if request.simulation and request.analytics is not None:
        raise errors.InvalidArgument("set exactly one of ana and sim, not both", field="ana")
    if request.simulation:
        raise errors.Unimplemented(
            "simulation services (sim) are not implemented yet; launch an analytics "
            "service with ana"
        )
    if request.analytics is None:
        raise errors.InvalidArgument("set exactly one of ana and sim", field="ana")
    _validate_image(request.image, request.version)
    if len(request.description.encode()) > MAX_DESCRIPTION:
        raise errors.InvalidArgument(
            f"must be at most {MAX_DESCRIPTION} bytes", field="description"
        )
    _refuse_controls("description", request.description)
    _validate_job(request.analytics, port=request.port)
    _validate_expose(request, expose_services=expose_services and backend != "local")
    _validate_env(request.env)
    _validate_process_strings(request)
    validate_mount_files(request.mount_files)
    _validate_labels(request.labels)
    _validate_resources("resources.requests", request.resource_requests)
    _validate_resources("resources.limits", request.resource_limits)
    if backend == "local" and not request.command and not local_containers:
        raise errors.InvalidArgument(
            "required by the local backend without a container engine, which runs each "
            "replica as a process of this command; to run the image itself, enable "
            "containers: DTPOC_ORCHESTRATOR_LOCAL_CONTAINERS=true here and "
            "DTPOC_OPERATOR_LOCAL_CONTAINER_ENGINE=auto (podman or docker) for the "
            "operator (`make run` sets both when an engine works)",
            field="command",
        )


def _validate_image(image: str, version: str) -> None:
    if not image:
        raise errors.InvalidArgument(
            "required: a container image reference such as ghcr.io/org/name", field="image"
        )
    if len(image) > MAX_IMAGE:
        raise errors.InvalidArgument(f"must be at most {MAX_IMAGE} characters", field="image")
    if "@" in image:
        raise errors.InvalidArgument(
            "digests are not supported: give the image without @digest and its tag in version",
            field="image",
        )
    if not IMAGE_NAME.fullmatch(image):
        hint = ""
        last = image.rsplit("/", 1)[-1]
        if ":" in last:
            hint = "; give the tag in version, not after ':' in image"
        elif image.lower() != image:
            hint = "; repository path components must be lower case"
        raise errors.InvalidArgument(
            f"{image!r} is not a valid image reference (registry[:port]/path, lower-case "
            f"path components of letters, digits and . _ - separators){hint}",
            field="image",
        )
    if version and not TAG.fullmatch(version):
        raise errors.InvalidArgument(
            f"{version!r} is not a valid image tag: up to 128 letters, digits, '_', '.' "
            "and '-', not starting with '.' or '-'",
            field="version",
        )


def _check_range(value: int | None, *, name: str, low: int, high: int | None, what: str) -> None:
    if value is None:
        return
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise errors.InvalidArgument(f"must be {bound}{what}", field=name)


def _validate_expose(request: domain.LaunchRequest, *, expose_services: bool) -> None:
    """Only a persistent service with a port can be published, and only where the
    platform publishes services (the local runtime never does)."""
    if not request.expose:
        return
    assert request.analytics is not None
    if request.analytics.job_type != JobType.PERSISTENT or request.port is None:
        raise errors.InvalidArgument(
            "only a persistent service with a port serves anything to expose",
            field="expose",
        )
    if not expose_services:
        raise errors.InvalidArgument(
            "this platform does not publish analytics services outside the cluster "
            "(the chart's analytics.expose.enabled is off); launch without expose and "
            "reach the service in the cluster",
            field="expose",
        )


def _validate_job(options: domain.AnalyticsOptions, *, port: int | None) -> None:
    job_type = options.job_type
    if job_type not in JOB_TYPES:
        raise errors.InvalidArgument(
            f"must be one of {', '.join(JOB_TYPES)}, got {job_type!r}",
            field="ana.job_type",
        )
    article = "an" if job_type == JobType.ONDEMAND else "a"
    schedule = options.schedule or ""
    if job_type in (JobType.ONDEMAND, JobType.SCHEDULED):
        if options.reps is None or not MIN_REPS <= options.reps <= MAX_REPS:
            raise errors.InvalidArgument(
                f"must be between {MIN_REPS} and {MAX_REPS} for {article} {job_type} service",
                field="ana.reps",
            )
        if port is not None:
            raise errors.InvalidArgument(
                f"{article} {job_type} service has no port (only persistent services do)",
                field="port",
            )
        for name, value, high in (
            ("ana.parallelism", options.parallelism, MAX_REPS),
            ("ana.backoff_limit_per_index", options.backoff_limit_per_index, None),
            ("ana.active_deadline_seconds", options.active_deadline_seconds, None),
            ("ana.ttl_seconds_after_finished", options.ttl_seconds_after_finished, None),
        ):
            low = 1 if name in ("ana.parallelism", "ana.active_deadline_seconds") else 0
            if name == "ana.backoff_limit_per_index":
                high = MAX_BACKOFF_LIMIT_PER_INDEX
            _check_range(value, name=name, low=low, high=high, what="")
    if job_type == JobType.ONDEMAND and schedule:
        raise errors.InvalidArgument(
            "an ondemand service has no schedule (launch a scheduled service instead)",
            field="ana.schedule",
        )
    if job_type == JobType.SCHEDULED:
        validate_cron(schedule)
    if job_type == JobType.PERSISTENT:
        if options.reps is not None:
            raise errors.InvalidArgument("a persistent service has no reps", field="ana.reps")
        if schedule:
            raise errors.InvalidArgument(
                "a persistent service has no schedule", field="ana.schedule"
            )
        _check_range(
            port, name="port", low=MIN_PORT, high=MAX_PORT, what=" for a persistent service"
        )
        for name, value in (
            ("ana.parallelism", options.parallelism),
            ("ana.backoff_limit_per_index", options.backoff_limit_per_index),
            ("ana.active_deadline_seconds", options.active_deadline_seconds),
            ("ana.ttl_seconds_after_finished", options.ttl_seconds_after_finished),
        ):
            if value is not None:
                raise errors.InvalidArgument(
                    "only ondemand and scheduled services take this option", field=name
                )


def validate_cron(schedule: str) -> None:
    """A five-field cron expression that both croniter and Kubernetes accept."""
    field_name = "ana.schedule"
    if not schedule:
        raise errors.InvalidArgument(
            "required for a scheduled service: a five-field cron expression such as '*/15 * * * *'",
            field=field_name,
        )
    fields = schedule.split()
    if len(fields) != 5:
        raise errors.InvalidArgument(
            f"{schedule!r} has {len(fields)} fields; give five (minute hour day-of-month "
            "month day-of-week), e.g. '*/15 * * * *'",
            field=field_name,
        )
    for position, value in enumerate(fields):
        plain = value
        if position == 3:
            plain = _MONTH_NAMES.sub("1", plain)
        if position == 4:
            plain = _DAY_NAMES.sub("1", plain)
        if not _CRON_FIELD.fullmatch(plain):
            raise errors.InvalidArgument(
                f"{schedule!r}: field {position + 1} ({value!r}) uses characters Kubernetes "
                "cron does not accept (digits, * ? , / - and month or day names only)",
                field=field_name,
            )
    if not croniter.is_valid(schedule):
        raise errors.InvalidArgument(
            f"{schedule!r} is not a valid cron expression", field=field_name
        )


def _validate_env(env: dict[str, str]) -> None:
    if len(env) > MAX_ENV_VARIABLES:
        raise errors.InvalidArgument(f"at most {MAX_ENV_VARIABLES} variables", field="env")
    for name, value in env.items():
        if not ENV_NAME.fullmatch(name):
            raise errors.InvalidArgument(
                f"{name!r} is not a valid variable name (letters, digits and '_', not "
                "starting with a digit)",
                field="env",
            )
        if name in RESERVED_ENV or name.startswith(RESERVED_ENV_PREFIX):
            raise errors.InvalidArgument(
                f"{name!r} is set by the platform in every replica "
                f"(reserved: {', '.join(sorted(RESERVED_ENV))} and {RESERVED_ENV_PREFIX}*)",
                field="env",
            )
        if len(value.encode()) > MAX_ENV_VALUE_BYTES:
            raise errors.InvalidArgument(
                f"the value of {name!r} is longer than {MAX_ENV_VALUE_BYTES} bytes",
                field="env",
            )
        _refuse_controls("env", value, what=f"the value of {name!r}")


def _refuse_controls(field: str, text: str, *, what: str = "") -> None:
    """Control characters (but tab and line breaks) cannot reach a process or a pod."""
    found = limits.first_control(text)
    if found is not None:
        subject = f"{what} contains" if what else "contains"
        raise errors.InvalidArgument(
            f"{subject} the control character U+{ord(found):04X}; only tab and line breaks "
            "are allowed",
            field=field,
        )


def _validate_process_strings(request: domain.LaunchRequest) -> None:
    """What ``execve`` takes: no NUL, each string and all of them within Linux's limits."""
    argv = [("command", item) for item in request.command] + [
        ("args", item) for item in request.args
    ]
    if len(argv) > limits.MAX_ARGV_ITEMS:
        raise errors.InvalidArgument(
            f"command and args have at most {limits.MAX_ARGV_ITEMS} items together",
            field="args" if request.args else "command",
        )
    total = sum(len(name.encode()) + len(value.encode()) + 2 for name, value in request.env.items())
    budget = limits.MAX_PROCESS_STRINGS_TOTAL_BYTES
    if total > budget:
        raise errors.InvalidArgument(
            f"the variables take {total} bytes; at most {budget} bytes (names and values) "
            "can be passed to a replica's process",
            field="env",
        )
    for field, item in argv:
        size = len(item.encode()) + 1
        if size > limits.MAX_PROCESS_STRING_BYTES:
            raise errors.InvalidArgument(
                f"an item is {size} bytes long; a process takes at most "
                f"{limits.MAX_PROCESS_STRING_BYTES} bytes per argument",
                field=field,
            )
        _refuse_controls(field, item, what=f"item {item[:40]!r}")
        total += size
    if total > budget:
        raise errors.InvalidArgument(
            f"command, args and env take {total} bytes together; at most {budget} bytes can "
            "be passed to a replica's process",
            field="args" if request.args else "command",
        )


def validate_mount_files(mount_files: dict[str, str]) -> None:
    """File ids are ObjectIds, names plain file names, no name used twice."""
    seen: dict[str, str] = {}
    for file_id, name in mount_files.items():
        if not FILE_ID.fullmatch(file_id):
            raise errors.InvalidArgument(
                f"{file_id!r} is not a file id (24 lower-case hexadecimal digits)",
                field="mount_files",
            )
        _validate_mount_name(file_id, name)
        if name in seen:
            raise errors.InvalidArgument(
                f"files {seen[name]} and {file_id} are both mounted as {name!r}",
                field="mount_files",
            )
        seen[name] = file_id


def _validate_mount_name(file_id: str, name: str) -> None:
    def refuse(why: str) -> errors.InvalidArgument:
        return errors.InvalidArgument(
            f"the name of file {file_id} ({name!r}) {why}; give a plain file name such as "
            "'input.xlsx'",
            field="mount_files",
        )

    if not name:
        raise refuse("is empty")
    if "\x00" in name:
        raise refuse("contains a NUL character")
    if "/" in name or "\\" in name:
        raise refuse("contains a path separator")
    if name in (".", ".."):
        raise refuse("is not a file name")
    if len(name.encode()) > MAX_MOUNT_NAME_BYTES:
        raise refuse(f"is longer than {MAX_MOUNT_NAME_BYTES} bytes")
    if not MOUNT_NAME.fullmatch(name):
        raise refuse(
            "has characters other than letters, digits, space, '.', '_' and '-' "
            "(or starts with a space)"
        )


def _validate_labels(labels: dict[str, str]) -> None:
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if (
            not name
            or len(name) > 63
            or not _LABEL_NAME.fullmatch(name)
            or (prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)))
        ):
            raise errors.InvalidArgument(
                f"{key!r} is not a valid Kubernetes label key ([prefix/]name, name of up to "
                "63 letters, digits, '-', '_', '.')",
                field="labels",
            )
        if any(key.startswith(p) for p in RESERVED_LABEL_PREFIXES):
            raise errors.InvalidArgument(
                f"{key!r}: the prefix {RESERVED_LABEL_PREFIXES[0]} is the platform's",
                field="labels",
            )
        if value and (len(value) > 63 or not _LABEL_NAME.fullmatch(value)):
            raise errors.InvalidArgument(
                f"the value of {key!r} ({value!r}) is not a valid Kubernetes label value "
                "(up to 63 letters, digits, '-', '_', '.')",
                field="labels",
            )


def _validate_resources(field_name: str, quantities: dict[str, str]) -> None:
    for name, quantity in quantities.items():
        if not RESOURCE_NAME.fullmatch(name):
            raise errors.InvalidArgument(
                f"{name!r} is not a resource name (cpu, memory, ephemeral-storage, "
                "vendor.example/device)",
                field=field_name,
            )
        if not QUANTITY.fullmatch(quantity):
            raise errors.InvalidArgument(
                f"{quantity!r} ({name}) is not a quantity such as '500m', '2', '512Mi', '1Gi'",
                field=field_name,
            )


def validate_page(*, skip: int, limit: int | None) -> tuple[int, int]:
    """``(skip, limit)`` of a list request: limit 1..1000, 10 when absent."""
    if skip < 0:
        raise errors.InvalidArgument(f"must be >= 0, got {skip}", field="skip")
    if limit is None:
        return skip, 10
    if limit < 1 or limit > 1000:
        raise errors.InvalidArgument(f"must be between 1 and 1000, got {limit}", field="limit")
    return skip, limit
