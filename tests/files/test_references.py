"""Reference-aware deletion: a stored file stays while anything references it.

Files deduplicates by content, so one stored file can be several users'
uploads and several services' recorded outputs at once. A delete removes
one upload reference; the file goes only with its last reference, and a
replica's recorded output is never deleted (``force`` or not).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from pymongo.database import Database

from dtpoc.files.v1alpha1 import files_pb2, files_pb2_grpc
from tests.files import helpers


def delete(
    client: files_pb2_grpc.FilesServiceStub, file_id: str, *, force: bool = False
) -> files_pb2.DeleteFileResponse:
    response: files_pb2.DeleteFileResponse = client.DeleteFile(
        files_pb2.DeleteFileRequest(file_id=file_id, force=force), timeout=helpers.CALL_TIMEOUT
    )
    return response


def exists(client: files_pb2_grpc.FilesServiceStub, file_id: str) -> bool:
    try:
        client.GetFileInfo(
            files_pb2.GetFileInfoRequest(file_id=file_id), timeout=helpers.CALL_TIMEOUT
        )
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return False
        raise
    return True


def upload_output(
    operator: files_pb2_grpc.FilesServiceStub,
    data: bytes,
    *,
    service_id: str,
    replica_index: int = 0,
    path: str = "result.json",
) -> str:
    """Store ``data`` as the operator's collector stores a replica's output (``operator``
    presents its token: nobody else may label an output)."""
    metadata = {"service_id": service_id, "replica_index": replica_index, "path": path}
    return str(helpers.upload(operator, data, path.rsplit("/", 1)[-1], metadata=metadata).file_id)


def refusal(client: files_pb2_grpc.FilesServiceStub, file_id: str, *, force: bool) -> grpc.Call:
    with pytest.raises(grpc.RpcError) as raised:
        delete(client, file_id, force=force)
    error: Any = raised.value
    return error  # type: ignore[no-any-return]


def precondition_subjects(error: Any) -> set[str]:
    """The subjects of the google.rpc.PreconditionFailure detail of a refusal."""
    subjects: set[str] = set()
    for key, value in error.trailing_metadata() or ():
        if key != "grpc-status-details-bin":
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            failure = error_details_pb2.PreconditionFailure()
            if detail.Unpack(failure):
                subjects.update(v.subject for v in failure.violations)
    return subjects


def test_files_stored_before_references_existed_keep_their_meaning(
    files: files_pb2_grpc.FilesServiceStub,
    operator_files: files_pb2_grpc.FilesServiceStub,
    files_db: Database[dict[str, Any]],
) -> None:
    """A files document without references (older server, another tool) counts as one
    upload, or as a recorded output when its metadata names a service's replica."""
    plain = helpers.upload(files, helpers.unique_bytes(100)).file_id
    output = upload_output(
        operator_files, helpers.unique_bytes(100), service_id="dddddddddddddddddddddddd"
    )
    files_db["fs.files"].update_many({}, {"$unset": {"references": ""}})

    assert refusal(files, output, force=True).code() == grpc.StatusCode.ABORTED
    assert delete(files, plain).deleted
    assert not exists(files, plain)


def test_concurrent_deletes_remove_one_reference_each(
    files: files_pb2_grpc.FilesServiceStub,
) -> None:
    data = helpers.unique_bytes(1_000)
    uploads = 6
    ids = {helpers.upload(files, data, f"u{i}.bin").file_id for i in range(uploads)}
    assert len(ids) == 1
    file_id = ids.pop()

    answers: list[files_pb2.DeleteFileResponse] = []
    failures: list[BaseException] = []
    start = threading.Barrier(uploads)

    def one() -> None:
        start.wait()
        try:
            answers.append(delete(files, file_id))
        except grpc.RpcError as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=one) for _ in range(uploads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not failures, failures
    assert sorted(a.deleted for a in answers) == [False] * (uploads - 1) + [True]
    assert not exists(files, file_id)


def run_together(*calls: Callable[[], Any]) -> list[Any]:
    """Run ``calls`` in threads released at the same moment; answer their results."""
    results: list[Any] = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(i: int) -> None:
        start.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_an_upload_racing_a_delete_never_answers_a_deleted_file(
    files: files_pb2_grpc.FilesServiceStub,
) -> None:
    """Whichever comes first, the id an upload answers stays readable."""
    for round_ in range(8):
        data = helpers.unique_bytes(3_000)
        first = helpers.upload(files, data).file_id
        answer, _deleted = run_together(
            functools.partial(helpers.upload, files, data), functools.partial(delete, files, first)
        )
        assert helpers.download(files, answer.file_id).data == data, round_


class ReferenceModel(RuleBasedStateMachine):
    """One content's references against the real Files service, step by step.

    The model: how many uploads hold the content, and which services' outputs
    recorded it. Whatever the sequence of uploads, output uploads, deletes and
    forced deletes, the answers and what stays stored follow the model.
    """

    client: files_pb2_grpc.FilesServiceStub
    operator: files_pb2_grpc.FilesServiceStub

    def __init__(self) -> None:
        super().__init__()
        self.data = helpers.unique_bytes(512)
        self.file_id: str | None = None
        self.uploads = 0
        self.outputs: set[str] = set()

    @rule()
    def upload(self) -> None:
        answer = helpers.upload(self.client, self.data, "mine.bin")
        self._same_file(answer.file_id)
        self.uploads += 1

    @rule(service=st.sampled_from(["a" * 24, "b" * 24]), index=st.integers(0, 1))
    def upload_output(self, service: str, index: int) -> None:
        file_id = upload_output(self.operator, self.data, service_id=service, replica_index=index)
        self._same_file(file_id)
        self.outputs.add(service)

    @rule(force=st.booleans())
    def delete(self, force: bool) -> None:
        if self.file_id is None:
            return
        if self.uploads == 0:
            error = refusal(self.client, self.file_id, force=force)
            assert error.code() == grpc.StatusCode.ABORTED
            assert precondition_subjects(error) == {f"services/{s}" for s in self.outputs}
            return
        answer = delete(self.client, self.file_id, force=force)
        self.uploads -= 1
        assert answer.deleted == (self.uploads == 0 and not self.outputs)
        if answer.deleted:
            self.file_id = None

    def _same_file(self, file_id: str) -> None:
        if self.file_id is None:
            self.file_id = file_id
        assert file_id == self.file_id, "identical content is one stored file"

    @invariant()
    def stored_while_referenced(self) -> None:
        if self.file_id is not None:
            assert helpers.download(self.client, self.file_id).data == self.data


def test_references_follow_the_model(
    files: files_pb2_grpc.FilesServiceStub, operator_files: files_pb2_grpc.FilesServiceStub
) -> None:
    ReferenceModel.client = files
    ReferenceModel.operator = operator_files
    run_state_machine_as_test(
        ReferenceModel,
        settings=settings(
            max_examples=12,
            stateful_step_count=10,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
