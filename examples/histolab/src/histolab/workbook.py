"""Read and check the input workbook: the lab described in five sheets.

The workbook is written by people, so every error names the sheet and cell
(``sheet 'stations' cell F4: ...``) and says what was expected. Sheets and
columns (header row 1, names case-insensitive, column order free):

``config``
    ``key`` | ``value``: ``sim_hours`` (default run length, overridden by
    ``SIM_HOURS``), ``priority_order`` (e.g. ``urgent, cancer, routine``,
    first is served first), ``tat_target_hours.<priority>`` (optional
    turnaround target per priority).
``arrivals``
    ``hour`` (0..23) | ``mon`` .. ``sun``: mean specimens arriving in that
    hour on that weekday (a Poisson process, piecewise constant by hour).
``specimen_types``
    ``name`` | ``share`` (relative frequency) | ``priority`` |
    ``blocks_min`` | ``blocks_mode`` | ``blocks_max`` (tissue blocks per
    specimen, triangular, rounded) | ``route`` (station names, comma
    separated, in order).
``stations``
    ``name`` | ``resource`` | ``kind`` (``single``: one resource unit per
    specimen; ``batch``: a machine runs many at once) | ``per``
    (``specimen`` or ``block``: the time is per specimen or per block; for
    a batch station, what its capacity counts) | ``distribution`` |
    ``p1`` | ``p2`` | ``p3`` (minutes, see :mod:`histolab.distributions`) |
    ``batch_capacity`` | ``run_times`` (batch only: hours of day such as
    ``10:00, 17:30``; empty means start as soon as a machine is free).
``resources``
    ``name`` | ``capacity`` (people or machines) | ``shift_start`` |
    ``shift_end`` (``08:00`` or hours) | ``days`` (``mon-fri``, ``all``...).
"""

from __future__ import annotations

import datetime as dt
import math
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openpyxl
from openpyxl.utils import get_column_letter
from openpyxl.utils.exceptions import InvalidFileException

from histolab import clock, distributions

DEFAULT_SIM_HOURS = 1176.0
"""Seven weeks, the run length of the original lab study."""

SHEETS = ("config", "arrivals", "specimen_types", "stations", "resources")


class WorkbookError(ValueError):
    """The workbook cannot describe a lab; the message says where and why."""


@dataclass(frozen=True)
class Resource:
    """Staff of one role, or identical machines."""

    name: str
    capacity: int
    shift: clock.Shift


@dataclass(frozen=True)
class Station:
    """A step of a specimen's route and what it occupies."""

    name: str
    resource: str
    kind: str
    per: str
    duration: distributions.Distribution
    batch_capacity: int = 0
    run_times: tuple[float, ...] = ()


@dataclass(frozen=True)
class SpecimenType:
    """A kind of specimen: how often, how urgent, how big, which route."""

    name: str
    share: float
    priority: str
    blocks: tuple[int, int, int]
    route: tuple[str, ...]


@dataclass(frozen=True)
class LabModel:
    """Everything the simulation needs, checked for consistency."""

    arrival_rates: tuple[tuple[float, ...], ...]
    """``arrival_rates[weekday][hour]``: mean arrivals per hour."""
    specimen_types: tuple[SpecimenType, ...]
    stations: dict[str, Station]
    resources: dict[str, Resource]
    priorities: tuple[str, ...]
    tat_targets: dict[str, float] = field(default_factory=dict)
    sim_hours: float = DEFAULT_SIM_HOURS


@dataclass(frozen=True)
class _Cell:
    value: Any
    where: str


class _Sheet:
    """Rows of one sheet addressed by header name, with cell references."""

    def __init__(self, name: str, rows: list[tuple[Any, ...]]) -> None:
        self.name = name
        if not rows or all(v is None for v in rows[0]):
            raise WorkbookError(f"sheet {name!r} is empty: row 1 must hold the column names")
        self.columns: dict[str, int] = {}
        for index, value in enumerate(rows[0]):
            if value is not None and str(value).strip():
                self.columns[str(value).strip().lower()] = index
        self.rows = [
            (number, row)
            for number, row in enumerate(rows[1:], start=2)
            if any(v is not None and str(v).strip() for v in row)
        ]

    def require(self, *names: str) -> None:
        missing = [n for n in names if n not in self.columns]
        if missing:
            raise WorkbookError(
                f"sheet {self.name!r}: missing column(s) {', '.join(missing)} in row 1 "
                f"(found: {', '.join(self.columns) or 'none'})"
            )

    def cell(self, row: tuple[int, tuple[Any, ...]], column: str) -> _Cell:
        number, values = row
        index = self.columns.get(column)
        where = f"sheet {self.name!r} cell {get_column_letter((index or 0) + 1)}{number}"
        value = values[index] if index is not None and index < len(values) else None
        if isinstance(value, str):
            value = value.strip() or None
        return _Cell(value=value, where=where)

    def __iter__(self) -> Iterator[tuple[int, tuple[Any, ...]]]:
        return iter(self.rows)


