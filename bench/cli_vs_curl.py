"""The ``dtpoc`` command against curl: the same 200 MiB upload and download, one gateway.

Starts FerretDB (:mod:`dtpoc_local`) and two ``dtpoc-files`` + ``dtpoc-gateway`` pairs
(bearer auth on, as deployed), then times whole processes, in turn, A B A B:

- upload: ``dtpoc files upload FILE`` vs ``curl -F file=@FILE .../files/upload``;
- download: ``dtpoc files get ID -O PATH`` vs ``curl -o PATH .../files/ID``.

Each upload sends content of its own (the first bytes carry a counter, so
deduplication never shortcuts one); the sides alternate, so a bucket that
grows costs both alike. Both downloads fetch the same file. Every transfer
is checked by SHA-256. Prints each side's median time and MiB/s and the
median of the pairwise speed ratios dtpoc/curl; the target is >= 0.8. The
command's start-up (a third of a second of CPU, mostly imports) is part of
what a user waits for, so it is counted; as for a user, Python's bytecode
cache is warm (one untimed small upload and download first, with
``PYTHONDONTWRITEBYTECODE`` dropped from the command's environment), else
every run would compile the HTTP stack again (another second of CPU).

Run: ``uv run python -m bench.cli_vs_curl [--mib 200] [--pairs 3]``.
The machine is shared; quote the ratio, not the times.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from dtpoc_client import Client
from dtpoc_common.vocabulary import API_PREFIX as PREFIX
from dtpoc_local import ferretdb
from dtpoc_local.servers import files as files_platform
from dtpoc_local.servers import gateway as gateway_platform

MIB = 1024 * 1024
TARGET = 0.8
RUN_TIMEOUT = 1800.0
DTPOC = Path(sys.executable).parent / "dtpoc"


def make_file(path: Path, size: int) -> None:
    block = os.urandom(MIB)
    with path.open("wb") as out:
        for _ in range(size // MIB):
            out.write(block)
        out.write(block[: size % MIB])


def stamp(path: Path, counter: int) -> str:
    """Make the file's content unique (its first 16 bytes); answer its SHA-256."""
    with path.open("r+b") as f:
        f.write(counter.to_bytes(8, "big") + secrets.token_bytes(8))
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(MIB):
            digest.update(block)
    return digest.hexdigest()


CPU: dict[str, list[float]] = {}
"""CPU seconds (user + system) of each timed process, by its program name."""


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Wall seconds of a whole process and its stdout; its CPU time goes into CPU."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    out, err = proc.communicate(timeout=RUN_TIMEOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {err.decode().strip()[:400]}")
    CPU.setdefault(Path(argv[0]).name, []).append(usage.ru_utime + usage.ru_stime)
    return elapsed, out.decode()


class Bench:
    def __init__(self, base_url: str, token: str, workdir: Path) -> None:
        self.base = base_url
        self.token = token
        self.workdir = workdir
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("DTPOC_") and k != "PYTHONDONTWRITEBYTECODE"
        }
        self.env.update(
            DTPOC_SERVER=base_url, DTPOC_TOKEN=token, DTPOC_CONFIG=str(workdir / "cfg.yaml")
        )
        self.client = Client(base_url, token)

    def curl(self, *args: str) -> list[str]:
        return ["curl", "-sS", "--fail-with-body", "-H", f"Authorization: Bearer {self.token}",
                "-H", "Expect:", *args]  # fmt: skip

    def upload_dtpoc(self, path: Path) -> tuple[float, str]:
        seconds, out = timed([str(DTPOC), "files", "upload", str(path), "-o", "json"], self.env)
        return seconds, str(json.loads(out)["file_id"])

    def upload_curl(self, path: Path) -> tuple[float, str]:
        argv = self.curl("-F", f"file=@{path}", f"{self.base}{PREFIX}/files/upload")
        seconds, out = timed(argv, self.env)
        return seconds, str(json.loads(out)["file_id"])

    def download_dtpoc(self, file_id: str, dest: Path) -> float:
        return timed([str(DTPOC), "files", "get", file_id, "-O", str(dest)], self.env)[0]

    def download_curl(self, file_id: str, dest: Path) -> float:
        return timed(self.curl("-o", str(dest), f"{self.base}{PREFIX}/files/{file_id}"), self.env)[
            0
        ]

    def warm_up(self) -> None:
        """One small upload and download, untimed: the bytecode cache a user has."""
        small = self.workdir / "warm.bin"
        small.write_bytes(secrets.token_bytes(4096))
        _, file_id = self.upload_dtpoc(small)
        self.download_dtpoc(file_id, self.workdir / "warm.copy")

    def stored_sha256(self, file_id: str) -> str:
        return self.client.files.info(file_id).sha256


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(MIB):
            digest.update(block)
    return digest.hexdigest()


