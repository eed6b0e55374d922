"""Build one image if its content digest is new; otherwise reuse it in seconds.

The digest covers the context's files, the build args, the ids of the local
base images and any generated inputs (see ``_context.build_digest``). It is
stored as a label on the image and names its OCI archive under
``<cache>/images/``; when both the labelled image and the archive exist the
build is skipped. The archive is what ``ctr -n k8s.io images import`` and
``podman load`` read.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tools.images import _context
from tools.images._catalogue import ImageSpec
from tools.images._engine import Engine

DIGEST_LABEL = "org.dtpoc.build-digest"


@dataclass(frozen=True)
class Built:
    """The outcome for one image."""

    spec: ImageSpec
    image_id: str
    size: int
    digest: str
    archive: Path
    seconds: float
    cached: bool


def say(message: str) -> None:
    print(f"images: {message}", file=sys.stderr, flush=True)


def archive_path(cache: Path, name: str, digest: str) -> Path:
    return cache / "images" / f"{name}-{digest[:12]}.oci.tar"


def _drop_old_archives(cache: Path, name: str, keep: Path) -> None:
    for old in (cache / "images").glob(f"{name}-*.oci.tar"):
        if old != keep:
            old.unlink(missing_ok=True)


def ensure(
    spec: ImageSpec, *, engine: Engine, repo: Path, cache: Path, done: dict[str, Built]
) -> Built:
    """The image of ``spec``, built only when no image carries its digest."""
    start = time.monotonic()
    files = _context.context_files(repo, Path(spec.context))
    if spec.dockerfile not in files:
        raise RuntimeError(f"{spec.context}/{spec.dockerfile} is not a file git knows")
    build_args = {
        **spec.args,
        **{arg: done[base].spec.tags[0] for arg, base in spec.bases.items()},
    }
    digest = _context.build_digest(
        name=spec.name,
        engine=engine.kind,
        files=_context.tree_entries(repo / spec.context, files),
        build_args=build_args,
        bases={arg: done[base].image_id for arg, base in spec.bases.items()},
        extra=spec.inputs(),
    )
    archive = archive_path(cache, spec.name, digest)
    info = engine.inspect(spec.tags[0])
    if info is not None and info.labels.get(DIGEST_LABEL) == digest and archive.exists():
        for tag in spec.tags[1:]:
            other = engine.inspect(tag)
            if other is None or other.id != info.id:
                engine.tag(spec.tags[0], [tag])
        return Built(spec, info.id, info.size, digest, archive, time.monotonic() - start, True)
    say(f"building {spec.name}: {spec.summary} [first build {spec.first_build}]")
    staged = cache / "images" / "work" / spec.name
    _context.stage(source=repo / spec.context, files=files, dest=staged)
    spec.prepare(staged)
    engine.build(
        dockerfile=staged / spec.dockerfile,
        context=staged,
        tags=spec.tags,
        build_args=build_args,
        labels={DIGEST_LABEL: digest},
    )
    built = engine.inspect(spec.tags[0])
    if built is None:
        raise RuntimeError(f"{spec.tags[0]} is not in the store after its build")
    say(f"exporting {spec.tags[0]} -> {archive}")
    engine.save(spec.tags[0], archive)
    _drop_old_archives(cache, spec.name, archive)
    _context.stage(source=staged, files=[], dest=staged)  # generated files are large
    seconds = time.monotonic() - start
    say(f"built {spec.name} in {seconds:.0f}s")
    return Built(spec, built.id, built.size, digest, archive, seconds, False)


def table(results: list[Built]) -> str:
    """Name, primary tag, size, digest and time of each image, aligned."""
    rows = [("image", "tag", "size", "digest", "time")]
    for r in results:
        state = "cached" if r.cached else f"built {r.seconds:.0f}s"
        rows.append((r.spec.name, r.spec.tags[0], f"{r.size / 1e6:.0f} MB", r.digest[:12], state))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
