"""The Files REST paths through the gateway, against the real Files service.

Upload is the hand-written multipart handler, download the byte handler;
the others (list, info, delete) are generic transcoding. Everything runs
over HTTP against ``dtpoc-gateway`` in front of ``dtpoc-files`` on FerretDB.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dtpoc_local.servers.files import FilesServer
from dtpoc_local.servers.gateway import GatewayServer
from tests.gateway.helpers import PREFIX

MIB = 1024 * 1024
ROUND_TRIP_BYTES = 200 * MIB
RSS_GROWTH_LIMIT = 64 * MIB


@pytest.fixture
def files_gateway(files_server: FilesServer, gateway_server: Any) -> GatewayServer:
    return gateway_server(files_address=files_server.address)  # type: ignore[no-any-return]


@pytest.fixture
def rest(files_gateway: GatewayServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=files_gateway.base_url + PREFIX, timeout=120.0) as client:
        yield client


def upload(client: httpx.Client, name: str, data: bytes, content_type: str = "") -> httpx.Response:
    part: tuple[str, bytes] | tuple[str, bytes, str] = (
        (name, data, content_type) if content_type else (name, data)
    )
    return client.post("/files/upload", files={"file": part})


def test_upload_answers_the_original_shape_and_dedups(rest: httpx.Client) -> None:
    data = random.Random(1).randbytes(300_000)
    first = upload(rest, "input.xlsx", data)
    assert first.status_code == 200, first.text
    body = first.json()
    assert set(body) == {"file_id", "filename"}
    assert len(body["file_id"]) == 24 and body["filename"] == "input.xlsx"

    again = upload(rest, "copy.xlsx", data)
    assert again.status_code == 200
    assert again.json() == {
        "file_id": body["file_id"],
        "filename": "input.xlsx",
        "message": "File already exists",
    }


def test_list_is_a_bare_array_with_length_as_a_number(rest: httpx.Client) -> None:
    data = b"a,b\n1,2\n"
    file_id = upload(rest, "table.csv", data, "text/csv").json()["file_id"]
    listed = rest.get("/files", params={"limit": 5})
    assert listed.status_code == 200
    records = listed.json()
    assert isinstance(records, list)
    record = next(r for r in records if r["file_id"] == file_id)
    assert record["length"] == len(data)
    assert isinstance(record["length"], int)
    assert record["filename"] == "table.csv"
    assert "uploadDate" in record and "metadata" in record
    assert record["metadata"]["sha256"] == hashlib.sha256(data).hexdigest()


def test_info_delete_and_not_found(rest: httpx.Client) -> None:
    file_id = upload(rest, "gone.txt", b"bye").json()["file_id"]
    info = rest.get(f"/files/{file_id}/info")
    assert info.status_code == 200
    assert info.json()["length"] == 3

    deleted = rest.delete(f"/files/{file_id}")
    assert deleted.status_code == 200
    assert "message" in deleted.json()

    missing = rest.get(f"/files/{file_id}")
    assert missing.status_code == 404
    assert missing.json()["code"] == 404
    assert rest.delete(f"/files/{file_id}").status_code == 404
    malformed = rest.get("/files/not-an-id")
    assert malformed.status_code == 400
    assert "file_id" in malformed.json()["message"]


def test_download_headers_and_bytes(rest: httpx.Client) -> None:
    data = random.Random(2).randbytes(2 * MIB + 123)
    file_id = upload(rest, "result.bin", data).json()["file_id"]
    answer = rest.get(f"/files/{file_id}")
    assert answer.status_code == 200
    assert answer.content == data
    assert answer.headers["content-length"] == str(len(data))
    assert answer.headers["content-type"] == "application/octet-stream"
    assert answer.headers["content-disposition"] == 'attachment; filename="result.bin"'
    assert answer.headers["accept-ranges"] == "bytes"
    assert answer.headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    head = rest.head(f"/files/{file_id}")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(data))


def test_download_keeps_the_stored_type_and_a_safe_unicode_name(rest: httpx.Client) -> None:
    name = "Résultats final;v2.json"
    file_id = upload(rest, name, b'{"ok": true}', "application/json").json()["file_id"]
    answer = rest.get(f"/files/{file_id}")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["content-disposition"] == (
        'attachment; filename="R_sultats final;v2.json"; '
        "filename*=UTF-8''R%C3%A9sultats%20final%3Bv2.json"
    )


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=1000-", 1000, 1999),
        ("bytes=-10", 1990, 1999),
        ("bytes=1990-5000", 1990, 1999),
        ("bytes=5-5", 5, 5),
    ],
)
def test_range_requests(rest: httpx.Client, header: str, first: int, last: int) -> None:
    data = bytes(range(256)) * 7 + bytes(208)
    assert len(data) == 2000
    file_id = upload(rest, "range.bin", data).json()["file_id"]
    answer = rest.get(f"/files/{file_id}", headers={"Range": header})
    assert answer.status_code == 206, answer.text
    assert answer.headers["content-range"] == f"bytes {first}-{last}/2000"
    assert answer.headers["content-length"] == str(last - first + 1)
    assert answer.content == data[first : last + 1]


def test_offset_and_length_in_the_query_are_a_range(rest: httpx.Client) -> None:
    file_id = upload(rest, "digits.txt", b"0123456789").json()["file_id"]
    answer = rest.get(f"/files/{file_id}", params={"offset": 2, "length": 3})
    assert answer.status_code == 206
    assert answer.content == b"234"
    assert answer.headers["content-range"] == "bytes 2-4/10"


def test_unsatisfiable_and_ignored_ranges(rest: httpx.Client) -> None:
    data = b"0123456789"
    file_id = upload(rest, "ten.txt", data).json()["file_id"]
    for header in ("bytes=10-", "bytes=50-60"):
        answer = rest.get(f"/files/{file_id}", headers={"Range": header})
        assert answer.status_code == 416, header
        assert answer.headers["content-range"] == "bytes */10"
        assert answer.json()["code"] == 416
    for header in ("bytes=0-1,4-5", "items=0-1", "bytes=5-2"):
        answer = rest.get(f"/files/{file_id}", headers={"Range": header})
        assert answer.status_code == 200, header
        assert answer.content == data


def test_upload_refusals(rest: httpx.Client) -> None:
    no_file = rest.post("/files/upload", files={"other": ("a.txt", b"x")})
    assert no_file.status_code == 400
    assert no_file.json()["details"][0]["field_violations"][0]["field"] == "file"

    two = rest.post("/files/upload", files=[("file", ("a.txt", b"x")), ("file", ("b.txt", b"y"))])
    assert two.status_code == 400
    assert "more than one" in two.json()["message"]

    not_multipart = rest.post("/files/upload", json={"file": "x"})
    assert not_multipart.status_code == 415

    broken = rest.post(
        "/files/upload",
        content=b'--b\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\nab',
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert broken.status_code == 400


def test_upload_over_the_limit_answers_413(files_server: FilesServer, gateway_server: Any) -> None:
    small = gateway_server(
        files_address=files_server.address, env={"DTPOC_GATEWAY_MAX_UPLOAD_BYTES": str(MIB)}
    )
    with httpx.Client(base_url=small.base_url + PREFIX, timeout=60.0) as client:
        declared = upload(client, "big.bin", bytes(2 * MIB))
        assert declared.status_code == 413
        assert declared.json()["status"] == "RESOURCE_EXHAUSTED"

        def chunked() -> Iterator[bytes]:  # no Content-Length: the limit is counted
            yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="c.bin"\r\n\r\n'
            for _ in range(3):
                yield bytes(MIB)
            yield b"\r\n--b--\r\n"

        counted = client.post(
            "/files/upload",
            content=chunked(),
            headers={"Content-Type": "multipart/form-data; boundary=b"},
        )
        assert counted.status_code == 413
        listed = client.get("/files", params={"filename": "c.bin"})
        assert listed.json() == []


def test_the_files_service_size_limit_is_413_too(
    files_server_factory: Any, gateway_server: Any
) -> None:
    small_files = files_server_factory(DTPOC_FILES_MAX_UPLOAD_BYTES=str(MIB))
    server = gateway_server(files_address=small_files.address)
    with httpx.Client(base_url=server.base_url + PREFIX, timeout=60.0) as client:
        answer = upload(client, "too-big.bin", bytes(2 * MIB))
    assert answer.status_code == 413, answer.text
    assert answer.json()["status"] == "RESOURCE_EXHAUSTED"


def test_expected_sha256_from_the_query_reaches_the_header(rest: httpx.Client) -> None:
    data = b"checked content"
    wrong = rest.post(
        "/files/upload",
        params={"expected_sha256": "0" * 64},
        files={"file": ("checked.txt", data)},
    )
    assert wrong.status_code == 400
    right = rest.post(
        "/files/upload",
        params={"expected_sha256": hashlib.sha256(data).hexdigest()},
        files={"file": ("checked.txt", data)},
    )
    assert right.status_code == 200


def test_a_rest_upload_cannot_label_a_file_as_a_services_output(rest: httpx.Client) -> None:
    """Output labels are the operator's (Files refuses them from the gateway's token); the
    multipart route has no way to carry metadata at all, so a REST client cannot try."""
    data = random.Random(7).randbytes(1000)
    for query in ("metadata.service_id=aaaaaaaaaaaaaaaaaaaaaaaa", "metadata=%7B%7D"):
        answer = rest.post(f"/files/upload?{query}", files={"file": ("result.json", data)})
        assert answer.status_code == 400, answer.text
        assert "unknown query parameter" in answer.json()["message"]
    listed = rest.get("/files", params={"limit": 1000}).json()
    assert all(item["length"] != len(data) or item["filename"] != "result.json" for item in listed)


def test_prefixless_file_paths(files_gateway: GatewayServer) -> None:
    with httpx.Client(base_url=files_gateway.base_url, timeout=60.0) as client:
        file_id = upload(client, "bare.txt", b"in-cluster caller").json()["file_id"]
        assert client.get(f"/files/{file_id}").content == b"in-cluster caller"
        assert any(r["file_id"] == file_id for r in client.get("/files").json())


# -- the 200 MiB round trip ----------------------------------------------------------


def vm_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


class RssSampler:
    """Samples the gateway's resident set every 20 ms while an upload runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.baseline_kib = vm_rss_kib(pid)
        self.peak_kib = self.baseline_kib
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_kib = max(self.peak_kib, vm_rss_kib(self.pid))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kib = max(self.peak_kib, vm_rss_kib(self.pid))


