"""The output collector against output folders a hostile or broken replica leaves.

Real file system; Files is :class:`dtpoc_operator.memory.InMemoryFiles`, which
passes the same upload contract as the real service
(``tests/operator/test_files_contract.py``). Whatever the folder holds,
collecting answers (never raises), stores every readable regular file, lists
what it skipped with a reason, and never reads or deletes outside the folder.
The scan as another user (a forked child) is in ``tests/operator``.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dtpoc_operator import collector as collector_mod
from dtpoc_operator import memory


@pytest.fixture
def files() -> memory.InMemoryFiles:
    return memory.InMemoryFiles()


def collect(files: memory.InMemoryFiles, folder: Path) -> collector_mod.Collected:
    collector = collector_mod.OutputCollector(files, max_parallel_uploads=2, timeout_seconds=20)
    return asyncio.run(collector.collect(folder, service_id="svc", replica_index=0, run="svc"))


def outputs(files: memory.InMemoryFiles, service_id: str) -> list[dict[str, Any]]:
    """The metadata of every output stored for ``service_id``, in upload order."""
    return [m for _id, m in files.uploads if m.get("service_id") == service_id]


def deep_folder(folder: Path, *, levels: int, name_length: int = 200) -> Path:
    """Nested folders whose full path is longer than PATH_MAX (4096), made with
    relative steps as a replica can; answers the deepest (never opened by path)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for level in range(levels):
            name = f"{level:03d}" + "d" * (name_length - 3)
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        out = os.open("deep.csv", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(out, b"deep,1\n")
        os.close(out)
    finally:
        os.close(fd)
    return folder


def test_a_path_longer_than_path_max_is_collected_and_removed(
    files: memory.InMemoryFiles, tmp_path: Path
) -> None:
    folder = tmp_path / "svc" / "0"
    folder.mkdir(parents=True)
    (folder / "result.json").write_text('{"ok": true}')
    deep_folder(folder, levels=24)

    collected = collect(files, folder)

    assert collected.skipped == ()
    assert len(collected.file_ids) == 2
    paths = sorted(m["path"] for m in outputs(files, "svc"))
    assert paths[-1] == "result.json" and paths[0].endswith("/deep.csv")
    assert len(paths[0]) > 4096
    collector_mod.OutputCollector.remove_uploaded(folder, collected)
    assert not folder.exists(), "uploaded files and the emptied folders are gone"


def test_fifos_sockets_and_links_are_skipped_and_reported(
    files: memory.InMemoryFiles, tmp_path: Path
) -> None:
    folder = tmp_path / "svc" / "0"
    (folder / "sub").mkdir(parents=True)
    (folder / "result.json").write_text("{}")
    os.mkfifo(folder / "pipe")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(folder / "sub" / "sock"))
    (folder / "loop").symlink_to(folder / "loop")
    (folder / "up").symlink_to(tmp_path, target_is_directory=True)
    try:
        collected = collect(files, folder)
    finally:
        listener.close()

    assert len(collected.file_ids) == 1
    reasons = dict(collected.skipped)
    assert reasons == {
        "loop": "a symbolic link (not followed)",
        "pipe": "a FIFO",
        "sub/sock": "a socket",
        "up": "a symbolic link (not followed)",
    }
    assert "pipe (a FIFO)" in collected.note


def test_a_folder_swapped_for_a_link_after_the_scan_is_not_followed_for_removal(
    files: memory.InMemoryFiles, tmp_path: Path
) -> None:
    """The replica swaps ``sub`` for a link to a folder of the operator's between
    upload and removal: the operator's file of the same name stays."""
    operator_files = tmp_path / "operator"
    operator_files.mkdir()
    (operator_files / "table.csv").write_text("the operator's own file")
    folder = tmp_path / "svc" / "0"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "table.csv").write_text("x\n1\n")

    collected = collect(files, folder)
    assert len(collected.file_ids) == 1
    (folder / "sub" / "table.csv").rename(tmp_path / "moved.csv")
    (folder / "sub").rmdir()
    (folder / "sub").symlink_to(operator_files, target_is_directory=True)

    collector_mod.OutputCollector.remove_uploaded(folder, collected)
    assert (operator_files / "table.csv").read_text() == "the operator's own file"
    assert not folder.exists(), "the link itself went, and the emptied folder"