def run_pairs(
    pairs: int, one: Callable[[int, str], float], name: str
) -> tuple[list[float], list[float]]:
    times: dict[str, list[float]] = {"dtpoc": [], "curl": []}
    counter = 0
    for pair in range(pairs):
        for side in ("dtpoc", "curl") if pair % 2 == 0 else ("curl", "dtpoc"):
            counter += 1
            times[side].append(one(counter, side))
            print(f"  {name} {side:5} {times[side][-1]:7.2f} s", flush=True)
    return times["dtpoc"], times["curl"]


def report(name: str, size: int, dtpoc: list[float], curl: list[float]) -> float:
    ratios = [c / d for d, c in zip(dtpoc, curl, strict=True)]
    ratio = statistics.median(ratios)
    mib = size / MIB
    print(
        f"{name:8} dtpoc median {statistics.median(dtpoc):6.2f} s"
        f" ({mib / statistics.median(dtpoc):6.1f} MiB/s)   curl median"
        f" {statistics.median(curl):6.2f} s ({mib / statistics.median(curl):6.1f} MiB/s)"
        f"   speed dtpoc/curl {ratio:.2f} (pairs {', '.join(f'{r:.2f}' for r in ratios)})"
        f"  {'ok' if ratio >= TARGET else 'BELOW'} target {TARGET}"
    )
    return ratio


def measure(uploads: Bench, downloads: Bench, *, size: int, pairs: int) -> bool:
    """Uploads to one Files database; downloads of one file from a database of its own
    (FerretDB reads a file by scanning its bucket, so the uploads' files would slow them)."""
    source = uploads.workdir / "big.bin"
    make_file(source, size)
    uploads.warm_up()
    CPU.clear()

    def upload(counter: int, side: str) -> float:
        expected = stamp(source, counter)
        seconds, file_id = (uploads.upload_dtpoc if side == "dtpoc" else uploads.upload_curl)(
            source
        )
        assert uploads.stored_sha256(file_id) == expected, "stored content differs"
        return seconds

    up = run_pairs(pairs, upload, "upload")
    expected = stamp(source, 0)
    _, kept = downloads.upload_curl(source)
    dest = downloads.workdir / "copy.bin"

    def download(counter: int, side: str) -> float:
        dest.unlink(missing_ok=True)
        get = downloads.download_dtpoc if side == "dtpoc" else downloads.download_curl
        seconds = get(kept, dest)
        assert sha256_of(dest) == expected, "downloaded content differs"
        return seconds

    down = run_pairs(pairs, download, "download")
    print(f"\n{size // MIB} MiB through the gateway, {pairs} pairs, whole processes:")
    ratios = [report("upload", size, *up), report("download", size, *down)]
    for program, seconds in sorted(CPU.items()):
        print(
            f"client CPU per transfer, {program}: median {statistics.median(seconds):.2f} s"
            f" (user + system; start-up included)"
        )
    return all(r >= TARGET for r in ratios)


def start_side(stack: contextlib.ExitStack, *, mongodb_uri: str, workdir: Path, size: int) -> Bench:
    """A Files service on a database of its own and a gateway in front (auth on)."""
    workdir.mkdir(parents=True)
    files = files_platform.start_files_server(
        mongodb_uri=mongodb_uri,
        workdir=workdir,
        env_overrides={"DTPOC_FILES_MAX_UPLOAD_BYTES": str(size + MIB)},
    )
    stack.callback(files.stop)
    token = secrets.token_urlsafe(24)
    gateway = gateway_platform.start_gateway(
        workdir=workdir,
        files_address=files.address,
        token_hashes=[hashlib.sha256(token.encode()).hexdigest()],
        env={"DTPOC_GATEWAY_MAX_UPLOAD_BYTES": str(size + 2 * MIB)},
    )
    stack.callback(gateway.stop)
    print(f"gateway {gateway.base_url} -> files {files.address}")
    bench = Bench(gateway.base_url, token, workdir)
    stack.callback(bench.client.close)
    return bench


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=200, help="file size in MiB")
    parser.add_argument("--pairs", type=int, default=3, help="timed runs of each side")
    args = parser.parse_args(argv)
    if shutil.which("curl") is None or not DTPOC.exists():
        print("needs curl and the dtpoc command (uv sync)", file=sys.stderr)
        return 2
    size = args.mib * MIB
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp, contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        database = ferretdb.start_ferretdb(workdir=workdir / "ferretdb")
        stack.callback(database.stop)
        print(f"FerretDB {database.uri}")
        uploads = start_side(stack, mongodb_uri=database.uri, workdir=workdir / "up", size=size)
        downloads = start_side(stack, mongodb_uri=database.uri, workdir=workdir / "down", size=size)
        measure(uploads, downloads, size=size, pairs=args.pairs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
