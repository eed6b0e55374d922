"""``dtpoc-histolab``: run one replica of the lab simulation and write its KPIs.

Follows the dtpoc analytics container contract, so the same code runs as a
Kubernetes pod and as a local child process of the operator:

=====================  =====================================================
``INPUT_EXCEL_FILE``   the workbook; default ``$INPUT_FOLDER/input.xlsx``;
                       relative: under ``INPUT_FOLDER`` (see :func:`resolve_input`)
``INPUT_FOLDER``       where inputs are mounted; default ``/input``
``OUTPUT_FOLDER``      where ``kpis.json`` is written; default ``/output``
``SIM_HOURS``          simulated hours; default the workbook's ``sim_hours``
``REPLICA_INDEX``      this replica (``JOB_COMPLETION_INDEX`` on Kubernetes
                       Indexed Jobs); default 0
``SEED``               base seed shared by the replicas of a launch; default 0
``NUM_REPS``           accepted for compatibility with the original image;
                       the platform runs one process per replica instead
=====================  =====================================================

Command-line options override the environment (``--help``). Exit status: 0
on success, 2 for bad input (the message names the variable, sheet or
cell), 1 when the output cannot be written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from histolab import kpis, seeding, simulation
from histolab import workbook as wb

KPI_FILE = "kpis.json"
DEFAULT_INPUT_FOLDER = "/input"
EXIT_BAD_INPUT = 2
EXIT_OUTPUT_FAILED = 1


class UsageError(ValueError):
    """A setting (environment variable or option) that cannot be used."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dtpoc-histolab",
        description="Simulate a histopathology lab and write KPIs to OUTPUT_FOLDER/kpis.json.",
    )
    parser.add_argument("--input", help="input workbook (.xlsx); env INPUT_EXCEL_FILE")
    parser.add_argument("--output", help="output folder; env OUTPUT_FOLDER")
    parser.add_argument("--sim-hours", help="simulated hours; env SIM_HOURS")
    parser.add_argument("--seed", help="base seed; env SEED")
    parser.add_argument("--replica-index", help="replica index; env REPLICA_INDEX")
    return parser


def _integer(value: str, *, name: str, minimum: int = 0) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise UsageError(f"{name} must be a whole number, got {value!r}") from None
    if number < minimum:
        raise UsageError(f"{name} must be >= {minimum}, got {number}")
    return number


def _hours(value: str, *, name: str) -> float:
    try:
        number = float(value.strip())
    except ValueError:
        raise UsageError(f"{name} must be a number of hours, got {value!r}") from None
    if not 0 < number < 1e6:
        raise UsageError(f"{name} must be between 0 and 1e6 hours, got {value!r}")
    return number


def _setting(option: str | None, env: Mapping[str, str], *names: str) -> tuple[str, str] | None:
    """The first of the option and the named variables that is set, with its name."""
    if option is not None:
        return option, f"--{names[0].lower().replace('_', '-')}"
    for name in names:
        value = env.get(name)
        if value is not None and value.strip():
            return value, name
    return None


def resolve_input(given: str | None, input_folder: str | None) -> Path:
    """Where the workbook is: ``given`` if set, else ``input.xlsx`` in the input folder.

    A relative ``given`` is taken under the input folder. A launch written
    for Kubernetes names ``/input/<file>``; where the platform mounts inputs
    elsewhere (the local runtime sets ``INPUT_FOLDER`` to the replica's own
    folder) that path is read from the input folder instead, so one launch
    request works on both runtimes.
    """
    folder = Path(input_folder or DEFAULT_INPUT_FOLDER)
    if not given:
        return folder / "input.xlsx"
    path = Path(given)
    if not path.is_absolute():
        return folder / path
    default = Path(DEFAULT_INPUT_FOLDER)
    if folder != default and path.is_relative_to(default) and not path.exists():
        return folder / path.relative_to(default)
    return path


def _write_atomically(path: Path, text: str) -> None:
    """Write then rename, so a collector never picks up half a file."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


def run(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run one replica; returns the exit status (see module docstring)."""
    args = _parser().parse_args(argv)
    env = os.environ if env is None else env
    try:
        given = _setting(args.input, env, "INPUT_EXCEL_FILE")
        input_path = resolve_input(given[0] if given else None, env.get("INPUT_FOLDER"))
        output_dir = Path(args.output or env.get("OUTPUT_FOLDER") or "/output")
        seed_setting = _setting(args.seed, env, "SEED")
        seed_base = _integer(seed_setting[0], name=seed_setting[1]) if seed_setting else 0
        index_setting = _setting(args.replica_index, env, "REPLICA_INDEX", "JOB_COMPLETION_INDEX")
        replica_index = _integer(index_setting[0], name=index_setting[1]) if index_setting else 0
        model = wb.load(input_path)
        hours_setting = _setting(args.sim_hours, env, "SIM_HOURS")
        sim_hours = (
            _hours(hours_setting[0], name=hours_setting[1]) if hours_setting else model.sim_hours
        )
    except (UsageError, wb.WorkbookError) as exc:
        print(f"dtpoc-histolab: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT

    seed = seeding.replica_seed(base=seed_base, replica_index=replica_index)
    started = time.monotonic()
    result = simulation.simulate(model, sim_hours=sim_hours, seed=seed)
    document = kpis.build(
        result,
        seed=seed,
        seed_base=seed_base,
        replica_index=replica_index,
        input_path=str(input_path),
        input_sha256=hashlib.sha256(input_path.read_bytes()).hexdigest(),
    )
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        target = output_dir / KPI_FILE
        _write_atomically(target, json.dumps(document, indent=2, sort_keys=False) + "\n")
    except OSError as exc:
        print(
            f"dtpoc-histolab: error: cannot write {output_dir / KPI_FILE}: {exc}", file=sys.stderr
        )
        return EXIT_OUTPUT_FAILED
    overall = document["turnaround_hours"]["overall"]
    counts = document["specimens"]
    print(
        f"dtpoc-histolab: replica {replica_index} seed {seed}: {sim_hours:g} h simulated in "
        f"{time.monotonic() - started:.1f} s; {counts['arrived']} arrived, "
        f"{counts['completed']} completed, {counts['wip_at_end']} in progress; "
        f"turnaround p50 {overall['p50']} h, p95 {overall['p95']} h; wrote {target}",
        flush=True,
    )
    return 0


def main() -> None:
    """Console entry point."""
    sys.exit(run())


if __name__ == "__main__":
    main()
