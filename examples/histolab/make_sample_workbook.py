"""Write ``sample/input.xlsx``: a mid-sized NHS histopathology lab, one sheet per concern.

Run ``uv run python examples/histolab/make_sample_workbook.py [PATH]``. The
numbers are round figures of the kind a lab manager gives, not measurements
of any one lab; the ``note`` columns in the workbook say where each comes
from, so whoever edits the workbook knows what they are changing:

- about 130 specimens a weekday (roughly 33,000 a year), mostly 09:00-17:00
  with peaks after the porters' rounds, a few on Saturday morning;
- about 4.8 tissue blocks (and so slides) per specimen on average: biopsies
  give 1-3, cancer resections 8-40;
- tissue processors run overnight (17:00 start, about 12 h); a rapid
  processor takes urgent biopsies at 10:00 and 13:00 (about 3 h);
- staff work weekdays; scanners run around the clock.

The resulting lab runs its busiest benches (microtomy, cut-up) at 60-80% of
working time, so queues build over the day and clear overnight.
"""

from __future__ import annotations

import sys
from pathlib import Path

import openpyxl

HERE = Path(__file__).resolve().parent
DEFAULT_PATH = HERE / "sample" / "input.xlsx"

CONFIG = [
    ("key", "value", "note"),
    ("sim_hours", 1176, "7 weeks; SIM_HOURS overrides it"),
    ("priority_order", "urgent, cancer, routine", "served in this order at every queue"),
    ("tat_target_hours.urgent", 48, "urgent biopsies reported within 2 days"),
    ("tat_target_hours.cancer", 168, "cancer pathway: within 7 days (RCPath-style target)"),
    ("tat_target_hours.routine", 240, "routine work within 10 days"),
]

# Specimens per hour on a normal weekday, hour 0..23: a trickle overnight
# (ED, wards), porter rounds at about 10-11 and 14-15, theatres until ~18.
WEEKDAY = [0.2] * 8 + [4, 10, 14, 16, 12, 11, 14, 16, 13, 8, 4, 2] + [0.5] * 4
SATURDAY = [0.2] * 8 + [2, 2, 2, 2, 2, 1] + [0.2] * 10
SUNDAY = [0.2] * 24
DAY_FACTORS = {"mon": 1.1, "tue": 1.0, "wed": 1.0, "thu": 1.0, "fri": 0.9}
"""Mondays carry the weekend's backlog from the wards; Friday lists are shorter."""

SPECIMEN_TYPES = [
    ("name", "share", "priority", "blocks_min", "blocks_mode", "blocks_max", "route", "note"),
    (
        "small_biopsy",
        0.50,
        "routine",
        1,
        1,
        3,
        "reception, cutup, processing, embedding, microtomy, staining, scanning, reporting",
        "GI, skin, cervical biopsies",
    ),
    (
        "urgent_biopsy",
        0.08,
        "urgent",
        1,
        1,
        2,
        "reception, cutup, processing_rapid, embedding, microtomy, staining, scanning, reporting",
        "transplant, renal, query-malignancy biopsies",
    ),
    (
        "cancer_resection",
        0.12,
        "cancer",
        8,
        15,
        40,
        "reception, cutup, processing, embedding, microtomy, staining, scanning, reporting",
        "colorectal, breast, lung resections",
    ),
    (
        "routine_resection",
        0.22,
        "routine",
        2,
        4,
        10,
        "reception, cutup, processing, embedding, microtomy, staining, scanning, reporting",
        "gall bladders, appendices, hernia sacs",
    ),
    (
        "skin_excision",
        0.08,
        "routine",
        1,
        2,
        4,
        "reception, cutup, processing, embedding, microtomy, staining, scanning, reporting",
        "benign skin lesions",
    ),
]

