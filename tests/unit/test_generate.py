"""``make generate`` replaces only what changed: ``make check`` regenerates the API package
to compare it with git, and tests importing it at that moment must not see files vanish."""

from __future__ import annotations

from pathlib import Path

from tools import generate


def _tree(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_only_changed_files_are_rewritten_and_stale_ones_removed(tmp_path: Path) -> None:
    staged, target = tmp_path / "staged", tmp_path / "target"
    _tree(staged, {"same_pb2.py": b"same", "v1/changed_pb2.py": b"new", "v1/added.pyi": b"x"})
    _tree(target, {"same_pb2.py": b"same", "v1/changed_pb2.py": b"old", "gone_pb2.py": b"y"})
    _tree(target, {"__pycache__/same.cpython-311.pyc": b"cache"})
    untouched = (target / "same_pb2.py").stat()

    assert generate.sync_tree(staged, target) == 3

    assert (target / "same_pb2.py").stat().st_ino == untouched.st_ino, "unchanged: not rewritten"
    assert (target / "same_pb2.py").stat().st_mtime_ns == untouched.st_mtime_ns
    assert (target / "v1/changed_pb2.py").read_bytes() == b"new"
    assert (target / "v1/added.pyi").read_bytes() == b"x"
    assert not (target / "gone_pb2.py").exists()
    assert (target / "__pycache__/same.cpython-311.pyc").exists(), "caches are not ours"
    assert not list(target.rglob("*.partial")), "no partial file left behind"
    assert generate.sync_tree(staged, target) == 0, "a second run changes nothing"
