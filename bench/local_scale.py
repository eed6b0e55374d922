"""Many services at once on the one-machine platform (issue 18).

For each count N: a fresh data directory, the local stack started as a user
starts it (``make run``'s ``--no-demo``, as a subprocess: its own FerretDB on
SQLite, Files, Orchestrator, Operator, Gateway), then N command-form services
of 2 trivial replicas (each writes one small JSON file and exits) launched at
once through REST, and every accepted service's status polled every 2 s as a
console would, until its phase is final or the timeout passes. Like a console,
the client waits out a 503 that carries ``Retry-After`` and tries again (until
the timeout); those are counted apart ("retried 503"), not as failures. Prints:

- launches accepted per second (2xx answers / time until the last one);
- replicas finished per second (from the first launch to the last final phase);
- p50 / p99 latency of the status reads;
- database CPU seconds per replica (the FerretDB process's utime + stime
  from ``/proc``, over the launches and the polling), and every stack
  process's (the operator with its supervisors and replicas) and this
  client's, so that what the machine's two cores spend per replica shows;
- non-2xx answers (launch and status), by code;
- database commands per replica ("work" leaves out the orchestrator's reads,
  which are the status reads' cost and grow with the run's duration;
  "cmds/status" is those reads per status read), counted by pymongo's command monitoring in
  every service process (``bench/mongo_counting``: a ``sitecustomize`` the
  bench puts on the stack's ``PYTHONPATH``; the services are not changed, so
  any version is counted the same way), with the busiest commands.

``--baseline REF`` runs the same counts (or ``--baseline-counts``) first
against the stack of git revision REF (a worktree under the system temp
folder, its own ``uv sync``) and prints both side by side with ratios
new/baseline. ``--new REF`` takes the new side from a worktree too instead of
this checkout (so half-done edits in the tree cannot touch the figures). The
machine is shared: run both in one invocation so they see the same load.

Run: ``uv run python -m bench.local_scale --counts 50,100,200 [--baseline HEAD~3]
[--timeout 600] [--poll 2]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from dtpoc_common.vocabulary import API_PREFIX as PREFIX

REPO = Path(__file__).resolve().parents[1]
COUNTING = Path(__file__).resolve().parent / "mongo_counting"
COUNTS_SETTING = "DTPOC_BENCH_MONGO_COUNTS_DIR"
FINAL_PHASES = ("succeeded", "failed", "terminated")
#: The orchestrator's process (argv), whose reads are the status reads' cost: "work
#: cmds/rep" leaves them out, since the console's polling grows with how long the run
#: takes, not with the work done ("cmds/status" is their count per status read).
ORCHESTRATOR = "dtpoc_orchestrator"
REPS = 2
START_TIMEOUT = 600.0
#: Every workspace member: the stack's package may not be a dependency of the root yet.
UV_RUN = ("uv", "run", "--all-packages", "--project")
REPLICA = (
    "import json, os, pathlib; "
    "pathlib.Path(os.environ['OUTPUT_FOLDER'], 'result.json').write_text("
    "json.dumps({'replica': os.environ['REPLICA_INDEX'], 'run': os.environ['RUN_ID']}))"
)


@dataclass
class Result:
    """What one count measured."""

    services: int
    accepted: int = 0
    launch_seconds: float = 0.0
    finished_replicas: int = 0
    done_services: int = 0
    all_done_seconds: float | None = None
    elapsed: float = 0.0
    status_latencies: list[float] = field(default_factory=list)
    non_2xx: Counter[str] = field(default_factory=Counter)
    #: 503 + Retry-After answers the client waited out and retried (not failures).
    retried: Counter[str] = field(default_factory=Counter)
    db_cpu_seconds: float | None = None
    #: CPU seconds of each stack process over the workload (see :func:`components_cpu`).
    cpu: dict[str, float] = field(default_factory=dict)
    commands: Counter[str] = field(default_factory=Counter)
    #: The orchestrator's reads (``find``): what status reads (and gets) cost.
    orchestrator_reads: int = 0
    last_accepted: float | None = None
    note: str = ""

    @property
    def replicas(self) -> int:
        return max(self.finished_replicas, 1)

    def command_total(self) -> int | None:
        return sum(self.commands.values()) if self.commands else None


# --- the stack --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stack_argv(tree: Path) -> list[str]:
    """How a user starts the stack in ``tree``: ``tools/run_local.py``, or its successor."""
    script = tree / "tools" / "run_local.py"
    if script.exists():
        return [*UV_RUN, str(tree), "python", str(script), "--no-demo"]
    return [*UV_RUN, str(tree), "python", "-m", "dtpoc_local.up", "--no-demo"]


@contextlib.contextmanager
def local_stack(tree: Path, data_dir: Path, *, port: int, counts_dir: Path) -> Iterator[int]:
    """Start the stack of ``tree``; yield its root pid once the gateway answers."""
    env = {
        **os.environ,
        "DTPOC_DATA_DIR": str(data_dir),
        "DTPOC_OPERATOR_LOCAL_CONTAINER_ENGINE": "none",
        COUNTS_SETTING: str(counts_dir),
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(COUNTING), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    env.pop("DTPOC_MONGODB_URI", None)
    log = (data_dir / "stack.out").open("wb")
    process = subprocess.Popen(
        [*stack_argv(tree), "--port", str(port)],
        cwd=tree,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_serving(port, process, data_dir / "stack.out")
        yield process.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def wait_serving(port: int, process: subprocess.Popen[bytes], out: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = out.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the stack exited ({process.returncode}):\n{tail}")
        if "serving; press Ctrl-C" in out.read_text(errors="replace"):
            return
        time.sleep(0.5)
    raise RuntimeError(f"the stack did not serve within {START_TIMEOUT:.0f}s on port {port}")


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            with contextlib.suppress(OSError):
                children = [int(c) for c in (task / "children").read_text().split()]
                found += children
                todo += children
    return found


def ferretdb_pid(root: int) -> int:
    for pid in descendants(root):
        with contextlib.suppress(OSError):
            argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
            if b"ferretdb" in Path(argv0.decode()).name.encode():
                return pid
    raise RuntimeError("no FerretDB process under the stack (DTPOC_MONGODB_URI set?)")


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """utime + stime of ``pid`` (with ``children``: and of its children it waited for)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def component(pid: int) -> str:
    """A stack process's short name: ``ferretdb`` or its Python module's last part."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    words = [w.decode(errors="replace") for w in argv if w]
    if words and "ferretdb" in Path(words[0]).name:
        return "ferretdb"
    if "-m" in words[:-1]:
        return words[words.index("-m") + 1].removeprefix("dtpoc_")
    return Path(words[0]).name if words else "?"


def components_cpu(root: int) -> dict[str, float]:
    """CPU seconds of each process ``root`` started, and apart (``<name> children``)
    of every process under it (the operator's supervisors and replicas, once waited
    for)."""
    total: dict[str, float] = {}
    for child in (int(c) for c in _children(root)):
        with contextlib.suppress(OSError, ValueError):
            name = component(child)
            total[name] = total.get(name, 0.0) + cpu_seconds(child)
            below = cpu_seconds(child, children=True) - cpu_seconds(child)
            below += sum(cpu_seconds(p, children=True) for p in descendants(child))
            if below:
                total[f"{name} children"] = total.get(f"{name} children", 0.0) + below
    return total


def cpu_spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) > 0}


def _children(pid: int) -> list[str]:
    found: list[str] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += (task / "children").read_text().split()
    return found


def read_counts(folder: Path, *, process: str = "") -> Counter[str]:
    """Commands counted so far, of every process or of those whose argv names ``process``."""
    total: Counter[str] = Counter()
    for path in folder.glob("*.json"):
        with contextlib.suppress(ValueError, OSError):
            body = json.loads(path.read_text())
            if process in " ".join(body.get("argv") or ()):
                total.update(body["counts"])
    return total


def reads(counts: Counter[str]) -> int:
    return sum(v for k, v in counts.items() if k.startswith("find "))


# --- the workload -----------------------------------------------------------------------------


def launch_body(index: int) -> dict[str, Any]:
    return {
        "image": "bench-local-scale",
        "version": "local",
        "description": f"bench.local_scale service {index}",
        "env": {},
        "mount_files": {},
        "ana": {"job_type": "ondemand", "reps": REPS},
        "command": [sys.executable, "-c", REPLICA],
    }


def retry_after(answer: httpx.Response) -> float | None:
    """Seconds a 503 asks the client to wait (``Retry-After``), None for another answer."""
    value = answer.headers.get("retry-after")
    if answer.status_code != 503 or value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


async def call(
    client: httpx.AsyncClient,
    what: str,
    request: Any,
    *,
    deadline: float,
    result: Result,
) -> httpx.Response | None:
    """One request as a console makes it: a 503 with ``Retry-After`` is waited out and
    retried (counted in ``retried``) until the deadline; anything else non-2xx counts."""
    while True:
        try:
            answer: httpx.Response = await request()
        except httpx.HTTPError as exc:
            result.non_2xx[f"{what} {type(exc).__name__}"] += 1
            return None
        wait = retry_after(answer)
        if wait is not None and time.monotonic() + wait < deadline:
            result.retried[f"{what} 503"] += 1
            await asyncio.sleep(wait)
            continue
        if not answer.is_success:
            suffix = " (Retry-After)" if wait is not None else ""
            result.non_2xx[f"{what} {answer.status_code}{suffix}"] += 1
            return None
        return answer


async def launch_and_follow(
    client: httpx.AsyncClient, index: int, *, poll: float, deadline: float, result: Result
) -> float | None:
    """Launch service ``index``, then follow it; answer when it was final (monotonic)."""
    answer = await call(
        client,
        "launch",
        lambda: client.post("/service/launch", json=launch_body(index)),
        deadline=deadline,
        result=result,
    )
    if answer is None:
        return None
    result.accepted += 1
    result.last_accepted = time.monotonic()
    return await follow(
        client, str(answer.json()["id"]), poll=poll, deadline=deadline, result=result
    )


async def follow(
    client: httpx.AsyncClient, service_id: str, *, poll: float, deadline: float, result: Result
) -> float | None:
    """Poll one service's status; answer when it was final (monotonic), None on timeout."""
    while time.monotonic() < deadline:
        began = time.monotonic()
        answer = await call(
            client,
            "status",
            lambda: client.get(f"/service/{service_id}/status"),
            deadline=deadline,
            result=result,
        )
        result.status_latencies.append(time.monotonic() - began)
        if answer is not None:
            body = answer.json()
            status = body.get("status") if isinstance(body.get("status"), dict) else body
            if status.get("phase") in FINAL_PHASES:
                result.finished_replicas += int(status.get("succeeded_runs", 0)) + int(
                    status.get("failed_runs", 0)
                )
                result.done_services += 1
                return time.monotonic()
        await asyncio.sleep(max(poll - (time.monotonic() - began), 0.0))
    return None


