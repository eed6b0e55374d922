"""A Files pod deleted in the middle of an upload leaves no partial file."""

from __future__ import annotations

from collections.abc import Iterator

import httpx

from dtpoc_local import waiting
from tests.cluster.helpers import Platform
from tools.cluster import layout

MIB = 1024 * 1024
NAME = "cut-short.bin"
HEAD = f'--b\r\nContent-Disposition: form-data; name="file"; filename="{NAME}"\r\n\r\n'.encode()


def _files_pods(platform: Platform) -> list[str]:
    selector = "app.kubernetes.io/component%3Dfiles"
    path = f"/api/v1/namespaces/{layout.NAMESPACE}/pods?labelSelector={selector}"
    items = platform.kube.request("GET", path)["items"]
    return [p["metadata"]["name"] for p in items if not p["metadata"].get("deletionTimestamp")]


def _files_ready(platform: Platform) -> bool:
    path = f"/apis/apps/v1/namespaces/{layout.NAMESPACE}/deployments/{layout.RELEASE}-files"
    status = platform.kube.request("GET", path).get("status") or {}
    return bool(status.get("readyReplicas") == 1 and status.get("updatedReplicas") == 1)


def test_deleting_the_files_pod_during_an_upload_leaves_no_partial_file(
    platform: Platform,
) -> None:
    (victim,) = _files_pods(platform)

    def body() -> Iterator[bytes]:
        yield HEAD
        yield bytes(MIB)
        # Not --force: kubectl returns once the kubelet has stopped the container,
        # so the rest of the upload goes to a Files process that is gone.
        platform.kubectl(
            "-n", layout.NAMESPACE, "delete", "pod", victim, "--grace-period=1", "--wait=true"
        )
        for _ in range(8):
            yield bytes(MIB)
        yield b"\r\n--b--\r\n"

    with platform.client() as client:
        try:
            answer = client.post(
                "/files/upload",
                content=body(),
                headers={"Content-Type": "multipart/form-data; boundary=b"},
            )
        except httpx.TransportError:
            answer = None
        stored = answer is not None and answer.status_code == 200
        assert answer is None or stored or 400 <= answer.status_code < 600
        waiting.wait_for(
            lambda: _files_ready(platform) and victim not in _files_pods(platform),
            timeout=120,
            what="a new Files pod to be ready",
        )

        def answered() -> httpx.Response | None:
            response = client.get("/files", params={"filename": NAME})
            return response if response.status_code == 200 else None

        listed = waiting.wait_for(
            answered, timeout=60, what="Files to answer through the gateway again"
        )
        records = listed.json()
        if not stored:
            assert records == [], "nothing of the cut-short upload is stored"
            return
        # The gateway may have held the whole body until a new Files pod answered:
        # then what is stored must be all of it, never a part.
        (record,) = records
        download = client.get(f"/files/{record['file_id']}")
        assert download.content == bytes(9 * MIB), "a stored upload is complete"
