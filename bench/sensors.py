"""Sensor readings: MQTT publish → queryable point in InfluxDB, one sensor at QoS 1.

Runs the chart's sensor half on this machine as the tests do
(``dtpoc_local.sensors.stack``: Debian's Mosquitto with the chart's config and
password file, InfluxDB of the chart's version set up with the chart's
token, the real Telegraf on the rendered ``telegraf.conf`` of the ``light``
sensor) and measures two things:

- **throughput**: ``--count`` readings published back to back with QoS 1
  (each acknowledged by the broker), timed from the first publish until all
  of them are queryable in InfluxDB: readings/s end to end;
- **latency**: readings published at ``--rate`` per second for
  ``--seconds``; InfluxDB is polled (``--poll`` seconds) and each reading's
  latency is from its publish to the first poll that returns its point, so
  the figures include up to one poll interval. p50, p99 and max.

Telegraf batches: a point leaves at the next flush (``--flush-interval``,
the chart's default is 10 s) or when a batch of 1000 is full, so latency is
mostly the flush interval; ``--flush-interval 1s`` shows what remains.

Measured here (two shared cores, load average ~17): chart defaults (10 s/10 s)
167 readings/s, latency p50 15.4 s, p99 21.4 s at 50 readings/s; with 1 s/1 s
566 readings/s, p50 1.4 s, p99 2.5 s. The first run found Mosquitto's default
per-client queue (1,000) dropping the rest of a 5,000 burst: the chart now sets
``max_queued_messages`` (tests/sensors covers a 1,500 burst).

Run: ``uv run python -m bench.sensors [--count 5000] [--rate 50 --seconds 20]
[--interval 10s --flush-interval 10s]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from dtpoc_local import ports, waiting
from dtpoc_local.sensors import render as chart
from dtpoc_local.sensors import stack

TOPIC = "sensors/light/bench"
MEASUREMENT = "light_reading"
BASE_NS = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z: readings are keyed by their timestamp


def _stamp(index: int) -> str:
    """The original's timestamp format with millisecond precision, one ms per reading."""
    seconds, ms = divmod(index, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(BASE_NS // 10**9 + seconds)) + (
        f".{ms:03d}Z"
    )


def _payload(index: int, machine: str) -> str:
    return f'{{"timestamp": "{_stamp(index)}", "lux": {index}.5, "machine": "{machine}"}}'


def _client(run: stack.Stack) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    login = run.login()
    if login is not None:
        client.username_pw_set(*login)
    client.max_queued_messages_set(0)
    client.connect(ports.LOOPBACK, run.broker.port)
    client.loop_start()
    waiting.wait_for(client.is_connected, timeout=30, what="the bench client to connect")
    return client


def _count(run: stack.Stack, machine: str) -> int:
    """How many points of ``machine`` InfluxDB answers."""
    return run.influx.count(MEASUREMENT, field="lux", tag=("machine", machine))


def throughput(run: stack.Stack, count: int) -> float:
    """Readings/s from the first publish until ``count`` points are queryable."""
    client = _client(run)
    start = time.monotonic()
    infos = [client.publish(TOPIC, _payload(i, "burst"), qos=1) for i in range(count)]
    for info in infos:
        info.wait_for_publish(timeout=120)
    acked = time.monotonic()
    waiting.wait_for(
        lambda: _count(run, "burst") >= count,
        timeout=float(os.environ.get("BENCH_SENSORS_TIMEOUT", "300")),
        what=f"{count} points in InfluxDB",
        details=lambda: (
            f"{_count(run, 'burst')} arrived; broker:\n{run.broker.log()[-1500:]}\n"
            f"telegraf:\n{run.telegrafs['light'].log()[-1500:]}"
        ),
        interval=0.1,
        max_interval=0.1,
    )
    elapsed = time.monotonic() - start
    client.disconnect()
    client.loop_stop()
    print(f"  {count} readings acknowledged by the broker in {acked - start:.2f}s")
    return count / elapsed


def latency(run: stack.Stack, *, rate: float, seconds: float, poll: float) -> list[float]:
    """Per-reading seconds from publish to the first poll that returns its point."""
    client = _client(run)
    total = int(rate * seconds)
    offset = 10_000_000  # timestamps apart from the burst's
    published: dict[int, float] = {}
    seen: dict[int, float] = {}

    def publish_all() -> None:
        start = time.monotonic()
        for i in range(total):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            published[BASE_NS + (offset + i) * 10**6] = time.monotonic()
            client.publish(TOPIC, _payload(offset + i, "steady"), qos=1)

    publisher = threading.Thread(target=publish_all, daemon=True)
    publisher.start()
    deadline = time.monotonic() + seconds + 120
    while len(seen) < total and time.monotonic() < deadline:
        now = time.monotonic()
        for point in run.influx.points(MEASUREMENT):
            if point.tags.get("machine") == "steady" and point.time_ns not in seen:
                seen[point.time_ns] = now
        time.sleep(poll)
    publisher.join(timeout=5)
    client.disconnect()
    client.loop_stop()
    missing = total - len(seen)
    if missing:
        print(f"  {missing} of {total} readings never became queryable", file=sys.stderr)
    return sorted(seen[t] - published[t] for t in seen if t in published)


def _percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="readings of the burst")
    parser.add_argument("--rate", type=float, default=50.0, help="readings/s of the latency run")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the latency run")
    parser.add_argument("--poll", type=float, default=0.05, help="InfluxDB poll interval (s)")
    parser.add_argument("--interval", default="10s", help="telegraf.agent.interval")
    parser.add_argument("--flush-interval", default="10s", help="telegraf.agent.flushInterval")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dtpoc-bench-sensors-") as tmp:
        workdir = Path(tmp)
        values = stack.agent_values(
            workdir / "agent.yaml", interval=args.interval, flush_interval=args.flush_interval
        )
        light_only = workdir / "light.yaml"
        light_only.write_text(yaml.safe_dump({"telegraf": {"sensors": [_light_sensor()]}}))
        with stack.running([light_only, values], workdir=workdir) as run:
            print(
                f"one sensor (light), QoS 1, agent interval {args.interval}, "
                f"flush {args.flush_interval}"
            )
            rate = throughput(run, args.count)
            print(f"throughput: {rate:.0f} readings/s publish → queryable ({args.count} readings)")
            lat = latency(run, rate=args.rate, seconds=args.seconds, poll=args.poll)
            if lat:
                print(
                    f"latency at {args.rate:g}/s for {args.seconds:g}s ({len(lat)} readings): "
                    f"p50 {statistics.median(lat) * 1000:.0f} ms, "
                    f"p99 {_percentile(lat, 0.99) * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms"
                )
    return 0


def _light_sensor() -> dict[str, Any]:
    """The default values' ``light`` sensor (the bench runs one Telegraf)."""
    (light,) = [s for s in chart.merged_values()["telegraf"]["sensors"] if s["name"] == "light"]
    return dict(light)


if __name__ == "__main__":
    sys.exit(main())