async def workload(port: int, count: int, *, poll: float, budget: float, result: Result) -> None:
    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=count + 10)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}{PREFIX}", timeout=120.0, limits=limits
    ) as client:
        started = time.monotonic()
        deadline = started + budget
        ends = await asyncio.gather(
            *(
                launch_and_follow(client, i, poll=poll, deadline=deadline, result=result)
                for i in range(count)
            )
        )
        result.launch_seconds = (result.last_accepted or started) - started
        finished = [e for e in ends if e is not None]
        result.elapsed = (max(finished) if finished else time.monotonic()) - started
        if len(finished) == count:
            result.all_done_seconds = result.elapsed


def measure(tree: Path, count: int, *, poll: float, timeout: float) -> Result:
    result = Result(services=count)
    with tempfile.TemporaryDirectory(prefix=f"bench-scale-{count}-") as tmp:
        data_dir = Path(tmp) / "data"
        counts_dir = Path(tmp) / "counts"
        data_dir.mkdir()
        port = free_port()
        try:
            with local_stack(tree, data_dir, port=port, counts_dir=counts_dir) as root:
                db_pid = ferretdb_pid(root)
                before_cpu = cpu_seconds(db_pid)
                up = parent(db_pid)  # the stack's launcher: every service is its child
                before_components = components_cpu(up)
                before_counts = read_counts(counts_dir)
                before_reads = reads(read_counts(counts_dir, process=ORCHESTRATOR))
                client_before = time.process_time()
                asyncio.run(workload(port, count, poll=poll, budget=timeout, result=result))
                client_cpu = time.process_time() - client_before
                result.db_cpu_seconds = cpu_seconds(db_pid) - before_cpu
                result.cpu = cpu_spent(before_components, components_cpu(up))
                result.cpu["bench client"] = client_cpu
                time.sleep(1.5)  # one more flush of the counters
                result.commands = read_counts(counts_dir) - before_counts
                after_reads = reads(read_counts(counts_dir, process=ORCHESTRATOR))
                result.orchestrator_reads = after_reads - before_reads
        except RuntimeError as exc:
            result.note = str(exc)[:2000]
    return result


