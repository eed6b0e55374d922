"""Generated requests against the real platform: no server error, no dropped connection.

One platform (``shared_platform``: Files, the Orchestrator on the real
apiserver, the gateway) serves the whole module. Two sources of requests,
all derandomized (the same requests on every run):

* schemathesis turns ``/api/orchestrator/v1alpha1/openapi.json`` into
  request strategies over every operation (1,100 requests);
* our own hypothesis strategies (``tests/compat/_hostile.py``), one test per
  class of hostile input: JSON bodies that exhaust the parser or the proto
  conversion, headers with numbers that fit nothing and crowds of headers,
  broken multipart framing, stored names and types a later answer must send
  as headers, launch strings that a process or a pod cannot take, replica
  outputs too deep or too large to pass through ``output/{idx}``.

Every answer must be below 500 and every connection must end with a complete
answer, except the documented 501 of a launch of a ``sim`` service, which
has no implementation (the generated launch bodies reach it since the launch
body grew its ``expose`` field); any other 501 counts as a server error.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dtpoc.files.v1alpha1 import files_pb2, files_pb2_grpc
from dtpoc_common import grpcauth
from dtpoc_local.credentials import credentials
from tests.compat import _hostile
from tests.compat.helpers import ANALYTICS_PATH, PREFIX, SharedPlatform

OPENAPI_REQUESTS = 1100
SERVER_ERRORS = {500, 502, 503, 504}
TALLIES: dict[str, _hostile.Tally] = {}


def _settings(examples: int) -> Any:
    return settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


@pytest.fixture(scope="module", autouse=True)
def _report_totals() -> Iterator[None]:
    yield
    total = sum(t.requests for t in TALLIES.values())
    errors = sum(n for t in TALLIES.values() for s, n in t.statuses.items() if s >= 500)
    dropped = sum(t.dropped for t in TALLIES.values())
    print(f"\ngenerated requests: {total}, responses >= 500: {errors}, dropped: {dropped}")


def _tally(name: str) -> _hostile.Tally:
    TALLIES[name] = _hostile.Tally()
    return TALLIES[name]


def _upload_grpc(
    files_address: str, *, content: bytes, filename: str, content_type: str, **metadata: Any
) -> str:
    """Store a file through the Files service directly (as the collector does)."""
    header = files_pb2.UploadFileHeader(filename=filename, content_type=content_type)
    if metadata:
        header.metadata.update(metadata)
    messages = [
        files_pb2.UploadFileRequest(header=header),
        files_pb2.UploadFileRequest(chunk=content),
        files_pb2.UploadFileRequest(finish=True),
    ]
    with credentials().channel(files_address, as_=grpcauth.OPERATOR) as channel:
        stub = files_pb2_grpc.FilesServiceStub(channel)
        return str(stub.UploadFile(iter(messages), timeout=30).file_id)


def test_requests_generated_from_the_openapi_document_get_no_server_error(
    shared_platform: SharedPlatform,
) -> None:
    client = shared_platform.client
    document = client.get(f"{PREFIX}/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    # Streams that last until a final phase are not for a request loop.
    operations = [op for op in operations if not op.path.endswith("/watch")]
    tally = _tally("openapi")
    failures: list[str] = []

    @_settings(OPENAPI_REQUESTS)
    @given(data=st.data())
    def send(data: st.DataObject) -> None:
        operation = data.draw(st.sampled_from(operations))
        case = data.draw(operation.as_strategy())
        kwargs = case.as_transport_kwargs(base_url=str(client.base_url))
        headers = {
            key: value
            for key, value in (kwargs.get("headers") or {}).items()
            if key.lower() != "authorization" and value.isascii() and value.isprintable()
        }
        body = kwargs.get("data")
        request = client.build_request(
            kwargs["method"],
            kwargs["url"],
            params=kwargs.get("params"),
            headers=headers,
            json=kwargs.get("json"),
            content=body if isinstance(body, bytes | str) else None,
        )
        what = f"{case.method} {case.formatted_path}"
        answer = tally.send(client, request, what)
        if answer is not None and answer.status_code in SERVER_ERRORS:
            failures.append(f"{what}: {answer.status_code} {answer.text[:300]}")

    send()
    print(tally.summary("openapi"))
    assert tally.requests >= OPENAPI_REQUESTS
    assert not failures and not tally.failures, "\n".join([*failures, *tally.failures][:10])
    assert any(status < 400 for status in tally.statuses), tally.statuses


def test_hostile_json_bodies_get_a_clear_4xx(shared_platform: SharedPlatform) -> None:
    client = shared_platform.client
    tally = _tally("json bodies")

    @_settings(400)
    @given(body=_hostile.launch_bodies())
    def send(body: str) -> None:
        request = client.build_request(
            "POST",
            f"{PREFIX}/service/launch",
            content=body.encode("utf-8", "surrogatepass"),
            headers={"Content-Type": "application/json"},
        )
        answer = tally.send(client, request, f"launch {body[:120]!r}")
        if answer is not None and answer.status_code == 400:
            assert answer.json()["status"] == "INVALID_ARGUMENT", answer.text

    send()
    print(tally.summary("json bodies"))
    assert not tally.failures, "\n".join(tally.failures[:10])
    assert tally.statuses[400] > 0


def test_headers_with_bad_numbers_or_too_many_bytes_get_a_clear_4xx(
    shared_platform: SharedPlatform,
) -> None:
    client = shared_platform.client
    stored = client.post(
        f"{PREFIX}/files/upload", files={"file": ("ranges.bin", b"0123456789" * 100)}
    )
    assert stored.status_code == 200, stored.text
    targets = [
        f"{PREFIX}/files/{stored.json()['file_id']}",
        f"{PREFIX}/services?limit=5",
        "/readyz",
    ]
    tally = _tally("headers")
    base = str(client.base_url)

    @_settings(300)
    @given(data=st.data())
    def send(data: st.DataObject) -> None:
        target = data.draw(st.sampled_from(targets))
        raw = data.draw(_hostile.raw_requests(target=target))
        status, body = _hostile.raw_exchange(base, raw)
        tally.record(f"GET {target} ({len(raw)} bytes of headers)", status, body.decode("latin-1"))
        if status is not None and len(raw) > 64 * 1024:
            assert status == 431, (status, body[:200])

    send()
    print(tally.summary("headers"))
    assert not tally.failures, "\n".join(tally.failures[:10])
    assert tally.statuses[206] > 0 and tally.statuses[431] > 0, tally.statuses


def test_broken_multipart_framing_gets_a_clear_4xx(shared_platform: SharedPlatform) -> None:
    client = shared_platform.client
    tally = _tally("multipart")

    @_settings(200)
    @given(form=_hostile.multipart_bodies())
    def send(form: tuple[str, bytes]) -> None:
        content_type, body = form
        request = client.build_request(
            "POST",
            f"{PREFIX}/files/upload",
            content=body,
            headers={"Content-Type": content_type.encode("latin-1", "replace").decode("latin-1")},
        )
        tally.send(client, request, f"upload {content_type[:80]!r} {body[:80]!r}")

    send()
    print(tally.summary("multipart"))
    assert not tally.failures, "\n".join(tally.failures[:10])
    assert tally.statuses[400] > 0


def test_stored_names_and_types_never_break_a_download(shared_platform: SharedPlatform) -> None:
    client = shared_platform.client
    tally = _tally("stored values")

    @_settings(100)
    @given(
        filename=st.text(min_size=1, max_size=40),
        content_type=st.one_of(st.text(max_size=40), _hostile.with_control(st.text(max_size=10))),
    )
    def send(filename: str, content_type: str) -> None:
        try:
            file_id = _upload_grpc(
                shared_platform.files_address,
                content=uuid.uuid4().bytes,
                filename=filename,
                content_type=content_type,
            )
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc
            return
        for verb in ("GET", "HEAD"):
            request = client.build_request(verb, f"{PREFIX}/files/{file_id}")
            answer = tally.send(client, request, f"{verb} {filename!r} {content_type!r}")
            if answer is not None:
                assert answer.status_code == 200, answer.text
                assert answer.headers["content-disposition"].startswith("attachment")

    send()
    print(tally.summary("stored values"))
    assert not tally.failures, "\n".join(tally.failures[:10])


_VALID = {"image": "ghcr.io/example/analytics", "ana": {"job_type": "ondemand", "reps": 1}}
_STRING_FIELDS: list[tuple[str, Any]] = [
    ("env", lambda s: {"env": {"MODE": s}}),
    ("env", lambda s: {"env": {"A" + s: "x"}}),
    ("command", lambda s: {"command": ["python3", s]}),
    ("args", lambda s: {"args": [s]}),
    ("image", lambda s: {"image": "ghcr.io/example/x" + s}),
    ("version", lambda s: {"version": "1.0" + s}),
    ("description", lambda s: {"description": s}),
    ("labels", lambda s: {"labels": {"team": "a" + s}}),
    ("labels", lambda s: {"labels": {"team" + s: "a"}}),
    ("mount_files", lambda s: {"mount_files": {"0123456789abcdef01234567": "in" + s}}),
    ("resources.limits", lambda s: {"resources": {"limits": {"cpu": "1" + s}}}),
]


def test_launch_strings_a_process_or_pod_cannot_take_are_refused_naming_the_field(
    shared_platform: SharedPlatform,
) -> None:
    client = shared_platform.client
    tally = _tally("launch strings")
    controls = _hostile.with_control(st.text(st.characters(codec="ascii"), max_size=5))
    sizes = st.sampled_from(["env total", "env count", "argv total", "input name"])

    def body_for_size(kind: str) -> tuple[str, dict[str, Any]]:
        if kind == "env total":
            return "env", {"env": {f"V{i}": "x" * 30_000 for i in range(20)}}
        if kind == "env count":
            return "env", {"env": {f"V{i}": "x" for i in range(501)}}
        if kind == "argv total":
            return "args", {"args": ["y" * 100_000] * 6}
        return "mount_files", {"mount_files": {"0123456789abcdef01234567": "n" * 250}}

    @_settings(200)
    @given(data=st.data())
    def send(data: st.DataObject) -> None:
        if data.draw(st.integers(0, 9)) == 0:
            field, extra = body_for_size(data.draw(sizes))
        else:
            field, build = data.draw(st.sampled_from(_STRING_FIELDS))
            extra = build(data.draw(controls))
        body = {**_VALID, **extra}
        request = client.build_request("POST", f"{PREFIX}/service/launch", json=body)
        answer = tally.send(client, request, f"launch {json.dumps(extra)[:160]}")
        assert answer is not None
        assert answer.status_code == 400, (field, extra, answer.text)
        assert answer.json()["message"].startswith(f"{field}: "), (field, answer.text)

    send()
    print(tally.summary("launch strings"))
    assert not tally.failures, "\n".join(tally.failures[:10])


def _finished_with_output(shared: SharedPlatform, document: bytes) -> str:
    """A launched service whose replica 0 finished with ``document`` as its one output."""
    client = shared.client
    launched = client.post(f"{PREFIX}/service/launch", json=_VALID)
    assert launched.status_code == 202, launched.text
    service_id = launched.json()["id"]
    file_id = _upload_grpc(
        shared.files_address,
        content=document,
        filename="output.json",
        content_type="application/json",
        service_id=service_id,
        replica_index=0,
        path="output.json",
    )
    status = {
        "phase": "succeeded",
        "replicas": [
            {
                "index": 0,
                "state": "succeeded",
                "outputFileIds": [file_id],
                "outputsCollected": True,
                "run": service_id,
            }
        ],
    }
    shared.kube.request(
        "PATCH",
        f"{ANALYTICS_PATH.format(ns=shared.namespace)}/{service_id}/status",
        body={"status": status},
        content_type="application/merge-patch+json",
    )
    return service_id


def test_replica_outputs_too_deep_or_too_large_for_the_output_path_answer_the_file_list(
    shared_platform: SharedPlatform,
) -> None:
    client = shared_platform.client
    tally = _tally("replica outputs")
    # Too deep for a google.protobuf.Value, too many values for one gRPC message,
    # numbers JSON cannot carry.
    documents = st.one_of(
        _hostile.deep_json(st.integers(min_value=40, max_value=3000)),
        st.integers(min_value=400_000, max_value=1_500_000).map(
            lambda n: "[" + ",".join(["1"] * n) + "]"
        ),
        st.sampled_from(['{"a": NaN}', "[Infinity]", '{"a": 1e400}', "-Infinity"]),
    )

    @_settings(12)
    @given(document=documents)
    def send(document: str) -> None:
        service_id = _finished_with_output(shared_platform, document.encode())
        request = client.build_request("GET", f"{PREFIX}/service/{service_id}/output/0")
        answer = tally.send(client, request, f"output of {document[:60]!r}")
        assert answer is not None
        assert answer.status_code == 200, answer.text[:300]
        files = answer.json()
        assert isinstance(files, list) and files[0]["path"] == "output.json", answer.text[:300]

    send()
    print(tally.summary("replica outputs"))
    assert not tally.failures, "\n".join(tally.failures[:10])
