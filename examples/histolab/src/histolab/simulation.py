"""The lab as a SimPy model: specimens flow through stations along their route.

Time is in hours from Monday 00:00. Specimens arrive by a Poisson process
whose rate changes by hour of day and weekday. At a ``single`` station a
specimen waits (by priority, then first come) for one unit of the station's
resource, during that resource's shift, and holds it for the service time
(per specimen or summed over its blocks). At a ``batch`` station specimens
wait for a machine run: tissue processors start at scheduled times, stainers
as soon as one is free; a run takes as many waiting specimens as fit, most
urgent first.

Every number that people read comes out of :class:`Result`; nothing here
formats or writes anything.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import simpy

from histolab import clock
from histolab import workbook as wb

Process = Generator[simpy.Event, Any, None]

_EPSILON = 1e-9
"""Nudge past a run time just used, so a schedule never starts twice at once."""


@dataclass
class Specimen:
    """One specimen and what happened to it."""

    number: int
    kind: wb.SpecimenType
    rank: int
    blocks: int
    arrived: float
    completed: float | None = None


class Level:
    """A count that changes over time, and its time-weighted mean and maximum."""

    def __init__(self) -> None:
        self.level = 0
        self.maximum = 0
        self._area = 0.0
        self._since = 0.0

    def change(self, now: float, delta: int) -> None:
        self._area += self.level * (now - self._since)
        self._since = now
        self.level += delta
        self.maximum = max(self.maximum, self.level)

    def mean(self, now: float) -> float:
        area = self._area + self.level * (now - self._since)
        return area / now if now > 0 else 0.0


@dataclass
class StationStats:
    """What one station observed."""

    queue: Level = field(default_factory=Level)
    busy_hours: float = 0.0
    waits: int = 0
    wait_hours: float = 0.0
    served: int = 0
    runs: int = 0
    run_load: int = 0


@dataclass
class Result:
    """Raw observations of one run; :mod:`histolab.kpis` turns them into KPIs."""

    model: wb.LabModel
    sim_hours: float
    specimens: list[Specimen]
    wip: Level
    stations: dict[str, StationStats]
    resource_busy_hours: dict[str, float]


_Waiting = tuple[int, int, Specimen, simpy.Event, float]
"""A specimen queued for a batch run: (priority rank, order, specimen, done, since)."""


class _BatchStation:
    """Machines that process many specimens per run (tissue processors, stainers)."""

    def __init__(
        self,
        *,
        env: simpy.Environment,
        station: wb.Station,
        resource: wb.Resource,
        stats: StationStats,
        rng: random.Random,
        sim_hours: float,
    ) -> None:
        self.env = env
        self.sim_hours = sim_hours
        self.station = station
        self.resource = resource
        self.stats = stats
        self.rng = rng
        self.free = resource.capacity
        self.waiting: list[_Waiting] = []
        self._order = itertools.count()
        self._wakeup = env.event()
        env.process(self._scheduled() if station.run_times else self._on_demand())

    def join(self, specimen: Specimen) -> simpy.Event:
        """Queue ``specimen`` for the next run; the event fires when its run ends."""
        done = self.env.event()
        bisect.insort(
            self.waiting, (specimen.rank, next(self._order), specimen, done, self.env.now)
        )
        self.stats.queue.change(self.env.now, +1)
        self._wake()
        return done

    def _units(self, specimen: Specimen) -> int:
        return specimen.blocks if self.station.per == "block" else 1

    def _wake(self) -> None:
        if not self._wakeup.triggered:
            self._wakeup.succeed()

    def _start_run(self) -> None:
        load = 0
        taken: list[_Waiting] = []
        kept: list[_Waiting] = []
        for entry in self.waiting:
            units = self._units(entry[2])
            if load + units <= self.station.batch_capacity or (not taken and not load):
                taken.append(entry)
                load += units
            else:
                kept.append(entry)
        self.waiting = kept
        now = self.env.now
        for entry in taken:
            self.stats.queue.change(now, -1)
            self.stats.waits += 1
            self.stats.wait_hours += now - entry[4]
        self.stats.runs += 1
        self.stats.run_load += load
        self.free -= 1
        self.env.process(self._run([entry[3] for entry in taken]))

    def _run(self, finished: list[simpy.Event]) -> Process:
        hours = self.station.duration.sample(self.rng) / 60.0
        self.stats.busy_hours += min(hours, self.sim_hours - self.env.now)
        yield self.env.timeout(hours)
        self.stats.served += len(finished)
        self.free += 1
        for event in finished:
            event.succeed()
        self._wake()

    def _scheduled(self) -> Process:
        """Runs start at the station's run times on the resource's working days."""
        days = self.resource.shift.days
        while True:
            start = clock.next_run_time(self.env.now, times=self.station.run_times, days=days)
            if start > self.env.now:
                yield self.env.timeout(start - self.env.now)
            while self.waiting and self.free > 0:
                self._start_run()
            yield self.env.timeout(_EPSILON)

    def _on_demand(self) -> Process:
        """A run starts whenever specimens wait, a machine is free and staff are on shift."""
        shift = self.resource.shift
        while True:
            if self.waiting and self.free > 0:
                on = shift.next_on(self.env.now)
                if on > self.env.now:
                    yield self.env.timeout(on - self.env.now)
                    continue
                self._start_run()
                continue
            self._wakeup = self.env.event()
            yield self._wakeup


class _Lab:
    def __init__(self, model: wb.LabModel, *, rng: random.Random, sim_hours: float) -> None:
        self.model = model
        self.rng = rng
        self.sim_hours = sim_hours
        self.env = simpy.Environment()
        self.stats = {name: StationStats() for name in model.stations}
        self.resource_busy = dict.fromkeys(model.resources, 0.0)
        self.wip = Level()
        self.specimens: list[Specimen] = []
        self.staff = {
            name: simpy.PriorityResource(self.env, capacity=resource.capacity)
            for name, resource in model.resources.items()
        }
        self.batches = {
            station.name: _BatchStation(
                env=self.env,
                station=station,
                resource=model.resources[station.resource],
                stats=self.stats[station.name],
                rng=rng,
                sim_hours=sim_hours,
            )
            for station in model.stations.values()
            if station.kind == "batch"
        }
        self._ranks = {p: i for i, p in enumerate(model.priorities)}
        self._kinds = list(model.specimen_types)
        self._cum_shares = list(itertools.accumulate(t.share for t in self._kinds))

    def _next_arrival(self, t: float) -> float:
        """Next arrival after ``t``: exponential gaps, rate constant within each hour.

        Memorylessness makes "draw a gap; if it crosses the hour boundary,
        restart at the boundary with the new rate" exact.
        """
        rates = self.model.arrival_rates
        while t < self.sim_hours:
            hour_end = math.floor(t) + 1.0
            rate = rates[clock.weekday(t)][int(clock.hour_of_day(t))]
            if rate > 0:
                gap = self.rng.expovariate(rate)
                if t + gap < hour_end:
                    return t + gap
            t = hour_end
        return math.inf

    def arrivals(self) -> Process:
        t = 0.0
        for number in itertools.count():
            t = self._next_arrival(t)
            if t >= self.sim_hours:
                return
            yield self.env.timeout(t - self.env.now)
            kind = self.rng.choices(self._kinds, cum_weights=self._cum_shares)[0]
            low, mode, high = kind.blocks
            blocks = low if low == high else round(self.rng.triangular(low, high, mode))
            specimen = Specimen(
                number=number,
                kind=kind,
                rank=self._ranks[kind.priority],
                blocks=min(high, max(low, blocks)),
                arrived=self.env.now,
            )
            self.specimens.append(specimen)
            self.env.process(self.flow(specimen))

    def flow(self, specimen: Specimen) -> Process:
        self.wip.change(self.env.now, +1)
        for name in specimen.kind.route:
            batch = self.batches.get(name)
            if batch is not None:
                yield batch.join(specimen)
            else:
                yield from self.visit(specimen, self.model.stations[name])
        specimen.completed = self.env.now
        self.wip.change(self.env.now, -1)

    def visit(self, specimen: Specimen, station: wb.Station) -> Process:
        """Wait for a unit of the station's resource on shift, then work on the specimen.

        A request granted outside the shift (the shift ended while it
        queued) is given back and made again when the shift starts, so the
        queue order at the start of a shift is priority, then arrival.
        """
        stats = self.stats[station.name]
        resource = self.model.resources[station.resource]
        staff = self.staff[station.resource]
        entered = self.env.now
        stats.queue.change(entered, +1)
        while True:
            on = resource.shift.next_on(self.env.now)
            if on > self.env.now:
                yield self.env.timeout(on - self.env.now)
            request = staff.request(priority=specimen.rank)
            yield request
            if resource.shift.next_on(self.env.now) <= self.env.now:
                break
            staff.release(request)
        now = self.env.now
        stats.queue.change(now, -1)
        stats.waits += 1
        stats.wait_hours += now - entered
        units = specimen.blocks if station.per == "block" else 1
        hours = sum(station.duration.sample(self.rng) for _ in range(units)) / 60.0
        # Busy time is booked when work starts, cut at the end of the run, so
        # utilisation counts work in progress and never exceeds 1.
        booked = min(hours, self.sim_hours - now)
        stats.busy_hours += booked
        self.resource_busy[station.resource] += booked
        yield self.env.timeout(hours)
        staff.release(request)
        stats.served += 1

    def run(self) -> Result:
        self.env.process(self.arrivals())
        self.env.run(until=self.sim_hours)
        return Result(
            model=self.model,
            sim_hours=self.sim_hours,
            specimens=self.specimens,
            wip=self.wip,
            stations=self.stats,
            resource_busy_hours={
                **self.resource_busy,
                **{
                    self.model.stations[name].resource: stats.busy_hours
                    for name, stats in self.stats.items()
                    if self.model.stations[name].kind == "batch"
                },
            },
        )


def simulate(model: wb.LabModel, *, sim_hours: float, seed: int) -> Result:
    """Run the lab for ``sim_hours`` with a generator seeded by ``seed``.

    The same model, hours and seed give the same result, bit for bit.
    """
    if sim_hours <= 0:
        raise ValueError(f"sim_hours must be > 0, got {sim_hours}")
    rng = random.Random(seed)  # noqa: S311 - a simulation stream, reproducible by design
    return _Lab(model, rng=rng, sim_hours=sim_hours).run()