# --- the report -------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def figures(r: Result) -> dict[str, float | None]:
    total = r.command_total()
    return {
        "accepted/s": r.accepted / r.launch_seconds if r.launch_seconds else None,
        "replicas/s": r.finished_replicas / r.elapsed if r.elapsed else None,
        "all done s": r.all_done_seconds,
        "p50 ms": _ms(percentile(r.status_latencies, 50)),
        "p99 ms": _ms(percentile(r.status_latencies, 99)),
        "db cpu s/rep": r.db_cpu_seconds / r.replicas if r.db_cpu_seconds is not None else None,
        "stack cpu s/rep": sum(r.cpu.values()) / r.replicas if r.cpu else None,
        "cmds/rep": total / r.replicas if total is not None else None,
        "work cmds/rep": (
            (total - r.orchestrator_reads) / r.replicas if total is not None else None
        ),
        "status reads": float(len(r.status_latencies)),
        "cmds/status": (
            r.orchestrator_reads / len(r.status_latencies) if r.status_latencies else None
        ),
        "retried 503": float(sum(r.retried.values())),
        "non-2xx": float(sum(r.non_2xx.values())),
    }


def _ms(value: float | None) -> float | None:
    return value * 1000 if value is not None else None


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.2f}"


def describe(label: str, r: Result) -> str:
    done = f"{r.done_services}/{r.accepted} services final, {r.finished_replicas} replicas"
    lines = [f"{label} N={r.services}: {r.accepted} accepted; {done}; {r.elapsed:.0f}s"]
    if r.non_2xx:
        lines.append("  non-2xx: " + ", ".join(f"{k}: {v}" for k, v in r.non_2xx.most_common()))
    if r.retried:
        waited = ", ".join(f"{k}: {v}" for k, v in r.retried.most_common())
        lines.append(f"  503 + Retry-After, waited out and retried: {waited}")
    if r.cpu:
        spent = sorted(r.cpu.items(), key=lambda kv: -kv[1])
        per = ", ".join(f"{k} {v / r.replicas:.3f}" for k, v in spent)
        total = sum(r.cpu.values()) / r.replicas
        lines.append(f"  CPU seconds per replica: {per} (total {total:.3f})")
    if r.commands:
        busiest = ", ".join(f"{k} {v / r.replicas:.1f}" for k, v in r.commands.most_common(8))
        lines.append(f"  commands per replica, busiest: {busiest}")
    if r.note:
        lines.append(f"  note: {r.note}")
    return "\n".join(lines)


