"""The example analytics module: what a lab manager reading kpis.json relies on.

Runs use the committed sample workbook and a short simulated period (two
weeks), which exercises weekends, overnight processing and shift changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import openpyxl
import pytest

try:
    from histolab import __main__ as histolab_main
    from histolab import clock
except ModuleNotFoundError as missing:  # a broken `make run` demo must not pass as a skip
    raise ImportError(
        "dtpoc-histolab is not installed in this environment: the workspace root must depend "
        "on it (or run `uv sync --all-packages`)"
    ) from missing

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "histolab" / "sample" / "input.xlsx"
SHORT_HOURS = "336"


def run_replica(
    tmp_path: Path, *, index: int, seed: str | None = None, hours: str = SHORT_HOURS
) -> dict[str, Any]:
    """One replica in-process through the module's entry point, as the operator runs it."""
    out = tmp_path / f"out-{index}-{seed}-{hours}"
    env = {
        "INPUT_EXCEL_FILE": str(SAMPLE),
        "OUTPUT_FOLDER": str(out),
        "SIM_HOURS": hours,
        "REPLICA_INDEX": str(index),
    }
    if seed is not None:
        env["SEED"] = seed
    assert histolab_main.run([], env) == 0
    data: dict[str, Any] = json.loads((out / "kpis.json").read_text())
    return data