STATIONS = [
    (
        "name",
        "resource",
        "kind",
        "per",
        "distribution",
        "p1",
        "p2",
        "p3",
        "batch_capacity",
        "run_times",
        "note",
    ),
    (
        "reception",
        "lab_assistant",
        "single",
        "specimen",
        "triangular",
        2,
        4,
        8,
        None,
        None,
        "book in: check request form against label, enter into LIMS",
    ),
    (
        "cutup",
        "cutup_staff",
        "single",
        "block",
        "triangular",
        1,
        2,
        5,
        None,
        None,
        "grossing: describe, slice, put tissue into cassettes (time per cassette)",
    ),
    (
        "processing",
        "tissue_processor",
        "batch",
        "block",
        "triangular",
        660,
        720,
        780,
        300,
        "17:00",
        "overnight processing; capacity in cassettes per processor",
    ),
    (
        "processing_rapid",
        "rapid_processor",
        "batch",
        "block",
        "triangular",
        150,
        180,
        210,
        60,
        "10:00, 13:00",
        "short protocol for urgent biopsies",
    ),
    (
        "embedding",
        "embedding_staff",
        "single",
        "block",
        "triangular",
        0.7,
        1,
        2,
        None,
        None,
        "orient tissue in wax, one block at a time",
    ),
    (
        "microtomy",
        "microtomist",
        "single",
        "block",
        "triangular",
        2.5,
        4,
        8,
        None,
        None,
        "cut 3-4 micron sections, float out, pick up on a slide",
    ),
    (
        "staining",
        "stainer",
        "batch",
        "block",
        "triangular",
        45,
        60,
        75,
        100,
        None,
        "H&E autostainer and coverslipper; one slide per block",
    ),
    (
        "scanning",
        "slide_scanner",
        "single",
        "block",
        "triangular",
        1.5,
        2,
        3,
        None,
        None,
        "whole-slide imaging at 40x",
    ),
    (
        "reporting",
        "pathologist",
        "single",
        "specimen",
        "lognormal",
        18,
        15,
        None,
        None,
        None,
        "examine slides on screen, write the report; long tail for resections",
    ),
]

RESOURCES = [
    ("name", "capacity", "shift_start", "shift_end", "days", "note"),
    ("lab_assistant", 2, "08:00", "18:00", "mon-fri", "specimen reception"),
    ("cutup_staff", 5, "08:30", "17:00", "mon-fri", "BMS and pathologists at the cut-up bench"),
    ("tissue_processor", 4, "00:00", "24:00", "mon-fri", "runs start on these days only"),
    ("rapid_processor", 1, "00:00", "24:00", "mon-fri", "runs start on these days only"),
    ("embedding_staff", 3, "07:30", "16:00", "mon-fri", "early shift: blocks ready for microtomy"),
    ("microtomist", 8, "08:00", "17:00", "mon-fri", "BMS at microtomes"),
    ("stainer", 2, "07:30", "18:00", "mon-fri", "loaded by staff during the day"),
    ("slide_scanner", 2, "00:00", "24:00", "all", "racks run unattended around the clock"),
    ("pathologist", 8, "09:00", "17:00", "mon-fri", "reporting sessions (whole-time equivalents)"),
]


def arrivals_rows() -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = [("hour", "mon", "tue", "wed", "thu", "fri", "sat", "sun")]
    for hour in range(24):
        weekday = [round(WEEKDAY[hour] * DAY_FACTORS[d], 2) for d in DAY_FACTORS]
        rows.append((hour, *weekday, SATURDAY[hour], SUNDAY[hour]))
    return rows


def build() -> openpyxl.Workbook:
    """The sample lab as an openpyxl workbook."""
    book = openpyxl.Workbook()
    first = book.active
    assert first is not None
    book.remove(first)
    for title, rows in (
        ("config", CONFIG),
        ("arrivals", arrivals_rows()),
        ("specimen_types", SPECIMEN_TYPES),
        ("stations", STATIONS),
        ("resources", RESOURCES),
    ):
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(list(row))
    return book


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    build().save(path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
