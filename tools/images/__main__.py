"""Build the project's container images here: ``python -m tools.images [NAME ...]``.

Run from the repository root (``make images``, or ``tools/images/build``).
NAME is any of: base uv dtpoc histolab ferretdb mosquitto telegraf influxdb
node node-red mongo-express (default: all); the images a name is built on are
built first. Builds with Docker when ``docker info`` answers, else buildah
(``--builder`` or DTPOC_IMAGE_BUILDER picks one). Cached by content: an image
whose inputs did not change is not rebuilt, so a second run takes seconds.
Each image is also exported as an OCI archive under ``${DTPOC_CACHE_DIR:-~/.cache/dtpoc}/images/``.

Options:
  --ref         print the primary reference of each NAME on stdout (one a line)
  --archive     print the OCI archive path of each NAME on stdout
  --list        print the image names and what they are, build nothing
  --chart-values  print Helm values pointing the chart's data stack at the local
                images (helm install ... -f <(tools/images/build --chart-values))
  --builder B   docker | buildah

Progress and the final size table go to stderr; stdout carries only --ref /
--archive answers, so scripts and tests can read them.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import sys
import time
from pathlib import Path

from tools.images import _build, _catalogue, _chart, _engine

REPO = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    override = os.environ.get("DTPOC_CACHE_DIR")
    return Path(override) if override else Path.home() / ".cache" / "dtpoc"


def _with_bases(names: list[str], specs: dict[str, _catalogue.ImageSpec]) -> list[str]:
    wanted: set[str] = set()

    def add(name: str) -> None:
        if name not in specs:
            raise SystemExit(f"images: unknown image {name!r} (known: {' '.join(specs)})")
        wanted.add(name)
        for base in specs[name].bases.values():
            add(base)

    for name in names:
        add(name)
    return [name for name in specs if name in wanted]  # catalogue order: bases first


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tools/images/build",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("names", nargs="*")
    parser.add_argument("--ref", action="store_true")
    parser.add_argument("--archive", action="store_true")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--chart-values", action="store_true")
    parser.add_argument("--builder", choices=("docker", "buildah"))
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = _parse(argv)
    cache = cache_dir()
    specs = _catalogue.catalogue(REPO, cache / "images" / "downloads")
    if args.list:
        for spec in specs.values():
            print(f"{spec.name:10} {spec.tags[0]:58} {spec.summary}")
        return 0
    if args.chart_values:
        print(_chart.local_values(REPO, specs), end="")
        return 0
    try:
        engine = _engine.detect(cache, prefer=args.builder)
    except _engine.EngineUnavailable as exc:
        print(f"images: {exc}", file=sys.stderr)
        return 2
    order = _with_bases(args.names or list(specs), specs)
    (cache / "images").mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with (cache / "images" / ".build.lock").open("w") as lock:
        # One build per cache at a time: `make images` and a test run share the store.
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _build.say("another tools/images build is running; waiting for it...")
            fcntl.flock(lock, fcntl.LOCK_EX)
        done: dict[str, _build.Built] = {}
        for name in order:
            done[name] = _build.ensure(
                specs[name], engine=engine, repo=REPO, cache=cache, done=done
            )
    shown = [done[name] for name in order]
    _build.say(f"{engine.kind}, {time.monotonic() - start:.1f}s in all\n{_build.table(shown)}")
    for name in args.names:
        if args.ref:
            print(specs[name].tags[0])
        if args.archive:
            print(done[name].archive)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except RuntimeError as exc:
        print(f"images: error: {exc}", file=sys.stderr)
        sys.exit(1)