def run_cli(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The module as a child process with only the given environment (plus PATH)."""
    return subprocess.run(
        [sys.executable, "-m", "histolab", *args],
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )


def test_same_seed_and_replica_give_identical_kpis(tmp_path: Path) -> None:
    first = run_replica(tmp_path / "a", index=1, seed="7")
    second = run_replica(tmp_path / "b", index=1, seed="7")
    assert first == second


def test_replicas_and_seed_bases_give_different_runs(tmp_path: Path) -> None:
    runs = [
        run_replica(tmp_path, index=0),
        run_replica(tmp_path, index=1),
        run_replica(tmp_path, index=0, seed="1"),
    ]
    assert len({r["seed"] for r in runs}) == 3
    assert all(0 <= r["seed"] < 2**52 for r in runs), "exact as a JSON double"
    assert len({json.dumps(r["turnaround_hours"]) for r in runs}) == 3
    assert [r["replica_index"] for r in runs] == [0, 1, 0]
    assert [r["seed_base"] for r in runs] == [0, 0, 1]


def _ordered(summary: dict[str, Any]) -> bool:
    return bool(summary["p50"] <= summary["p90"] <= summary["p95"] <= summary["max"])


def test_kpis_are_consistent(tmp_path: Path) -> None:
    kpis = run_replica(tmp_path, index=2)
    counts = kpis["specimens"]
    assert counts["arrived"] > 500, "two weeks of a 130-a-day lab"
    assert counts["arrived"] == counts["completed"] + counts["wip_at_end"]
    assert counts["wip_at_end"] == kpis["wip"]["at_end"]
    assert sum(t["arrived"] for t in counts["by_type"].values()) == counts["arrived"]
    assert sum(t["completed"] for t in counts["by_type"].values()) == counts["completed"]
    assert sum(kpis["throughput"]["per_day"]) == counts["completed"]
    assert len(kpis["throughput"]["per_day"]) == 14

    tat = kpis["turnaround_hours"]
    assert tat["overall"]["count"] == counts["completed"]
    assert _ordered(tat["overall"])
    assert sum(p["count"] for p in tat["by_priority"].values()) == counts["completed"]
    for summary in tat["by_priority"].values():
        assert summary["count"] > 0
        assert _ordered(summary)
        assert summary["p50"] > 0
    # Urgent work goes first everywhere and has a rapid processor: it is faster.
    assert tat["by_priority"]["urgent"]["p50"] < tat["by_priority"]["routine"]["p50"]

    for group in ("stations", "resources"):
        for name, entry in kpis["utilisation"][group].items():
            assert 0 < entry["utilisation"] <= 1, (group, name, entry)
    for name, queue in kpis["queues"].items():
        assert 0 <= queue["mean_length"] <= queue["max_length"], (name, queue)
    assert 0 < kpis["wip"]["mean"] <= kpis["wip"]["max"]
    for target in kpis["within_target"].values():
        assert 0 <= target["share_within_target"] <= 1

    assert kpis["sim_hours"] == float(SHORT_HOURS)
    assert kpis["replica_index"] == 2
    assert kpis["input"]["sha256"] == hashlib.sha256(SAMPLE.read_bytes()).hexdigest()


def test_container_contract_defaults(tmp_path: Path) -> None:
    """Inputs under INPUT_FOLDER/input.xlsx, the Kubernetes completion index as replica."""
    inputs = tmp_path / "input"
    inputs.mkdir()
    shutil.copy(SAMPLE, inputs / "input.xlsx")
    result = run_cli(
        tmp_path,
        {
            "INPUT_FOLDER": str(inputs),
            "OUTPUT_FOLDER": str(tmp_path / "output"),
            "SIM_HOURS": "48",
            "JOB_COMPLETION_INDEX": "3",
            "NUM_REPS": "2",
        },
    )
    assert result.returncode == 0, result.stderr
    kpis = json.loads((tmp_path / "output" / "kpis.json").read_text())
    assert kpis["replica_index"] == 3
    assert kpis["sim_hours"] == 48
    assert "wrote" in result.stdout
    assert list((tmp_path / "output").iterdir()) == [tmp_path / "output" / "kpis.json"]


def test_kubernetes_input_path_is_found_in_a_local_input_folder(tmp_path: Path) -> None:
    """The seed's launch names /input/input.xlsx; the local runtime mounts elsewhere."""
    inputs = tmp_path / "replica-input"
    inputs.mkdir()
    shutil.copy(SAMPLE, inputs / "input.xlsx")
    resolve = histolab_main.resolve_input
    assert resolve("/input/input.xlsx", str(inputs)) == inputs / "input.xlsx"
    assert resolve("input.xlsx", str(inputs)) == inputs / "input.xlsx"
    assert resolve(None, str(inputs)) == inputs / "input.xlsx"
    assert resolve(str(SAMPLE), str(inputs)) == SAMPLE
    assert resolve("/input/input.xlsx", None) == Path("/input/input.xlsx")


def _broken_copy(tmp_path: Path, sheet: str, cell: str, value: object) -> Path:
    book = openpyxl.load_workbook(SAMPLE)
    book[sheet][cell] = value
    path = tmp_path / "broken.xlsx"
    book.save(path)
    return path


@pytest.mark.parametrize(
    ("sheet", "cell", "value", "message"),
    [
        ("stations", "F3", "quick", "sheet 'stations' cell F3: p1 (min, minutes) must be a number"),
        ("stations", "B5", "robot", "sheet 'stations' cell B5: resource 'robot' is not on sheet"),
        ("stations", "G2", 1, "sheet 'stations' cell E2 (station 'reception'): triangular needs"),
        ("arrivals", "C5", -2, "sheet 'arrivals' cell C5: arrivals per hour on tue must be >= 0"),
        ("resources", "E3", "weekdays", "sheet 'resources' cell E3: unknown day 'weekdays'"),
        ("resources", "D2", "25:00", "sheet 'resources' cell D2: shift_end must be between"),
        ("specimen_types", "G2", "reception, cutup, magic", "route names station(s) 'magic'"),
        ("specimen_types", "C3", "asap", "priority 'asap' is not in config priority_order"),
    ],
)
def test_bad_workbook_cell_is_named_and_exits_non_zero(
    tmp_path: Path, sheet: str, cell: str, value: object, message: str
) -> None:
    broken = _broken_copy(tmp_path, sheet, cell, value)
    result = run_cli(
        tmp_path, {"INPUT_EXCEL_FILE": str(broken), "OUTPUT_FOLDER": str(tmp_path / "out")}
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_missing_sheet_not_xlsx_and_bad_settings_are_clear(tmp_path: Path) -> None:
    book = openpyxl.load_workbook(SAMPLE)
    del book["resources"]
    no_resources = tmp_path / "no-resources.xlsx"
    book.save(no_resources)
    not_xlsx = tmp_path / "input.csv"
    not_xlsx.write_text("hour,mon\n0,1\n")
    cases = [
        ({"INPUT_EXCEL_FILE": str(no_resources)}, "missing sheet(s) resources"),
        ({"INPUT_EXCEL_FILE": str(not_xlsx)}, "is not a readable .xlsx file"),
        ({"INPUT_EXCEL_FILE": str(tmp_path / "nope.xlsx")}, "does not exist"),
        ({"INPUT_EXCEL_FILE": str(SAMPLE), "SIM_HOURS": "a week"}, "SIM_HOURS must be a number"),
        ({"INPUT_EXCEL_FILE": str(SAMPLE), "SIM_HOURS": "-5"}, "SIM_HOURS must be between"),
        ({"INPUT_EXCEL_FILE": str(SAMPLE), "REPLICA_INDEX": "x"}, "REPLICA_INDEX must be a whole"),
        ({"INPUT_EXCEL_FILE": str(SAMPLE), "SEED": "1.5"}, "SEED must be a whole number"),
    ]
    for env, message in cases:
        result = run_cli(tmp_path, {**env, "OUTPUT_FOLDER": str(tmp_path / "out")})
        assert result.returncode == 2, (env, result.stderr)
        assert message in result.stderr, (env, result.stderr)
        assert "Traceback" not in result.stderr


def test_committed_sample_matches_its_generator(tmp_path: Path) -> None:
    """Editing make_sample_workbook.py without regenerating the sample is caught here."""
    sys.path.insert(0, str(SAMPLE.parents[1]))
    try:
        import make_sample_workbook  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    fresh = make_sample_workbook.build()
    committed = openpyxl.load_workbook(SAMPLE)
    assert committed.sheetnames == fresh.sheetnames
    for name in fresh.sheetnames:
        want = list(fresh[name].iter_rows(values_only=True))
        got = list(committed[name].iter_rows(values_only=True))
        assert got == want, name


def test_shift_and_schedule_arithmetic() -> None:
    weekdays = clock.Shift(start=8, end=17, days=clock.parse_days("mon-fri"))
    assert weekdays.next_on(9.0) == 9.0  # Monday 09:00: on
    assert weekdays.next_on(17.5) == 24 + 8  # Monday evening -> Tuesday 08:00
    assert weekdays.next_on(4 * 24 + 18) == 7 * 24 + 8  # Friday evening -> Monday
    assert weekdays.hours_between(0, clock.HOURS_PER_WEEK) == 45
    night = clock.Shift(start=22, end=6, days=clock.parse_days("mon"))
    assert night.next_on(23.0) == 23.0
    assert night.next_on(24 + 3) == 24 + 3  # Tuesday 03:00 still Monday's night shift
    assert night.next_on(24 + 7) == 7 * 24 + 22
    assert clock.parse_days("sat-mon") == frozenset({5, 6, 0})
    assert clock.next_run_time(17.0, times=(10.0, 17.0), days=frozenset(range(5))) == 17.0
    assert clock.next_run_time(4 * 24 + 18, times=(10.0,), days=frozenset(range(5))) == 7 * 24 + 10