def table(new: dict[int, Result], base: dict[int, Result]) -> str:
    names = list(figures(Result(services=0)))
    header = ["N", "run", *names]
    rows = [header]
    for count, r in new.items():
        ours = figures(r)
        if count in base:
            theirs = figures(base[count])
            rows.append([str(count), "baseline", *(fmt(theirs[n]) for n in names)])
            rows.append([str(count), "new", *(fmt(ours[n]) for n in names)])
            rows.append([str(count), "new/base", *(_ratio(ours[n], theirs[n]) for n in names)])
        else:
            rows.append([str(count), "new", *(fmt(ours[n]) for n in names)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    out = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def _ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or theirs == 0:
        return "-"
    return f"{ours / theirs:.2f}x"


@contextlib.contextmanager
def baseline_tree(ref: str) -> Iterator[Path]:
    """A worktree of ``ref`` with its own environment, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="bench-scale-base-"))
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", str(folder), ref],
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(["uv", "sync", "--all-packages", "--quiet"], cwd=folder, check=True)
        yield folder
    finally:
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "remove", "--force", str(folder)],
            check=False,
            capture_output=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--counts", default="50,100,200", help="service counts, comma-separated")
    parser.add_argument("--poll", type=float, default=2.0, help="seconds between status reads")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per count")
    parser.add_argument("--baseline", default=None, help="git revision to compare against")
    parser.add_argument("--baseline-counts", default=None, help="counts for the baseline")
    parser.add_argument("--new", default=None, help="git revision of the new side (else here)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.counts.split(",") if c.strip()]
    base_counts = (
        {int(c) for c in args.baseline_counts.split(",") if c.strip()}
        if args.baseline_counts
        else set(counts)
    )
    print(f"load before: {os.getloadavg()[0]:.1f} (1 min), {os.cpu_count()} cores", flush=True)
    base: dict[int, Result] = {}
    new: dict[int, Result] = {}
    with contextlib.ExitStack() as stack:
        base_dir = stack.enter_context(baseline_tree(args.baseline)) if args.baseline else None
        new_dir = stack.enter_context(baseline_tree(args.new)) if args.new else REPO
        for count in counts:
            if base_dir is not None and count in base_counts:
                base[count] = measure(base_dir, count, poll=args.poll, timeout=args.timeout)
                print(describe(f"baseline {args.baseline}", base[count]), flush=True)
            new[count] = measure(new_dir, count, poll=args.poll, timeout=args.timeout)
            print(describe(f"new {args.new or 'checkout'}", new[count]), flush=True)
    print(f"load after: {os.getloadavg()[0]:.1f} (1 min)")
    if args.json:
        rows = {"new": new, "baseline": base}
        Path(args.json).write_text(
            json.dumps(
                {side: {n: figures(r) for n, r in res.items()} for side, res in rows.items()},
                indent=1,
            )
        )
    print()
    print(table(new, base))
    return 0


if __name__ == "__main__":
    sys.exit(main())
