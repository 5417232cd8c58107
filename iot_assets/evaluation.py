"""`iot-assets evaluate`: replay labelled data through the real pipeline and score the anomaly log.

Two sources: (a) the simulator's injected anomalies across the fleet, and (b) the NAB
`ambient_temperature_system_failure` series replayed as one device's temperature channel.
Both go through raw batches on S3, bronze, silver, gold, the models and the anomaly log, exactly
as production hours do, as single-run backfills.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from iot_assets.simulator.fleet import METRICS

COMBINED = "combined"
METHODS = ("threshold", "zscore", "kmeans")
NAB_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nab"
NAB_DEVICE = "nab-ambient-0001"


@dataclass(frozen=True)
class Flag:
    device_id: str
    event_time: datetime
    method: str


def _runs(times: list[datetime], gap: timedelta) -> int:
    """How many groups consecutive times form when a gap larger than `gap` starts a new one."""
    runs, last = 0, None
    for t in sorted(times):
        if last is None or t - last > gap:
            runs += 1
        last = t
    return runs


def score(flags: list[Flag], events: dict[str, set[tuple[str, datetime]]], device_days: float,
          gap: timedelta) -> dict:
    """Point precision and recall, event recall, and false-alarm events per device-day, per method and combined.

    `events` maps an event id to its labelled (device, time) points. A flag on a labelled point is
    a true positive; the other flags, grouped per device into runs separated by more than `gap`,
    are false-alarm events.
    """
    labelled = set().union(*events.values()) if events else set()
    out = {}
    for method in (COMBINED, *METHODS):
        points = {(f.device_id, f.event_time) for f in flags if method == COMBINED or f.method == method}
        tp = points & labelled
        false = defaultdict(list)
        for device, t in points - labelled:
            false[device].append(t)
        false_events = sum(_runs(ts, gap) for ts in false.values())
        hit = sum(1 for pts in events.values() if pts & points)
        out[method] = {
            "precision": round(len(tp) / len(points), 4) if points else None,
            "recall": round(len(tp) / len(labelled), 4) if labelled else None,
            "event_recall": round(hit / len(events), 4) if events else None,
            "false_alarms_per_device_day": round(false_events / device_days, 4) if device_days else None,
            "flagged_points": len(points),
            "labelled_points": len(labelled),
            "events": len(events),
            "events_hit": hit,
        }
    return out


def _flags(spark, lake, start: datetime, end: datetime) -> list[Flag]:
    rows = lake.read_window(spark, "anomaly_log", "event_hour", start, end) \
        .select("device_id", "event_time", "method").distinct().collect()
    return [Flag(r["device_id"], r["event_time"].replace(tzinfo=None), r["method"]) for r in rows]


def evaluate_simulator(eval_hours: int = 6, end: datetime | None = None, progress=print) -> dict:
    from iot_assets.demo import materialize_hours
    from iot_assets.jobs import ANOMALY_DETECTION
    from iot_assets.partitions import HOUR, last_complete_hours
    from iot_assets.resources.config import resolved
    from iot_assets.simulator import simulate_hour

    last = end or last_complete_hours(1)[0]
    first_scored = last - HOUR * (eval_hours - 1)
    start = first_scored - HOUR * 24
    began = time.monotonic()
    progress(f"simulator: {resolved('raw_source').device_count} devices, history "
             f"{start:%Y-%m-%d %H:00} .. , scoring {eval_hours} hours to {last:%Y-%m-%d %H:00}")
    assert materialize_hours(start, last).success
    progress(f"  pipeline over {24 + eval_hours} hours done ({time.monotonic() - began:.0f} s)")
    assert materialize_hours(first_scored, last, include_registry=False, selection=ANOMALY_DETECTION).success
    progress(f"  models and anomaly log over {eval_hours} hours done ({time.monotonic() - began:.0f} s)")
    spark, lake, fleet = resolved("spark").session, resolved("lake"), resolved("raw_source").fleet
    events: dict[str, set] = defaultdict(set)
    hour = first_scored
    while hour <= last:
        for label in simulate_hour(hour, fleet).labels:
            events[label.event_id].add((label.device_id, datetime.strptime(label.event_time, "%Y-%m-%dT%H:%M:%S.%fZ")))
        hour += HOUR
    flags = _flags(spark, lake, first_scored, last + HOUR)
    return score(flags, dict(events), fleet.device_count * eval_hours / 24, gap=timedelta(minutes=10))


def nab_records(path: Path, shift: timedelta) -> dict[datetime, list[dict]]:
    """The NAB series as one device's readings, by hour; other channels hold nominal constants."""
    by_hour: dict[datetime, list[dict]] = defaultdict(list)
    with path.open() as f:
        for row in csv.DictReader(f):
            t = datetime.strptime(row["timestamp"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc) + shift
            by_hour[t.replace(minute=0, second=0)].append({
                "device_id": NAB_DEVICE, "timestamp": t.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "temperature": round((float(row["value"]) - 32) * 5 / 9, 4),   # °F -> °C
                "humidity": 45.0, "pressure": 2.0, "vibration": 1.0, "battery_level": 90.0,
                "signal_strength": -60, "status": "normal"})
    return by_hour


__all__ = ["score", "evaluate_simulator", "nab_records", "Flag", "METRICS", "json", "os"]