def _number(cell: _Cell, *, what: str, minimum: float = 0.0, default: float | None = None) -> float:
    if cell.value is None:
        if default is not None:
            return default
        raise WorkbookError(f"{cell.where}: {what} is empty; expected a number")
    if isinstance(cell.value, bool):
        raise WorkbookError(f"{cell.where}: {what} must be a number, got {cell.value!r}")
    try:
        number = float(cell.value)
    except (TypeError, ValueError):
        raise WorkbookError(f"{cell.where}: {what} must be a number, got {cell.value!r}") from None
    if not math.isfinite(number) or number < minimum:
        raise WorkbookError(f"{cell.where}: {what} must be >= {minimum:g}, got {cell.value!r}")
    return number


def _integer(cell: _Cell, *, what: str, minimum: int, default: int | None = None) -> int:
    number = _number(
        cell, what=what, minimum=minimum, default=None if default is None else float(default)
    )
    if number != int(number):
        raise WorkbookError(f"{cell.where}: {what} must be a whole number, got {cell.value!r}")
    return int(number)


def _text(cell: _Cell, *, what: str, default: str | None = None) -> str:
    if cell.value is None:
        if default is not None:
            return default
        raise WorkbookError(f"{cell.where}: {what} is empty")
    return str(cell.value).strip()


def _choice(cell: _Cell, *, what: str, choices: tuple[str, ...], default: str | None = None) -> str:
    value = _text(cell, what=what, default=default).lower()
    if value not in choices:
        raise WorkbookError(
            f"{cell.where}: {what} must be one of {', '.join(choices)}, got {cell.value!r}"
        )
    return value


def _hour_of_day(value: Any, *, where: str, what: str) -> float:
    """Hours since midnight from ``8``, ``8.5``, ``"08:30"`` or an Excel time cell."""
    if isinstance(value, dt.time):
        return value.hour + value.minute / 60 + value.second / 3600
    if isinstance(value, dt.datetime):
        return value.hour + value.minute / 60 + value.second / 3600
    if isinstance(value, int | float) and not isinstance(value, bool):
        # Excel stores a typed "08:30" as a fraction of a day when the cell has no format.
        hours = float(value) * 24 if 0 < value < 1 else float(value)
    else:
        text = str(value).strip()
        try:
            if ":" in text:
                hh, mm = text.split(":", 1)
                hours = int(hh) + int(mm) / 60
            else:
                hours = float(text)
        except ValueError:
            raise WorkbookError(
                f"{where}: {what} must be a time of day like 08:30, got {value!r}"
            ) from None
    if not 0 <= hours <= 24:
        raise WorkbookError(f"{where}: {what} must be between 00:00 and 24:00, got {value!r}")
    return hours


def _read_config(sheet: _Sheet) -> tuple[dict[str, _Cell], dict[str, str]]:
    sheet.require("key", "value")
    cells: dict[str, _Cell] = {}
    for row in sheet:
        key = _text(sheet.cell(row, "key"), what="key").lower()
        cells[key] = sheet.cell(row, "value")
    return cells, {k: str(c.value) for k, c in cells.items() if c.value is not None}


def _read_arrivals(sheet: _Sheet) -> tuple[tuple[float, ...], ...]:
    sheet.require("hour", *clock.WEEKDAYS)
    rates = [[-1.0] * 24 for _ in clock.WEEKDAYS]
    for row in sheet:
        hour = _integer(sheet.cell(row, "hour"), what="hour", minimum=0)
        if hour > 23:
            raise WorkbookError(f"{sheet.cell(row, 'hour').where}: hour must be 0..23, got {hour}")
        if rates[0][hour] >= 0:
            raise WorkbookError(f"{sheet.cell(row, 'hour').where}: hour {hour} appears twice")
        for day, name in enumerate(clock.WEEKDAYS):
            rates[day][hour] = _number(
                sheet.cell(row, name), what=f"arrivals per hour on {name}", minimum=0
            )
    missing = [h for h in range(24) if rates[0][h] < 0]
    if missing:
        raise WorkbookError(
            f"sheet 'arrivals': hours {', '.join(map(str, missing))} have no row; "
            "give one row per hour 0..23"
        )
    if sum(map(sum, rates)) <= 0:
        raise WorkbookError("sheet 'arrivals': every rate is 0, so no specimen ever arrives")
    return tuple(tuple(day) for day in rates)


