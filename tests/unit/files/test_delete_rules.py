"""The Files service's delete and usage rules at the use-case level, on the fakes of its
ports (``dtpoc_files.memory``): what a caller of ``DeleteFile`` notices.

The fakes pass the same contract tests as GridFS and the orchestrator client
(``tests/files/test_store_contract.py``, ``test_usage_contract.py``); what only a real
server shows (the interceptor's codes, an unreachable orchestrator, concurrent deletes,
files other GridFS writers stored) stays in ``tests/files``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from bson import ObjectId
from google.rpc import error_details_pb2  # type: ignore[import-untyped]

from dtpoc_common import errors
from dtpoc_files import domain, memory, ports, service, usage
from dtpoc_files.settings import FilesSettings

SERVICE_A = "aaaaaaaaaaaaaaaaaaaaaaaa"
SERVICE_B = "bbbbbbbbbbbbbbbbbbbbbbbb"


def files_service(file_usage: ports.FileUsage | None = None) -> service.FilesService:
    return service.FilesService(
        memory.InMemoryFileStore(chunk_bytes=64),
        file_usage or memory.InMemoryFileUsage(),
        max_upload_bytes=1 << 20,
        download_piece_bytes=64,
    )


async def _pieces(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 100):
        yield data[start : start + 100]


async def upload(files: service.FilesService, data: bytes, **metadata: Any) -> str:
    header = domain.parse_upload_header(
        filename="data.bin",
        content_type="",
        metadata=metadata,
        expected_sha256="",
        expected_length=None,
        max_bytes=files.max_upload_bytes,
    )
    outcome = await files.upload(header, _pieces(data))
    return outcome.record.file_id


def unique(size: int = 300) -> bytes:
    return (str(ObjectId()) * (size // 24 + 1)).encode()[:size]


async def exists(files: service.FilesService, file_id: str) -> bool:
    try:
        await files.info(file_id)
    except errors.NotFound:
        return False
    return True


def subjects(error: errors.DomainError) -> set[str]:
    [failure] = error.details
    assert isinstance(failure, error_details_pb2.PreconditionFailure)
    return {v.subject for v in failure.violations}


async def test_a_file_a_live_service_mounts_is_kept_unless_forced() -> None:
    mounts = memory.InMemoryFileUsage()
    files = files_service(mounts)
    mounted = await upload(files, unique())
    mounts.mounts[mounted] = ["svc-b", "svc-a"]

    with pytest.raises(errors.InUse) as raised:
        await files.delete(mounted, force=False)
    assert raised.value.code.name == "ABORTED", "in use: HTTP 409"
    assert "svc-a, svc-b" in raised.value.message and "force" in raised.value.message
    assert subjects(raised.value) == {"services/svc-a", "services/svc-b"}
    assert await exists(files, mounted)
    assert mounts.asked == [mounted]

    assert (await files.delete(mounted, force=True)).deleted
    assert not await exists(files, mounted)
    assert mounts.asked == [mounted], "force does not ask"


async def test_a_file_nobody_mounts_is_deleted_and_its_content_stored_afresh() -> None:
    files = files_service()
    data = unique()
    file_id = await upload(files, data)
    outcome = await files.delete(file_id, force=False)
    assert outcome.deleted and outcome.message == f"File {file_id} deleted"
    assert not await exists(files, file_id)
    assert await upload(files, data) != file_id
    with pytest.raises(errors.NotFound):
        await files.delete(file_id, force=False)


async def test_an_orchestrator_that_cannot_answer_blocks_deletes_without_force() -> None:
    class Unreachable(memory.InMemoryFileUsage):
        async def active_service_ids(self, file_id: str) -> list[str]:
            raise errors.Unavailable("the orchestrator could not say; nothing was deleted")

    files = files_service(Unreachable())
    file_id = await upload(files, unique())
    with pytest.raises(errors.Unavailable):
        await files.delete(file_id, force=False)
    assert await exists(files, file_id)
    assert (await files.delete(file_id, force=True)).deleted


async def test_without_an_orchestrator_address_deletes_need_force_or_the_check_switched_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DTPOC_FILES_ORCHESTRATOR_ADDRESS", raising=False)
    unconfigured = usage.from_settings(FilesSettings(usage_check=True))
    files = files_service(unconfigured)
    file_id = await upload(files, unique())
    with pytest.raises(errors.FailedPrecondition) as raised:
        await files.delete(file_id, force=False)
    assert "DTPOC_FILES_ORCHESTRATOR_ADDRESS" in raised.value.message
    assert await exists(files, file_id)
    assert (await files.delete(file_id, force=True)).deleted

    switched_off = files_service(usage.from_settings(FilesSettings(usage_check=False)))
    file_id = await upload(switched_off, unique())
    assert (await switched_off.delete(file_id, force=False)).deleted


async def test_two_uploads_of_the_same_content_need_two_deletes() -> None:
    files = files_service()
    data = unique()
    first = await upload(files, data)
    assert await upload(files, data) == first

    kept = await files.delete(first, force=False)
    assert not kept.deleted
    assert "1 other upload" in kept.message
    assert await exists(files, first), "the other user's upload still holds the file"
    gone = await files.delete(first, force=False)
    assert gone.deleted
    assert not await exists(files, first)


async def test_a_delete_whose_reference_was_not_the_last_does_not_say_it_deleted() -> None:
    """Two uploads, two deletes at once: the one that removed the other upload's
    reference answers "kept" even when the second delete took the file away before it
    looked again; only the delete that removed the last reference says it deleted."""
    answers: list[service.DeleteOutcome] = []

    class OtherDeleteMeanwhile(memory.InMemoryFileStore):
        async def drop_upload_reference(self, reference_id: str) -> bool:
            dropped = await super().drop_upload_reference(reference_id)
            if dropped and not answers:  # the other user deletes their upload now
                answers.append(await files.delete(file_id, force=False))
            return dropped

    files = service.FilesService(
        OtherDeleteMeanwhile(chunk_bytes=64),
        memory.InMemoryFileUsage(),
        max_upload_bytes=1 << 20,
        download_piece_bytes=64,
    )
    data = unique()
    file_id = await upload(files, data)
    assert await upload(files, data) == file_id

    first = await files.delete(file_id, force=False)
    [second] = answers
    assert second.deleted, "the delete that removed the last reference deleted the file"
    assert not first.deleted, first.message
    assert "one upload reference removed" in first.message
    assert not await exists(files, file_id)


async def test_a_recorded_output_survives_a_delete_of_the_same_content() -> None:
    files = files_service()
    data = unique()
    output = await upload(files, data, service_id=SERVICE_A, replica_index=1, path="o/kpi.json")
    # A user uploads the same bytes, gets the output's id, and deletes "their" file.
    assert await upload(files, data) == output
    kept = await files.delete(output, force=False)
    assert not kept.deleted and SERVICE_A in kept.message
    for force in (False, True):
        with pytest.raises(errors.InUse) as raised:
            await files.delete(output, force=force)
        assert SERVICE_A in raised.value.message and "output" in raised.value.message
        assert subjects(raised.value) == {f"services/{SERVICE_A}"}
    assert await exists(files, output)


async def test_outputs_of_two_services_with_the_same_content_both_hold_the_file() -> None:
    files = files_service()
    data = unique()
    one = await upload(files, data, service_id=SERVICE_A, replica_index=0, path="a.json")
    two = await upload(files, data, service_id=SERVICE_B, replica_index=0, path="x/y.json")
    again = await upload(files, data, service_id=SERVICE_A, replica_index=0, path="a.json")
    assert one == two == again
    with pytest.raises(errors.InUse) as raised:
        await files.delete(one, force=True)
    assert subjects(raised.value) == {f"services/{SERVICE_A}", f"services/{SERVICE_B}"}
    assert await exists(files, one)


async def test_a_launch_between_the_usage_check_and_the_delete_keeps_its_file() -> None:
    """The launch's mount announcement moves the file's generation: the delete decides
    again, now sees the service, and refuses."""
    store = memory.InMemoryFileStore(chunk_bytes=64)

    class LaunchMeanwhile(memory.InMemoryFileUsage):
        async def active_service_ids(self, file_id: str) -> list[str]:
            answer = await super().active_service_ids(file_id)
            if not answer:  # the launch records its service, then announces the mount
                self.mounts[file_id] = [SERVICE_B]
                await store.announce_mount(file_id)
            return answer

    files = service.FilesService(
        store, LaunchMeanwhile(), max_upload_bytes=1 << 20, download_piece_bytes=64
    )
    file_id = await upload(files, unique())
    with pytest.raises(errors.InUse) as raised:
        await files.delete(file_id, force=False)
    assert SERVICE_B in raised.value.message
    assert await exists(files, file_id)
