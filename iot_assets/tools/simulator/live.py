"""`iot-assets simulate`: the simulated fleet sending its readings to Kinesis as they happen.

The records are exactly the simulator's (same fields, injected anomalies and malformed share),
each sent at its reading time. A Kinesis-sourced hour therefore holds what `simulate_hour` gives
for the part of that hour the producer was running, and the end-to-end checks that hold for the
simulator hold for live traffic too.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from iot_assets import settings
from iot_assets.resources.kinesis import put_all
from iot_assets.tools.simulator.fleet import FleetConfig, SimulatedHour, simulate_hour


def records_between(
    fleet: FleetConfig, start: float, end: float, cache: dict[int, SimulatedHour] | None = None
) -> list[tuple[float, str, str]]:
    """The fleet's records sent in [start, end) epoch seconds, as (send time, text, device), in order.

    `cache` keeps the simulated hours between calls; only the hours still needed are kept.
    """
    cache = {} if cache is None else cache
    out = []
    first = int(start // 3600) * 3600
    for hour in range(first, int(end) + 1, 3600):
        if hour >= end:
            break
        if hour not in cache:
            cache[hour] = simulate_hour(datetime.fromtimestamp(hour, tz=UTC), fleet)
        sim = cache[hour]
        out.extend(
            (t, text, key)
            for text, key, t in zip(sim.records, sim.partition_keys, sim.send_times, strict=True)
            if start <= t < end
        )
    for stale in [h for h in cache if h < first]:
        del cache[stale]
    out.sort(key=lambda r: r[0])
    return out


@dataclass
class ProducerStats:
    started: float
    stopped: float = 0.0
    records: int = 0
    puts: int = 0
    resent: int = 0


def produce(
    client,
    stream: str,
    fleet: FleetConfig,
    duration: float | None,
    stop: threading.Event,
    tick: float = 1.0,
    clock: Callable[[], float] = time.time,
    report: Callable[[ProducerStats], None] | None = None,
) -> ProducerStats:
    """Send the fleet's readings as their times come, until `duration` seconds pass or `stop` is set.

    `report` gets the running totals after every tick (it decides how often to show them).
    """
    began = clock()
    deadline = began + duration if duration else float("inf")
    stats = ProducerStats(started=began)
    cache: dict[int, SimulatedHour] = {}
    sent_until = began
    while True:
        now = min(clock(), deadline)
        due = records_between(fleet, sent_until, now, cache)
        if due:
            _, resent = put_all(client, stream, [text.encode() for _, text, _ in due], [key for _, _, key in due])
            stats.records += len(due)
            stats.puts += 1
            stats.resent += resent
        sent_until = now
        if report:
            report(stats)
        if now >= deadline or stop.wait(tick):
            break
    stats.stopped = clock()
    return stats


def land_hours(s3, bucket: str, prefix: str, fleet: FleetConfig, hours: list[datetime]) -> list[str]:
    """Land whole simulated hours as files, the way a Firehose delivery stream would (`YYYY/MM/DD/HH/`).

    The same hour always gives the same bytes, so landing it again changes nothing downstream.
    """
    keys = []
    for hour in hours:
        key = f"{settings.validate_prefix(prefix)}/{hour:%Y/%m/%d/%H}/iot-assets-simulate-{hour:%Y-%m-%d-%H}.jsonl.gz"
        body = gzip.compress("".join(r + "\n" for r in simulate_hour(hour, fleet).records).encode(), mtime=0)
        s3.put_object(Bucket=settings.validate_bucket(bucket), Key=key, Body=body)
        keys.append(key)
    return keys