def after_the_scan(monkeypatch: pytest.MonkeyPatch, change: Callable[[], None]) -> None:
    """Let the replica ``change`` its folder right after the collector scanned it."""
    real = collector_mod.scan_folder

    def scan_then_change(folder: Path, *, max_file_bytes: int) -> collector_mod.Scan:
        found = real(folder, max_file_bytes=max_file_bytes)
        change()
        return found

    monkeypatch.setattr(collector_mod, "scan_folder", scan_then_change)


def test_a_folder_swapped_for_a_link_before_the_upload_is_not_read(
    files: memory.InMemoryFiles,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Between scan and upload ``sub`` becomes a link to a folder holding a file of
    the same name and content: the collector does not open it through the link."""
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "token").write_text("same bytes")
    folder = tmp_path / "svc" / "0"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "token").write_text("same bytes")
    (folder / "result.json").write_text("{}")

    def swap() -> None:
        (folder / "sub" / "token").unlink()
        (folder / "sub").rmdir()
        (folder / "sub").symlink_to(secret, target_is_directory=True)

    after_the_scan(monkeypatch, swap)
    collected = collect(files, folder)

    assert len(collected.file_ids) == 1
    (reason,) = dict(collected.skipped).values()
    assert "replaced by a symbolic link" in reason
    assert [m["path"] for m in outputs(files, "svc")] == ["result.json"]


def test_files_vanishing_after_the_scan_are_reported_and_the_rest_stored(
    files: memory.InMemoryFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "svc" / "0"
    (folder / "tmp").mkdir(parents=True)
    (folder / "kept.json").write_text("{}")
    for i in range(3):
        (folder / "tmp" / f"{i}.txt").write_text(f"{i}")
    (folder / "rewritten.txt").write_text("before")

    def churn() -> None:
        for i in range(3):
            (folder / "tmp" / f"{i}.txt").unlink()
        (folder / "tmp").rmdir()
        (folder / "rewritten.txt").write_text("after, and longer")

    after_the_scan(monkeypatch, churn)
    collected = collect(files, folder)

    assert len(collected.file_ids) == 1
    reasons = dict(collected.skipped)
    assert {k: reasons[k] for k in ("tmp/0.txt", "tmp/1.txt", "tmp/2.txt")} == dict.fromkeys(
        ("tmp/0.txt", "tmp/1.txt", "tmp/2.txt"), "vanished during collection"
    )
    assert "rewritten.txt" in reasons, "a file changed since its digest is refused, not torn"
    collector_mod.OutputCollector.remove_uploaded(folder, collected)
    assert sorted(p.name for p in folder.iterdir()) == ["rewritten.txt"]


def test_the_replica_folder_itself_being_a_link_is_reported(
    files: memory.InMemoryFiles, tmp_path: Path
) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "secret.txt").write_text("not an output")
    (tmp_path / "svc").mkdir()
    folder = tmp_path / "svc" / "0"
    folder.symlink_to(target, target_is_directory=True)

    collected = collect(files, folder)

    assert collected.file_ids == ()
    assert collected.skipped == ((".", "the output folder is a symbolic link (not followed)"),)
    collector_mod.OutputCollector.remove_uploaded(folder, collected)
    assert (target / "secret.txt").exists()


def test_files_beyond_the_cap_are_reported_not_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collector_mod, "MAX_FILES", 3)
    folder = tmp_path / "svc" / "0"
    folder.mkdir(parents=True)
    for i in range(5):
        (folder / f"{i}.csv").write_text(str(i))

    found = collector_mod.scan_folder(folder)

    assert [f.relpath for f in found.files] == ["0.csv", "1.csv", "2.csv"]
    assert dict(found.skipped) == dict.fromkeys(("3.csv", "4.csv"), "more than 3 output files")


def test_a_huge_sparse_file_is_reported_without_being_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "svc" / "0"
    folder.mkdir(parents=True)
    (folder / "kpi.json").write_text("{}")
    with (folder / "huge.bin").open("wb") as handle:
        handle.truncate(1 << 40)  # 1 TiB of holes: hours to hash
    read: list[int] = []
    real_read = os.read

    def counting_read(fd: int, n: int) -> bytes:
        data = real_read(fd, n)
        read.append(len(data))
        return data

    monkeypatch.setattr(os, "read", counting_read)  # the collector reads through os.read

    found = collector_mod.scan_folder(folder, max_file_bytes=1024)

    assert [f.relpath for f in found.files] == ["kpi.json"]
    assert dict(found.skipped) == {"huge.bin": "larger than 1024 bytes, the most Files stores"}
    assert sum(read) == 2  # only kpi.json's two bytes were read
