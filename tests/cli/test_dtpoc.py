"""The ``dtpoc`` command as a researcher runs it, against the real platform.

Each test runs the installed console script in a subprocess (a terminal
where a person would look at a progress bar or a live table) with the server
and token in the environment and a config file of its own.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import tempfile
import time
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from dtpoc_client.cli.main import cli
from tests.client._platform import (
    DTPOC,
    LAUNCH_YAML,
    SAMPLE,
    Platform,
    run_dtpoc,
    run_in_pty,
)

pytestmark = pytest.mark.slow

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain(screen: str) -> str:
    return ANSI.sub("", screen)


def ok(result: object) -> str:
    """stdout of a run that must have exited 0."""
    assert getattr(result, "returncode", None) == 0, (
        f"exit {getattr(result, 'returncode', None)}\nstdout: {getattr(result, 'stdout', '')}"
        f"\nstderr: {getattr(result, 'stderr', '')}"
    )
    return str(getattr(result, "stdout", ""))


def test_upload_launch_watch_output_list_terminate(client_platform: Platform) -> None:
    # upload, in a terminal: a progress bar with bytes, then the file id
    shown = run_in_pty(client_platform, "files", "upload", str(SAMPLE))
    screen = plain(shown.screen)
    assert shown.returncode == 0, screen
    assert "upload input.xlsx" in screen, screen
    assert "━" in screen and "KiB" in screen, f"no progress bar on the terminal:\n{screen}"
    file_id = re.search(r"\b([0-9a-f]{24})\b", screen)
    assert file_id, screen

    # the same upload for a script: the API's JSON, deduplicated
    again = json.loads(ok(run_dtpoc(client_platform, "files", "upload", str(SAMPLE), "-o", "json")))
    assert again["file_id"] == file_id.group(1)
    assert again["message"] == "File already exists"

    # launch from the example's YAML, in the launch body's shape
    launched = json.loads(
        ok(
            run_dtpoc(
                client_platform,
                "service",
                "launch",
                "-f",
                str(LAUNCH_YAML),
                "--mount",
                f"{again['file_id']}=input.xlsx",
                "--env",
                "SIM_HOURS=48",
                "-o",
                "json",
            )
        )
    )
    service_id = launched["id"]
    assert re.fullmatch(r"[0-9a-f]{24}", service_id), launched

    # watch to completion in a terminal: the live per-replica table
    watched = run_in_pty(client_platform, "service", "watch", service_id, "--exit-status")
    screen = plain(watched.screen)
    assert watched.returncode == 0, screen
    assert "REPLICA" in screen and "succeeded" in screen, screen
    assert "2/2 succeeded" in screen, screen

    # each replica's KPIs as JSON, as curl would read them
    for idx in (0, 1):
        kpis = json.loads(
            ok(run_dtpoc(client_platform, "service", "output", service_id, str(idx), "-o", "json"))
        )
        assert kpis["schema"] == "dtpoc.histolab.kpis/v1"
        assert kpis["replica_index"] == idx
        assert kpis["sim_hours"] == 48, "whole numbers stay integers"

    # lists as YAML
    services = yaml.safe_load(ok(run_dtpoc(client_platform, "service", "list", "-o", "yaml")))
    mine = [s for s in services if s["id"] == service_id]
    assert mine and mine[0]["phase"] == "succeeded", services
    listed = yaml.safe_load(
        ok(run_dtpoc(client_platform, "files", "list", "--service", service_id, "-o", "yaml"))
    )
    # the service's files are its outputs and each replica's stored log
    logs = [o for o in listed if o["metadata"].get("kind") == "log"]
    assert sorted(o["metadata"]["replica_index"] for o in logs) == [0, 1], listed
    outputs = [o for o in listed if o["metadata"].get("kind") != "log"]
    assert sorted(o["metadata"]["replica_index"] for o in outputs) == [0, 1], outputs
    assert {o["filename"] for o in outputs} == {"kpis.json"}

    # an output file to a path (-O) and to stdout
    first = outputs[0]
    target = client_platform.config_dir.parent / "kpis.json"
    ok(run_dtpoc(client_platform, "files", "get", first["file_id"], "-O", str(target)))
    assert hashlib.sha256(target.read_bytes()).hexdigest() == first["sha256"]
    assert ok(run_dtpoc(client_platform, "files", "get", first["file_id"])) == target.read_text()

    # terminate: the record stays, terminated
    said = ok(run_dtpoc(client_platform, "service", "terminate", service_id))
    assert "terminated" in said
    status = json.loads(
        ok(run_dtpoc(client_platform, "service", "status", service_id, "-o", "json"))
    )
    assert status["phase"] == "terminated"
    assert status["succeeded_runs"] == 2 and status["failed_runs"] == 0


def test_refusals_and_usage_errors_have_their_exit_codes(client_platform: Platform) -> None:
    secret = "not-the-token-" + "x" * 20
    wrong = run_dtpoc(client_platform, "files", "list", env=client_platform.env(DTPOC_TOKEN=secret))
    assert wrong.returncode == 1, wrong
    assert "the bearer token is not valid" in wrong.stderr, wrong.stderr
    assert "401" in wrong.stderr
    flagged = run_dtpoc(client_platform, "--token", secret, "service", "list")
    assert flagged.returncode == 1 and "not valid" in flagged.stderr
    for run in (wrong, flagged):
        assert secret not in run.stdout + run.stderr, "the token is never printed"

    missing = run_dtpoc(client_platform, "files", "upload", "no-such-file.xlsx")
    assert missing.returncode == 2, missing
    assert "does not exist" in missing.stderr

    unknown = run_dtpoc(client_platform, "service", "status", "0" * 24)
    assert unknown.returncode == 1, unknown
    assert "no service" in unknown.stderr and "404" in unknown.stderr

    refused = run_dtpoc(
        client_platform,
        "service",
        "launch",
        "--image",
        "x",
        "--reps",
        "2",
        "--job-type",
        "persistent",
    )
    assert refused.returncode == 1, refused
    assert "400" in refused.stderr

    bad_spec = client_platform.config_dir / "bad.yaml"
    bad_spec.write_text("image: x\nreplicas: 2\n")
    shape = run_dtpoc(client_platform, "service", "launch", "-f", str(bad_spec))
    assert shape.returncode == 2, shape
    assert "replicas" in shape.stderr

    no_command = run_dtpoc(client_platform, "service", "nonsense")
    assert no_command.returncode == 2


def launch_local(platform: Platform, *extra: str, command: str = "false") -> str:
    """A service running ``command`` (default: one ondemand replica that exits 1); its id."""
    argv = ["--image", "dtpoc-histolab", "--version", "local", "--command", command, *extra]
    return ok(run_dtpoc(platform, "service", "launch", *argv)).strip()


def test_watch_exit_status_tells_a_failed_service(client_platform: Platform) -> None:
    launched = launch_local(client_platform)
    watched = run_dtpoc(
        client_platform, "service", "watch", launched, "--exit-status", "-o", "json"
    )
    assert watched.returncode == 3, watched
    updates = [json.loads(line) for line in watched.stdout.splitlines()]
    assert updates[-1]["phase"] == "failed", updates[-1]
    plain_watch = run_dtpoc(client_platform, "service", "watch", launched)
    assert plain_watch.returncode == 0, "without --exit-status a finished watch is a success"


def test_watch_exit_status_tells_a_terminated_service(client_platform: Platform) -> None:
    launched = launch_local(client_platform, command="sleep 600")
    ok(run_dtpoc(client_platform, "service", "terminate", launched))
    watched = run_dtpoc(
        client_platform, "service", "watch", launched, "--exit-status", "-o", "json"
    )
    assert watched.returncode == 4, watched
    updates = [json.loads(line) for line in watched.stdout.splitlines()]
    assert updates[-1]["phase"] == "terminated", updates[-1]


def test_actions_by_id_print_the_servers_answer(client_platform: Platform) -> None:
    """retry, resubmit, suspend, resume, terminate: a line for people, the answer for scripts."""
    failing = launch_local(client_platform)
    assert run_dtpoc(client_platform, "service", "watch", failing, "--exit-status").returncode == 3
    assert ok(run_dtpoc(client_platform, "service", "retry", failing)) == (
        "replicas running again: 0 (attempt 2)\n"
    )
    again = json.loads(ok(run_dtpoc(client_platform, "service", "resubmit", failing, "-o", "json")))
    assert re.fullmatch(r"[0-9a-f]{24}", again["id"]) and again["id"] != failing, again
    assert re.fullmatch(
        r"[0-9a-f]{24}\n", ok(run_dtpoc(client_platform, "service", "resubmit", failing))
    )
    for action in ("suspend", "resume"):
        refused = run_dtpoc(client_platform, "service", action, failing)
        assert refused.returncode == 1, refused
        assert "only a scheduled service can be" in refused.stderr, refused.stderr
    schedule = ("--job-type", "scheduled", "--schedule", "0 0 1 1 *", "--reps", "1")
    scheduled = launch_local(client_platform, *schedule, command="true")
    assert ok(run_dtpoc(client_platform, "service", "suspend", scheduled)) == (
        f"service {scheduled} suspended: it starts no new run\n"
    )
    resumed = json.loads(
        ok(run_dtpoc(client_platform, "service", "resume", scheduled, "-o", "json"))
    )
    assert resumed["message"].startswith(f"service {scheduled} resumed"), resumed
    stopped = json.loads(
        ok(run_dtpoc(client_platform, "service", "terminate", scheduled, "-o", "json"))
    )
    assert "terminated" in stopped["message"], stopped


def test_service_logs_prints_the_replicas_output_and_its_tail(client_platform: Platform) -> None:
    launched = ok(
        run_dtpoc(
            client_platform,
            "service",
            "launch",
            "--image",
            "dtpoc-logs",
            "--command",
            "sh -c 'echo one; echo two; echo three >&2; exit 3'",
        )
    ).strip()
    watched = run_dtpoc(client_platform, "service", "watch", launched, "--exit-status")
    assert watched.returncode == 3, watched
    assert ok(run_dtpoc(client_platform, "service", "logs", launched, "0")) == "one\ntwo\nthree\n"
    tail = run_dtpoc(client_platform, "service", "logs", launched, "0", "--tail", "1", "-f")
    assert ok(tail) == "three\n"
    missing = run_dtpoc(client_platform, "service", "logs", launched, "1")
    assert missing.returncode != 0 and "no such replica: 1" in missing.stderr, missing


def test_contexts_keep_server_and_token_without_printing_it(
    client_platform: Platform, tmp_path: Path
) -> None:
    env = client_platform.env(DTPOC_CONFIG=str(tmp_path / "dtpoc" / "config.yaml"))
    del env["DTPOC_SERVER"], env["DTPOC_TOKEN"]
    config = Path(env["DTPOC_CONFIG"])

    default = json.loads(ok(run_dtpoc(client_platform, "version", "-o", "json", env=env)))
    assert default["server"] == "http://127.0.0.1:8000", "no flag, variable or context: local"

    saved = run_dtpoc(
        client_platform,
        "context",
        "set",
        "test",
        "--server",
        client_platform.server,
        "--token-stdin",
        "--use",
        env=env,
        stdin=client_platform.token + "\n",
    )
    ok(saved)
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    listed = json.loads(ok(run_dtpoc(client_platform, "context", "list", "-o", "json", env=env)))
    assert listed == [
        {"name": "test", "server": client_platform.server, "token": True, "current": True}
    ]
    table = ok(run_dtpoc(client_platform, "context", "list", env=env))
    assert client_platform.token not in table + saved.stdout + saved.stderr

    assert run_dtpoc(client_platform, "files", "list", "-o", "json", env=env).returncode == 0
    version = json.loads(ok(run_dtpoc(client_platform, "version", "-o", "json", env=env)))
    assert version["api"] == "v1alpha1" and version["health"] == "ok", version
    assert version["client"] == metadata.version("dtpoc-client"), version
    assert version["server_version"] == metadata.version("dtpoc-orchestrator"), version
    assert client_platform.token not in json.dumps(version)

    unknown = run_dtpoc(client_platform, "--context", "nope", "files", "list", env=env)
    assert unknown.returncode == 2 and "no context named 'nope'" in unknown.stderr


def test_help_has_an_example_on_every_command_and_completion_works(tmp_path: Path) -> None:
    runner = CliRunner()
    groups = {"": ["files", "service", "context", "version", "completion"]}
    groups["files"] = ["upload", "list", "info", "get", "rm"]
    groups["service"] = ["launch", "list", "status", "watch", "output", "outputs", "terminate"]
    groups["service"] += ["retry", "resubmit", "suspend", "resume"]
    groups["context"] = ["set", "use", "delete", "list"]
    for group, commands in groups.items():
        for command in commands:
            argv = [*([group] if group else []), command, "--help"]
            shown = runner.invoke(cli, argv)
            assert shown.exit_code == 0, shown.output
            assert "Example" in shown.output, (
                f"dtpoc {' '.join(argv)} has no example:\n{shown.output}"
            )
    assert "dtpoc up" in runner.invoke(cli, ["--help"]).output

    offline = Platform(
        server="http://127.0.0.1:9",
        token="",
        files_address="",
        orchestrator_address="",
        config_dir=tmp_path,
        grpc_token="",
    )
    script = ok(run_dtpoc(offline, "completion", "bash"))
    assert "_DTPOC_COMPLETE" in script
    env = offline.env(_DTPOC_COMPLETE="bash_complete", COMP_WORDS="dtpoc ser", COMP_CWORD="1")
    assert "service" in ok(run_dtpoc(offline, env=env))


BIG = 200 * 1024 * 1024
RSS_GROWTH_LIMIT = 64 * 1024 * 1024


def high_water_mark(pid: int) -> int:
    """VmHWM of process ``pid`` (bytes), 0 once it has gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    return int(found.group(1)) * 1024 if found else 0


