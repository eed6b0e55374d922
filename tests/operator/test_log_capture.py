"""The local supervisor's log capture: every line timed, capped, never blocking the replica."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dtpoc_common import replica_logs
from dtpoc_operator import logstore
from dtpoc_operator.local.logcapture import LogCapture

CHATTY = """
import sys
sys.stdout.write("no newline yet ")
sys.stdout.flush()
sys.stdout.write("now ended\\n")
for i in range(int(sys.argv[1])):
    print(f"line {i:06d} " + "x" * 90)
print("on stderr", file=sys.stderr)
"""


def _run(path: Path, *, lines: int, cap: int) -> tuple[LogCapture, int]:
    capture = LogCapture(path, max_bytes=cap)
    with capture as fd:
        child = subprocess.Popen(
            [sys.executable, "-c", CHATTY, str(lines)], stdout=fd, stderr=subprocess.STDOUT
        )
        capture.started()
        code = child.wait(timeout=120)
    return capture, code


def test_each_line_starts_with_its_time_and_a_line_written_in_pieces_stays_one(
    tmp_path: Path,
) -> None:
    capture, code = _run(tmp_path / "log", lines=3, cap=replica_logs.DEFAULT_MAX_BYTES)
    assert code == 0
    assert not capture.truncated
    lines = (tmp_path / "log").read_text().splitlines()
    split = [replica_logs.split_line(line) for line in lines]
    assert all(stamp for stamp, _text in split), lines
    assert [text for _stamp, text in split] == [
        "no newline yet now ended",
        *(f"line {i:06d} " + "x" * 90 for i in range(3)),
        "on stderr",
    ]
    assert not logstore.is_truncated((tmp_path / "log").read_bytes())


def test_a_replica_printing_past_the_cap_finishes_and_its_log_ends_with_the_marker(
    tmp_path: Path,
) -> None:
    cap = 64 * 1024
    capture, code = _run(tmp_path / "log", lines=20_000, cap=cap)  # ~2 MB printed
    assert code == 0  # never blocked on a full pipe
    assert capture.truncated
    content = (tmp_path / "log").read_bytes()
    marker = replica_logs.truncation_marker(cap)
    assert cap <= len(content) <= cap + len(marker) + 64
    last = content.decode().splitlines()[-1]
    assert replica_logs.split_line(last)[1] == marker
    assert logstore.is_truncated(content)
    assert "on stderr" not in content.decode()
