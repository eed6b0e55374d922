"""Key performance indicators of one run, as the JSON document a replica writes.

The document says what was run (seed, replica, hours, the workbook's
sha256) next to what came out, so a number in a report can always be traced
back to the inputs that produced it. Times are in hours; every ratio is in
[0, 1]. Nothing here reads the clock: the same run gives the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from histolab import clock, simulation

SCHEMA = "dtpoc.histolab.kpis/v1"
PERCENTILES = (50, 90, 95)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation (NumPy's default)."""
    if not sorted_values:
        return math.nan
    position = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def _round(value: float, digits: int = 4) -> float | None:
    """JSON has no NaN: an undefined statistic (no samples) becomes null."""
    return None if math.isnan(value) else round(value, digits)


def summarise(values: Sequence[float]) -> dict[str, Any]:
    """Count, mean, p50/p90/p95 and max of turnaround times in hours."""
    ordered = sorted(values)
    summary: dict[str, Any] = {
        "count": len(ordered),
        "mean": _round(sum(ordered) / len(ordered)) if ordered else None,
    }
    for q in PERCENTILES:
        summary[f"p{q}"] = _round(percentile(ordered, q))
    summary["max"] = _round(ordered[-1]) if ordered else None
    return summary


def build(
    result: simulation.Result,
    *,
    seed: int,
    seed_base: int,
    replica_index: int,
    input_path: str,
    input_sha256: str,
) -> dict[str, Any]:
    """The KPI document of ``result``."""
    model = result.model
    hours = result.sim_hours
    specimens = result.specimens
    done = [s for s in specimens if s.completed is not None]
    tat = [s.completed - s.arrived for s in done if s.completed is not None]

    by_priority: dict[str, Any] = {}
    within_target: dict[str, Any] = {}
    for priority in model.priorities:
        times = [
            s.completed - s.arrived
            for s in done
            if s.kind.priority == priority and s.completed is not None
        ]
        by_priority[priority] = summarise(times)
        target = model.tat_targets.get(priority)
        if target is not None:
            met = sum(1 for t in times if t <= target)
            within_target[priority] = {
                "target_hours": target,
                "completed": len(times),
                "share_within_target": _round(met / len(times)) if times else None,
            }

    days = max(1, math.ceil(hours / clock.HOURS_PER_DAY))
    per_day = [0] * days
    for s in done:
        if s.completed is not None:
            per_day[min(days - 1, int(s.completed // clock.HOURS_PER_DAY))] += 1

    stations: dict[str, Any] = {}
    queues: dict[str, Any] = {}
    for name, stats in result.stations.items():
        station = model.stations[name]
        capacity = model.resources[station.resource].capacity
        entry: dict[str, Any] = {
            "resource": station.resource,
            "kind": station.kind,
            "utilisation": _round(stats.busy_hours / (capacity * hours)),
            "busy_hours": _round(stats.busy_hours, 2),
            "served": stats.served,
        }
        if station.kind == "batch":
            entry["runs"] = stats.runs
            entry["mean_batch_fill"] = (
                _round(stats.run_load / (stats.runs * station.batch_capacity))
                if stats.runs
                else None
            )
        stations[name] = entry
        queues[name] = {
            "mean_length": _round(stats.queue.mean(hours)),
            "max_length": stats.queue.maximum,
            "at_end": stats.queue.level,
            "mean_wait_hours": _round(stats.wait_hours / stats.waits) if stats.waits else None,
        }

    resources: dict[str, Any] = {}
    for name, resource in model.resources.items():
        busy = result.resource_busy_hours.get(name, 0.0)
        on_shift = resource.capacity * resource.shift.hours_between(0.0, hours)
        resources[name] = {
            "capacity": resource.capacity,
            "utilisation": _round(busy / (resource.capacity * hours)),
            # Work that runs past the end of a shift counts, so this may pass 1.
            "utilisation_of_shift": _round(busy / on_shift) if on_shift > 0 else None,
            "busy_hours": _round(busy, 2),
        }

    types: dict[str, Any] = {}
    for kind in model.specimen_types:
        of_kind = [s for s in specimens if s.kind is kind]
        types[kind.name] = {
            "priority": kind.priority,
            "arrived": len(of_kind),
            "completed": sum(1 for s in of_kind if s.completed is not None),
        }

    return {
        "schema": SCHEMA,
        "replica_index": replica_index,
        "seed": seed,
        "seed_base": seed_base,
        "sim_hours": hours,
        "input": {"path": input_path, "sha256": input_sha256},
        "specimens": {
            "arrived": len(specimens),
            "completed": len(done),
            "wip_at_end": result.wip.level,
            "by_type": types,
        },
        "turnaround_hours": {"overall": summarise(tat), "by_priority": by_priority},
        "within_target": within_target,
        "throughput": {
            "per_day": per_day,
            "mean_per_day": _round(len(done) / (hours / clock.HOURS_PER_DAY)),
        },
        "wip": {
            "mean": _round(result.wip.mean(hours)),
            "max": result.wip.maximum,
            "at_end": result.wip.level,
        },
        "queues": queues,
        "utilisation": {"stations": stations, "resources": resources},
    }