def _read_resources(sheet: _Sheet) -> dict[str, Resource]:
    sheet.require("name", "capacity")
    resources: dict[str, Resource] = {}
    for row in sheet:
        name_cell = sheet.cell(row, "name")
        name = _text(name_cell, what="resource name")
        if name in resources:
            raise WorkbookError(f"{name_cell.where}: resource {name!r} appears twice")
        capacity = _integer(sheet.cell(row, "capacity"), what="capacity", minimum=1)
        start_cell, end_cell = sheet.cell(row, "shift_start"), sheet.cell(row, "shift_end")
        start = (
            0.0
            if start_cell.value is None
            else _hour_of_day(start_cell.value, where=start_cell.where, what="shift_start")
        )
        end = (
            24.0
            if end_cell.value is None
            else _hour_of_day(end_cell.value, where=end_cell.where, what="shift_end")
        )
        if start == end:
            raise WorkbookError(f"{end_cell.where}: shift_end equals shift_start (an empty shift)")
        days_cell = sheet.cell(row, "days")
        try:
            days = clock.parse_days(_text(days_cell, what="days", default="all"))
        except ValueError as exc:
            raise WorkbookError(f"{days_cell.where}: {exc}") from None
        shift = clock.Shift(start=start % 24, end=end, days=days)
        resources[name] = Resource(name=name, capacity=capacity, shift=shift)
    if not resources:
        raise WorkbookError("sheet 'resources' has no rows")
    return resources


def _read_stations(sheet: _Sheet, resources: dict[str, Resource]) -> dict[str, Station]:
    sheet.require("name", "resource", "distribution", "p1")
    stations: dict[str, Station] = {}
    for row in sheet:
        name_cell = sheet.cell(row, "name")
        name = _text(name_cell, what="station name")
        if name in stations:
            raise WorkbookError(f"{name_cell.where}: station {name!r} appears twice")
        resource_cell = sheet.cell(row, "resource")
        resource = _text(resource_cell, what="resource")
        if resource not in resources:
            raise WorkbookError(
                f"{resource_cell.where}: resource {resource!r} is not on sheet 'resources' "
                f"(known: {', '.join(resources)})"
            )
        kind = _choice(
            sheet.cell(row, "kind"), what="kind", choices=("single", "batch"), default="single"
        )
        per = _choice(
            sheet.cell(row, "per"), what="per", choices=("specimen", "block"), default="specimen"
        )
        dist_cell = sheet.cell(row, "distribution")
        dist_kind = _choice(dist_cell, what="distribution", choices=distributions.KINDS)
        wanted = distributions.PARAMETERS[dist_kind]
        params = tuple(
            _number(sheet.cell(row, f"p{i + 1}"), what=f"p{i + 1} ({wanted[i]}, minutes)")
            for i in range(len(wanted))
        )
        try:
            duration = distributions.Distribution(kind=dist_kind, params=params)
        except distributions.DistributionError as exc:
            raise WorkbookError(f"{dist_cell.where} (station {name!r}): {exc}") from None
        batch_capacity = 0
        run_times: tuple[float, ...] = ()
        if kind == "batch":
            batch_capacity = _integer(
                sheet.cell(row, "batch_capacity"), what="batch_capacity", minimum=1
            )
            times_cell = sheet.cell(row, "run_times")
            if times_cell.value is not None:
                raw = times_cell.value
                parts = (
                    [raw] if not isinstance(raw, str) else [p for p in raw.split(",") if p.strip()]
                )
                run_times = tuple(
                    sorted(
                        _hour_of_day(p, where=times_cell.where, what="run_times") % 24
                        for p in parts
                    )
                )
        stations[name] = Station(
            name=name,
            resource=resource,
            kind=kind,
            per=per,
            duration=duration,
            batch_capacity=batch_capacity,
            run_times=run_times,
        )
    if not stations:
        raise WorkbookError("sheet 'stations' has no rows")
    for station in stations.values():
        sharing = [s.name for s in stations.values() if s.resource == station.resource]
        if station.kind == "batch" and len(sharing) > 1:
            raise WorkbookError(
                f"sheet 'stations': batch station {station.name!r} shares its machines "
                f"{station.resource!r} with {', '.join(n for n in sharing if n != station.name)}; "
                "give each batch station its own resource"
            )
    return stations


