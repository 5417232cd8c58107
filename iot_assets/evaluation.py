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
ANY = "any_method"
METHODS = ("threshold", "zscore", "kmeans")


@dataclass(frozen=True)
class Flag:
    device_id: str
    event_time: datetime
    method: str
    confirmed: bool = True


def _selects(method: str, flag: Flag) -> bool:
    if method == COMBINED:
        return flag.confirmed
    return method == ANY or flag.method == method


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
    """Point precision and recall, event recall, and false-alarm events per device-day: per method,
    for the combined verdict (`confirmed` readings) and for any method's flag.

    `events` maps an event id to its labelled (device, time) points. A flag on a labelled point is
    a true positive; the other flags, grouped per device into runs separated by more than `gap`,
    are false-alarm events.
    """
    labelled = set().union(*events.values()) if events else set()
    out = {}
    for method in (COMBINED, *METHODS, ANY):
        points = {(f.device_id, f.event_time) for f in flags if _selects(method, f)}
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
        .select("device_id", "event_time", "method", "confirmed").distinct().collect()
    return [Flag(r["device_id"], r["event_time"].replace(tzinfo=None), r["method"], r["confirmed"]) for r in rows]


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


def nab_readings(path: Path) -> list[tuple[datetime, float]]:
    """The NAB series as (time, °C): NAB's values are °F."""
    with path.open() as f:
        return [(datetime.strptime(row["timestamp"], "%Y-%m-%d %H:%M:%S"), (float(row["value"]) - 32) * 5 / 9)
                for row in csv.DictReader(f)]


def compress(t: datetime, origin: datetime, speedup: int) -> datetime:
    """Replay time of a series time: `speedup` times faster than real time, from `origin`."""
    return origin + (t - origin) / speedup


def nab_batches(readings: list[tuple[datetime, float]], origin: datetime, speedup: int) -> dict[datetime, list[bytes]]:
    """One device's raw records, by replay hour. The other channels, which NAB does not have, hold
    nominal constants."""
    by_hour: dict[datetime, list[bytes]] = defaultdict(list)
    for t, celsius in readings:
        r = compress(t, origin, speedup)
        by_hour[r.replace(minute=0, second=0, microsecond=0, tzinfo=timezone.utc)].append(json.dumps({
            "device_id": NAB_DEVICE, "timestamp": r.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "temperature": round(celsius, 4), "humidity": 45.0, "pressure": 2.0, "vibration": 1.0,
            "battery_level": 90.0, "signal_strength": -60, "status": "normal"}).encode())
    return dict(by_hour)


def evaluate_nab(nab_dir: Path | None = None, speedup: int = 60, progress=print) -> dict:
    """Replay NAB through raw batches on S3 and every layer after, then score against its windows.

    NAB's series holds one reading an hour for 329 days. It is replayed `speedup` times faster
    than real time (by default each hour becomes a minute), which gives the fleet's usual shape of
    60 readings an hour, a 24-hour trailing window of 60 days of the series, and 132 hourly
    partitions instead of 7,888 (a real-time replay writes ~8,000 hourly Delta partitions per
    table: over an hour on the local endpoint). Windows are mapped the same way; false alarms are
    counted per day of the series, and flags closer than 3 series hours are one false-alarm event.
    """
    from dagster import AssetSelection

    from iot_assets.assets.models import AnomalyModelConfig
    from iot_assets.assets.registry import REFERENCE_KEY
    from iot_assets.definitions import defs
    from iot_assets.demo import materialize_hours
    from iot_assets.jobs import ANOMALY_DETECTION, HOURLY_PIPELINE
    from iot_assets.partitions import HOUR
    from iot_assets.progress import Progress
    from iot_assets.resources.config import resolved
    from iot_assets import settings
    from iot_assets.resources.io_managers import RawBatch, S3KinesisRawIOManager

    nab_dir = nab_dir or default_nab_dir()
    readings = nab_readings(nab_dir / NAB_FILE)
    origin = min(t for t, _ in readings).replace(minute=0, second=0)
    windows = [(compress(datetime.strptime(a[:19], "%Y-%m-%d %H:%M:%S"), origin, speedup),
                compress(datetime.strptime(b[:19], "%Y-%m-%d %H:%M:%S"), origin, speedup))
               for a, b in json.loads((nab_dir / "anomaly_windows.json").read_text())[NAB_FILE]]
    batches = nab_batches(readings, origin, speedup)
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
    stored = Progress("nab replay to S3", total=len(hours), unit="raw batches")
    for done, h in enumerate(hours, 1):
        raw_io.store(RawBatch(hour=h, source="replay", payloads=batches[h], partition_keys=[NAB_DEVICE] * len(batches[h])))
        stored.update(done=done, records=stored.records + len(batches[h]), force=done == len(hours))
    progress(f"nab: {len(readings)} readings ({min(readings)[0]:%Y-%m-%d} .. {max(readings)[0]:%Y-%m-%d}) replayed "
             f"{speedup}x as {len(hours)} hourly raw batches on S3 ({time.monotonic() - began:.0f} s)")
    no_raw = HOURLY_PIPELINE - AssetSelection.assets("raw_sensor_batches")
    assert materialize_hours(hours[0], hours[-1], selection=no_raw).success
    progress(f"  nab: bronze, silver and gold done ({time.monotonic() - began:.0f} s)")
    per_day = 24 * speedup   # readings in a 24-hour trailing window
    cfg = AnomalyModelConfig(min_training_rows=min(120, per_day // 2), min_baseline_readings=min(30, per_day // 2))
    assert materialize_hours(hours[0], hours[-1], include_registry=False, selection=ANOMALY_DETECTION,
                             resources={**defs.resources, "anomaly_config": cfg}).success
    progress(f"  nab: models and anomaly log done ({time.monotonic() - began:.0f} s)")
    spark = resolved("spark").session
    flags = [f for f in _flags(spark, lake, hours[0], hours[-1] + HOUR) if f.device_id == NAB_DEVICE]
    points = {compress(t, origin, speedup) for t, _ in readings}
    events = {f"window-{i}": {(NAB_DEVICE, t) for t in points if a <= t <= b} for i, (a, b) in enumerate(windows)}
    days = (max(readings)[0] - min(readings)[0]).total_seconds() / 86400
    result = score(flags, events, device_days=days, gap=timedelta(hours=3) / speedup)
    result["replay"] = {"speedup": speedup, "readings": len(readings), "partitions": len(hours), "series_days": round(days, 1),
                        "windows": [[a.isoformat(), b.isoformat()] for a, b in windows]}
    return result


def print_table(results: dict) -> None:
    print(f"\n{'source':10} {'method':10} {'precision':>9} {'recall':>7} {'event_recall':>12} {'false_alarms/dev-day':>20}")
    for source, by_method in results.items():
        for method, m in by_method.items():
            if not isinstance(m, dict) or "precision" not in m:
                continue
            fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
            print(f"{source:10} {method:10} {fmt(m['precision']):>9} {fmt(m['recall']):>7} "
                  f"{fmt(m['event_recall']):>12} {fmt(m['false_alarms_per_device_day']):>20}")