@pytest.mark.slow
def test_200_mib_round_trip_with_bounded_gateway_memory(
    rest: httpx.Client, files_gateway: GatewayServer
) -> None:
    boundary = "dtpoc-round-trip"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="round-trip.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    sent = hashlib.sha256()
    rng = random.Random(200)

    def body() -> Iterator[bytes]:
        yield head
        for _ in range(ROUND_TRIP_BYTES // MIB):
            piece = rng.randbytes(MIB)
            sent.update(piece)
            yield piece
        yield tail

    # Warm the upload path first so that the baseline includes its code.
    assert upload(rest, "warm-up.bin", b"warm").status_code == 200
    started = time.monotonic()
    with RssSampler(files_gateway.pid) as rss:
        answer = rest.post(
            "/files/upload",
            content=body(),
            headers={
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Content-Length": str(len(head) + ROUND_TRIP_BYTES + len(tail)),
            },
        )
    upload_seconds = time.monotonic() - started
    assert answer.status_code == 200, answer.text
    growth = (rss.peak_kib - rss.baseline_kib) * 1024
    print(
        f"\ngateway RSS during a {ROUND_TRIP_BYTES // MIB} MiB upload: baseline "
        f"{rss.baseline_kib / 1024:.1f} MiB, peak {rss.peak_kib / 1024:.1f} MiB, growth "
        f"{growth / MIB:.1f} MiB (limit {RSS_GROWTH_LIMIT // MIB} MiB); upload took "
        f"{upload_seconds:.1f} s"
    )
    assert growth < RSS_GROWTH_LIMIT

    file_id = answer.json()["file_id"]
    received = hashlib.sha256()
    size = 0
    with rest.stream("GET", f"/files/{file_id}") as download:
        assert download.status_code == 200
        assert download.headers["content-length"] == str(ROUND_TRIP_BYTES)
        for piece in download.iter_bytes():
            received.update(piece)
            size += len(piece)
    assert size == ROUND_TRIP_BYTES
    assert received.hexdigest() == sent.hexdigest()
