"""`iot-assets evaluate`: replay labelled data through the real pipeline and score the anomaly log.

The simulator's injected anomalies across the fleet go through raw batches on S3, bronze,
silver, gold, the models and the anomaly log, exactly as production hours do, as single-run
backfills; the anomaly log is then scored against the simulator's labels.
"""

from __future__ import annotations

import csv
import json
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path


COMBINED = "combined"
METHODS = ("threshold", "zscore", "kmeans")


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


NAB_FILE = "ambient_temperature_system_failure.csv"
NAB_DEVICE = "nab-ambient-0001"


def default_nab_dir() -> Path:
    return Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nab"


def nab_batches(path: Path) -> dict[datetime, list[bytes]]:
    """The NAB series as one device's readings, by hour. Temperature is converted from °F to °C;
    the other channels, which NAB does not have, hold nominal constants."""
    by_hour: dict[datetime, list[bytes]] = defaultdict(list)
    with path.open() as f:
        for row in csv.DictReader(f):
            t = datetime.strptime(row["timestamp"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
            by_hour[t.replace(minute=0, second=0)].append(json.dumps({
                "device_id": NAB_DEVICE, "timestamp": t.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "temperature": round((float(row["value"]) - 32) * 5 / 9, 4),
                "humidity": 45.0, "pressure": 2.0, "vibration": 1.0, "battery_level": 90.0,
                "signal_strength": -60, "status": "normal"}).encode())
    return dict(by_hour)


def evaluate_nab(nab_dir: Path | None = None, progress=print) -> dict:
    """Replay NAB through raw batches on S3 and every layer after, then score against its windows.

    NAB is hourly (one reading an hour), so the minimum training rows and baseline readings are
    lowered to 20 for this replay: 24 hours hold 24 readings, not 1,440.
    """
    from dagster import AssetSelection

    from iot_assets.assets.models import AnomalyModelConfig
    from iot_assets.assets.registry import REFERENCE_KEY
    from iot_assets.definitions import defs
    from iot_assets.demo import materialize_hours
    from iot_assets.jobs import ANOMALY_DETECTION, HOURLY_PIPELINE
    from iot_assets.resources.config import resolved
    from iot_assets import settings
    from iot_assets.resources.io_managers import RawBatch, S3KinesisRawIOManager

    nab_dir = nab_dir or default_nab_dir()
    windows = [(datetime.strptime(a[:19], "%Y-%m-%d %H:%M:%S"), datetime.strptime(b[:19], "%Y-%m-%d %H:%M:%S"))
               for a, b in json.loads((nab_dir / "anomaly_windows.json").read_text())[NAB_FILE]]
    batches = nab_batches(nab_dir / NAB_FILE)
    # NAB has gaps; an hour in which nothing arrived is an empty raw batch, not a missing one.
    first, last = min(batches), max(batches)
    hours = [first + timedelta(hours=i) for i in range(int((last - first).total_seconds() // 3600) + 1)]
    batches = {h: batches.get(h, []) for h in hours}
    began = time.monotonic()
    aws, lake = resolved("aws"), resolved("lake")
    raw_io = S3KinesisRawIOManager(aws=aws, bucket=lake.bucket, stream=settings.get("IOT_KINESIS_STREAM"))
    aws.s3.put_object(Bucket=lake.bucket, Key=REFERENCE_KEY, Body=json.dumps({
        "device_id": NAB_DEVICE, "device_name": "nab-ambient-temperature", "site": "nab-office",
        "device_type": "ambient-sensor", "latitude": 0.0, "longitude": 0.0}).encode() + b"\n")
    for i, h in enumerate(hours):
        raw_io.store(RawBatch(hour=h, source="replay", payloads=batches[h], partition_keys=[NAB_DEVICE] * len(batches[h])))
        if i % 1000 == 0:
            progress(f"  nab: raw batches {i}/{len(hours)} ({time.monotonic() - began:.0f} s)")
    progress(f"nab: {len(hours)} hourly raw batches on S3, {hours[0]:%Y-%m-%d} .. {hours[-1]:%Y-%m-%d} "
             f"({time.monotonic() - began:.0f} s)")
    no_raw = HOURLY_PIPELINE - AssetSelection.assets("raw_sensor_batches")
    assert materialize_hours(hours[0], hours[-1], selection=no_raw).success
    progress(f"  nab: bronze, silver and gold done ({time.monotonic() - began:.0f} s)")
    hourly_cfg = AnomalyModelConfig(min_training_rows=20, min_baseline_readings=20)
    assert materialize_hours(hours[0], hours[-1], include_registry=False, selection=ANOMALY_DETECTION,
                             resources={**defs.resources, "anomaly_config": hourly_cfg}).success
    progress(f"  nab: models and anomaly log done ({time.monotonic() - began:.0f} s)")
    spark = resolved("spark").session
    flags = [f for f in _flags(spark, lake, hours[0], hours[-1] + timedelta(hours=1)) if f.device_id == NAB_DEVICE]
    points = {datetime.strptime(r.decode().split('"timestamp": "')[1][:19], "%Y-%m-%dT%H:%M:%S")
              for h in hours for r in batches[h]}
    events = {f"window-{i}": {(NAB_DEVICE, t) for t in points if a <= t <= b} for i, (a, b) in enumerate(windows)}
    days = (hours[-1] - hours[0]).total_seconds() / 86400
    return score(flags, events, device_days=days, gap=timedelta(hours=3))


def print_table(results: dict) -> None:
    print(f"\n{'source':10} {'method':10} {'precision':>9} {'recall':>7} {'event_recall':>12} {'false_alarms/dev-day':>20}")
    for source, by_method in results.items():
        for method, m in by_method.items():
            if not isinstance(m, dict) or "precision" not in m:
                continue
            fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
            print(f"{source:10} {method:10} {fmt(m['precision']):>9} {fmt(m['recall']):>7} "
                  f"{fmt(m['event_recall']):>12} {fmt(m['false_alarms_per_device_day']):>20}")