def _read_specimen_types(
    sheet: _Sheet, *, stations: dict[str, Station], priorities: tuple[str, ...]
) -> tuple[SpecimenType, ...]:
    sheet.require("name", "share", "priority", "route")
    types: list[SpecimenType] = []
    for row in sheet:
        name = _text(sheet.cell(row, "name"), what="specimen type name")
        share = _number(sheet.cell(row, "share"), what="share", minimum=0)
        priority_cell = sheet.cell(row, "priority")
        priority = _text(priority_cell, what="priority").lower()
        if priority not in priorities:
            raise WorkbookError(
                f"{priority_cell.where}: priority {priority!r} is not in config "
                f"priority_order ({', '.join(priorities)})"
            )
        low = _integer(sheet.cell(row, "blocks_min"), what="blocks_min", minimum=1, default=1)
        mode = _integer(sheet.cell(row, "blocks_mode"), what="blocks_mode", minimum=1, default=low)
        high = _integer(sheet.cell(row, "blocks_max"), what="blocks_max", minimum=1, default=mode)
        if not low <= mode <= high:
            raise WorkbookError(
                f"{sheet.cell(row, 'blocks_mode').where}: need blocks_min <= blocks_mode <= "
                f"blocks_max, got {low}, {mode}, {high}"
            )
        route_cell = sheet.cell(row, "route")
        route = tuple(s.strip() for s in _text(route_cell, what="route").split(",") if s.strip())
        unknown = [s for s in route if s not in stations]
        if unknown:
            raise WorkbookError(
                f"{route_cell.where}: route names station(s) {', '.join(map(repr, unknown))} "
                f"that are not on sheet 'stations' (known: {', '.join(stations)})"
            )
        if not route:
            raise WorkbookError(f"{route_cell.where}: route is empty")
        types.append(
            SpecimenType(
                name=name, share=share, priority=priority, blocks=(low, mode, high), route=route
            )
        )
    if sum(t.share for t in types) <= 0:
        raise WorkbookError("sheet 'specimen_types': shares add up to 0")
    return tuple(types)


def load(path: Path) -> LabModel:
    """Read ``path`` into a checked :class:`LabModel`; raise :class:`WorkbookError`."""
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except FileNotFoundError:
        raise WorkbookError(f"input workbook {path} does not exist") from None
    except (InvalidFileException, zipfile.BadZipFile, OSError, KeyError, ValueError) as exc:
        # What openpyxl raises for a file that is not an .xlsx (a CSV, a truncated copy...).
        raise WorkbookError(f"input workbook {path} is not a readable .xlsx file: {exc}") from None
    try:
        missing = [s for s in SHEETS if s not in book.sheetnames]
        if missing:
            raise WorkbookError(
                f"input workbook {path}: missing sheet(s) {', '.join(missing)} "
                f"(found: {', '.join(book.sheetnames)})"
            )
        sheets = {
            name: _Sheet(name, [tuple(r) for r in book[name].iter_rows(values_only=True)])
            for name in SHEETS
        }
    finally:
        book.close()
    config, config_text = _read_config(sheets["config"])
    priorities = tuple(
        p.strip().lower()
        for p in config_text.get("priority_order", "urgent,routine").split(",")
        if p.strip()
    )
    sim_hours = (
        _number(config["sim_hours"], what="sim_hours", minimum=0)
        if "sim_hours" in config
        else DEFAULT_SIM_HOURS
    )
    targets = {
        key.split(".", 1)[1]: _number(cell, what=key, minimum=0)
        for key, cell in config.items()
        if key.startswith("tat_target_hours.") and cell.value is not None
    }
    unknown_targets = sorted(set(targets) - set(priorities))
    if unknown_targets:
        raise WorkbookError(
            f"sheet 'config': tat_target_hours for unknown priority "
            f"{', '.join(unknown_targets)} (priority_order: {', '.join(priorities)})"
        )
    resources = _read_resources(sheets["resources"])
    stations = _read_stations(sheets["stations"], resources)
    return LabModel(
        arrival_rates=_read_arrivals(sheets["arrivals"]),
        specimen_types=_read_specimen_types(
            sheets["specimen_types"], stations=stations, priorities=priorities
        ),
        stations=stations,
        resources=resources,
        priorities=priorities,
        tat_targets=targets,
        sim_hours=sim_hours,
    )
