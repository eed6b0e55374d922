"""Properties of the collector's walk over any tree a replica can leave.

Hypothesis builds output folders of regular files, folders, links (to
inside, to outside, dangling, loops) and FIFOs. Whatever the tree, the scan
never raises, finds exactly the regular files not reached through a link,
reports every other entry, and removal deletes exactly what was found,
never anything outside the folder.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dtpoc_operator import collector

NAMES = st.text(alphabet="abcdefgh-_.", min_size=1, max_size=8).filter(
    lambda n: n not in (".", "..")
)


@dataclass(frozen=True)
class Entry:
    kind: str  # file, dir, link_out, link_in, link_dangling, link_loop, fifo
    name: str
    children: tuple[Entry, ...] = ()


def entries(depth: int) -> st.SearchStrategy[tuple[Entry, ...]]:
    leaf = st.builds(
        Entry,
        kind=st.sampled_from(["file", "link_out", "link_in", "link_dangling", "link_loop", "fifo"]),
        name=NAMES,
    )
    if depth == 0:
        node = leaf
    else:
        node = st.one_of(
            leaf, st.builds(Entry, kind=st.just("dir"), name=NAMES, children=entries(depth - 1))
        )
    return st.lists(node, max_size=5, unique_by=lambda e: e.name).map(tuple)


def build(folder: Path, tree: tuple[Entry, ...], *, outside: Path) -> tuple[set[str], set[str]]:
    """Create ``tree`` under ``folder``; answer the relpaths of the regular files
    and of everything else that is not a folder (links, FIFOs)."""
    files: set[str] = set()
    others: set[str] = set()

    def make(parent: Path, items: tuple[Entry, ...], prefix: str) -> None:
        for item in items:
            path = parent / item.name
            relpath = prefix + item.name
            (files if item.kind == "file" else others if item.kind != "dir" else set()).add(relpath)
            if item.kind == "file":
                path.write_text(f"content of {relpath}")
            elif item.kind == "dir":
                path.mkdir()
                make(path, item.children, f"{relpath}/")
            elif item.kind == "link_out":
                path.symlink_to(outside, target_is_directory=True)
            elif item.kind == "link_in":
                path.symlink_to(folder, target_is_directory=True)
            elif item.kind == "link_dangling":
                path.symlink_to(folder / "does-not-exist")
            elif item.kind == "link_loop":
                path.symlink_to(path)
            else:
                os.mkfifo(path)

    make(folder, tree, "")
    return files, others


def remaining(folder: Path) -> set[str]:
    if not folder.exists():
        return set()
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=entries(depth=3))
def test_scan_and_removal_stay_inside_and_account_for_everything(
    tree: tuple[Entry, ...],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        outside = base / "operator"
        outside.mkdir()
        (outside / "token").write_text("secret")
        folder = base / "svc" / "0"
        folder.mkdir(parents=True)
        expected, others = build(folder, tree, outside=outside)

        found = collector.scan_folder(folder)

        assert {f.relpath for f in found.files} == expected
        assert all("secret" not in f.path.read_text() for f in found.files)
        assert {relpath for relpath, _why in found.skipped} == others
        done = collector.Collected(
            file_ids=(), uploaded=tuple(f.path for f in found.files), skipped=(), bytes=0
        )
        collector.OutputCollector.remove_uploaded(folder, done)
        assert (outside / "token").read_text() == "secret"
        left = remaining(folder)
        assert not left & expected, "every found file was removed"
        assert all(not (folder / p).is_symlink() for p in left), "links go (never their targets)"