def peak_rss(platform: Platform, *args: str) -> tuple[int, str]:
    """Run ``dtpoc ARGS``; its peak resident memory (bytes) and stdout.

    The peak is the kernel's high-water mark of the command's own memory
    (``VmHWM``), read until it exits (it only grows, so the last reading is
    the peak of all but the last few milliseconds). wait4's ``ru_maxrss``
    cannot tell: a child keeps the high-water mark of the forked copy of
    pytest (over 100 MiB) through exec, which hid any growth below it.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([str(DTPOC), *args], env=platform.env(), stdout=out, stderr=err)
        peak = 0
        deadline = time.monotonic() + 1500
        while time.monotonic() < deadline:
            peak = max(peak, high_water_mark(proc.pid))
            try:
                proc.wait(timeout=0.02)
                break
            except subprocess.TimeoutExpired:
                continue
        else:
            proc.kill()
        code = proc.wait()
        err.seek(0)
        assert code == 0, err.read().decode()
        out.seek(0)
        return peak, out.read().decode()


@pytest.mark.timeout(1800)  # FerretDB reads a 200 MiB file slowly on a busy machine
def test_200_mib_through_the_command_in_bounded_memory(
    client_platform: Platform, tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with big.open("wb") as out:
        for i in range(BIG // (1024 * 1024)):
            block = hashlib.sha256(str(i).encode()).digest() * (1024 * 1024 // 32)
            digest.update(block)
            out.write(block)
    small = tmp_path / "small.bin"
    small.write_bytes(b"small file\n")

    base_up, said = peak_rss(
        client_platform, "files", "upload", str(small), "--progress", "-o", "json"
    )
    small_id = json.loads(said)["file_id"]
    big_up, said = peak_rss(
        client_platform, "files", "upload", str(big), "--progress", "-o", "json"
    )
    file_id = json.loads(said)["file_id"]
    mib = 1024 * 1024
    print(
        f"dtpoc files upload peak RSS: 200 MiB {big_up / mib:.1f} MiB, small file"
        f" {base_up / mib:.1f} MiB: growth {(big_up - base_up) / mib:.1f} MiB"
    )
    assert big_up - base_up < RSS_GROWTH_LIMIT, "upload memory grows with the file"
    base_get, _ = peak_rss(
        client_platform, "files", "get", small_id, "-O", str(tmp_path / "s"), "--progress"
    )
    copy = tmp_path / "copy.bin"
    big_get, _ = peak_rss(client_platform, "files", "get", file_id, "-O", str(copy), "--progress")
    print(
        f"dtpoc files get peak RSS: 200 MiB {big_get / mib:.1f} MiB, small file"
        f" {base_get / mib:.1f} MiB: growth {(big_get - base_get) / mib:.1f} MiB"
    )
    assert copy.stat().st_size == BIG
    sha = hashlib.sha256()
    with copy.open("rb") as back:
        while block := back.read(1024 * 1024):
            sha.update(block)
    assert sha.hexdigest() == digest.hexdigest(), "the download is the upload, byte for byte"
    assert big_get - base_get < RSS_GROWTH_LIMIT, "download memory grows with the file"
