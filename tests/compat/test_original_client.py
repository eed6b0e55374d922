"""A client written against the original API keeps working, call for call.

Each request is what a client of ``shared/seed/api-contract.md`` sends, and
each assertion is a shape or code that such a client reads: bare JSON
arrays, snake_case names, numbers where numbers were, 202 on launch, 404 for
unknown ids, a ``detail`` in error bodies. Where the original was defective
(terminate losing the record), the assertion is the repaired behaviour.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import httpx

from tests.compat.helpers import PREFIX

OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")

SEED_LAUNCH: dict[str, Any] = {
    "image": "ghcr.io/cam-digital-hospitals/digital-hosp-des",
    "version": "latest",
    "description": "Histopathology lab simulation reporting KPIs",
    "port": None,
    "env": {
        "INPUT_EXCEL_FILE": "/input/input.xlsx",
        "OUTPUT_FOLDER": "/output",
        "SIM_HOURS": "1176",
        "NUM_REPS": "2",
    },
    "mount_files": {},
    "ana": {"job_type": "ondemand", "reps": 2, "schedule": None},
    "sim": None,
}


def upload(client: httpx.Client, name: str, content: bytes) -> httpx.Response:
    return client.post(f"{PREFIX}/files/upload", files={"file": (name, content)})


def test_health(platform: httpx.Client) -> None:
    answer = platform.get(f"{PREFIX}/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}


def test_files_upload_list_download_dedup(platform: httpx.Client) -> None:
    content = b"specimen,arrivals\nbiopsy,12\n" * 1000
    first = upload(platform, "input.xlsx", content)
    assert first.status_code == 200, first.text
    created = first.json()
    assert set(created) == {"file_id", "filename"}
    assert OBJECT_ID.match(created["file_id"])
    assert created["filename"] == "input.xlsx"

    again = upload(platform, "copy.xlsx", content)
    assert again.status_code == 200
    assert again.json() == {
        "file_id": created["file_id"],
        "filename": "input.xlsx",
        "message": "File already exists",
    }

    listed = platform.get(f"{PREFIX}/files", params={"skip": 0, "limit": 10})
    assert listed.status_code == 200
    records = listed.json()
    assert isinstance(records, list)
    record = next(r for r in records if r["file_id"] == created["file_id"])
    assert set(record) >= {"file_id", "filename", "length", "uploadDate", "metadata"}
    assert record["length"] == len(content)  # a number, as the original sent it
    assert isinstance(record["uploadDate"], str)
    assert record["metadata"]["hash"] == hashlib.md5(content).hexdigest()

    download = platform.get(f"{PREFIX}/files/{created['file_id']}")
    assert download.status_code == 200
    assert download.content == content
    assert download.headers["content-disposition"].startswith("attachment;")
    assert "input.xlsx" in download.headers["content-disposition"]
    assert download.headers["content-length"] == str(len(content))


def test_launch_status_list_terminate(platform: httpx.Client) -> None:
    file_id = upload(platform, "input.xlsx", b"workbook").json()["file_id"]
    body = {**SEED_LAUNCH, "mount_files": {file_id: "input.xlsx"}}
    launched = platform.post(f"{PREFIX}/service/launch", json=body)
    assert launched.status_code == 202, launched.text
    assert set(launched.json()) == {"id"}
    service_id = launched.json()["id"]
    assert OBJECT_ID.match(service_id)

    status = platform.get(f"{PREFIX}/service/{service_id}/status")
    assert status.status_code == 200
    shape = status.json()
    assert {
        "active_runs",
        "succeeded_runs",
        "failed_runs",
        "total_runs",
        "status",
        "output_files",
    } <= set(shape)
    assert shape["status"] in {"ok", "running", "error"}
    assert shape["output_files"] == []
    assert all(isinstance(shape[k], int) for k in ("active_runs", "succeeded_runs", "failed_runs"))

    for path in (f"{PREFIX}/service/", f"{PREFIX}/service"):
        listed = platform.get(path, params={"skip": 0, "limit": 10})
        assert listed.status_code == 200, path
        entries = listed.json()
        assert isinstance(entries, list)
        entry = next(e for e in entries if e["id"] == service_id)
        assert {
            "id",
            "image",
            "version",
            "description",
            "reps",
            "mount_files",
            "output_files",
            "created_at",
        } <= set(entry)
        assert entry["reps"] == 2
        assert entry["mount_files"] == {file_id: "input.xlsx"}
        assert isinstance(entry["created_at"], int | float)

    # The mounted input is protected while the service is alive.
    refused = platform.delete(f"{PREFIX}/files/{file_id}")
    assert refused.status_code in {400, 409}, refused.text
    assert platform.get(f"{PREFIX}/files/{file_id}").status_code == 200

    terminated = platform.delete(f"{PREFIX}/service/{service_id}/terminate")
    assert terminated.status_code == 200
    assert isinstance(terminated.json()["message"], str)
    again = platform.delete(f"{PREFIX}/service/{service_id}/terminate")
    assert again.status_code == 200
    # Unlike the original, the record stays after terminate.
    listed_after = platform.get(f"{PREFIX}/service/", params={"limit": 100}).json()
    assert any(e["id"] == service_id for e in listed_after)
    assert platform.get(f"{PREFIX}/service/{service_id}/status").status_code == 200

    deleted = platform.delete(f"{PREFIX}/files/{file_id}")
    assert deleted.status_code == 200, deleted.text
    assert isinstance(deleted.json()["message"], str)
    assert platform.get(f"{PREFIX}/files/{file_id}").status_code == 404


def test_unprefixed_routes_answer_like_the_original_server(platform: httpx.Client) -> None:
    created = upload(platform, "in-cluster.txt", b"in-cluster caller").json()
    answer = platform.get(f"/files/{created['file_id']}")
    assert answer.status_code == 200
    assert answer.content == b"in-cluster caller"
    assert platform.get("/healthz").json() == {"status": "ok"}


def test_errors_have_the_right_codes_and_no_trace(platform: httpx.Client) -> None:
    unknown = "0123456789abcdef01234567"
    cases: list[tuple[str, str, int]] = [
        ("GET", f"{PREFIX}/service/{unknown}/status", 404),
        ("GET", f"{PREFIX}/service/not-an-id/status", 400),
        ("GET", f"{PREFIX}/service/{unknown}/output/0", 404),
        ("GET", f"{PREFIX}/service/{unknown}/output/x", 400),
        ("DELETE", f"{PREFIX}/service/{unknown}/terminate", 404),
        ("GET", f"{PREFIX}/files/{unknown}", 404),
        ("GET", f"{PREFIX}/files/nope", 400),
        ("DELETE", f"{PREFIX}/files/{unknown}", 404),
        ("GET", f"{PREFIX}/service/?skip=-1", 400),
        ("GET", f"{PREFIX}/service/?limit=0", 400),
        ("GET", f"{PREFIX}/files?limit=abc", 400),
    ]
    for method, path, expected in cases:
        answer = platform.request(method, path)
        assert answer.status_code == expected, (method, path, answer.text)
        body = answer.json()
        assert body["detail"], (path, body)
        assert "Traceback" not in answer.text

    bad_launches: list[dict[str, Any]] = [
        {**SEED_LAUNCH, "ana": {"job_type": "ondemand", "reps": 0}},
        {**SEED_LAUNCH, "ana": {"job_type": "weekly", "reps": 1}},
        {**SEED_LAUNCH, "ana": {"job_type": "scheduled", "reps": 1, "schedule": "every day"}},
        {**SEED_LAUNCH, "ana": None},
        {**SEED_LAUNCH, "mount_files": {"0123456789abcdef01234567": "../etc/passwd"}},
        {**SEED_LAUNCH, "image": "Not A Valid Image!"},
        {**SEED_LAUNCH, "reps": "many"},
    ]
    for body in bad_launches:
        answer = platform.post(f"{PREFIX}/service/launch", json=body)
        assert answer.status_code == 400, (body, answer.text)
    assert platform.post(f"{PREFIX}/service/launch", content=b"{not json").status_code == 400
    sim = platform.post(f"{PREFIX}/service/launch", json={**SEED_LAUNCH, "ana": None, "sim": {}})
    assert sim.status_code == 501
    missing_mount = platform.post(
        f"{PREFIX}/service/launch",
        json={**SEED_LAUNCH, "mount_files": {"0123456789abcdef01234567": "input.xlsx"}},
    )
    assert missing_mount.status_code == 404
