"""What a REST client sees of reference-aware deletion (services/files/README.md).

The platform of ``conftest.py``: real Files (asking the real orchestrator
before a last reference goes), orchestrator and gateway.
"""

from __future__ import annotations

import os

import httpx

from tests.compat.helpers import PREFIX
from tests.compat.test_original_client import SEED_LAUNCH, upload


def test_a_shared_upload_needs_a_delete_per_upload(platform: httpx.Client) -> None:
    content = os.urandom(2_000)
    first = upload(platform, "mine.xlsx", content).json()["file_id"]
    assert upload(platform, "yours.xlsx", content).json()["file_id"] == first

    kept = platform.delete(f"{PREFIX}/files/{first}")
    assert kept.status_code == 200, kept.text
    assert kept.json()["deleted"] is False
    assert "1 other upload" in kept.json()["message"]
    assert platform.get(f"{PREFIX}/files/{first}").content == content

    gone = platform.delete(f"{PREFIX}/files/{first}")
    assert gone.status_code == 200 and gone.json()["deleted"] is True
    assert platform.get(f"{PREFIX}/files/{first}").status_code == 404


def test_a_mounted_file_is_a_409_naming_the_service(platform: httpx.Client) -> None:
    file_id = upload(platform, "input.xlsx", os.urandom(1_000)).json()["file_id"]
    launched = platform.post(
        f"{PREFIX}/service/launch", json={**SEED_LAUNCH, "mount_files": {file_id: "input.xlsx"}}
    )
    service_id = launched.json()["id"]

    refused = platform.delete(f"{PREFIX}/files/{file_id}")

    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["status"] == "ABORTED"
    assert service_id in body["message"] and "force" in body["message"]
    (detail,) = body["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.PreconditionFailure"
    assert detail["violations"] == [
        {
            "type": "MOUNTED",
            "subject": f"services/{service_id}",
            "description": f"service {service_id} mounts the file as an input",
        }
    ]
    forced = platform.delete(f"{PREFIX}/files/{file_id}", params={"force": "true"})
    assert forced.status_code == 200 and forced.json()["deleted"] is True
