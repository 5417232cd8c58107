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
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

from iot_assets.assets.verdicts import ANOMALY_LOG, INCIDENTS

COMBINED = "combined"
ANY = "any_method"
METHODS = ("threshold", "zscore", "kmeans", "shift")


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


def score(flags: list[Flag], events: dict[str, set[tuple[str, datetime]]], device_days: float, gap: timedelta) -> dict:
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


# The simulator's sustained anomalies: the incident target asks them to be covered for their
# whole duration, not only found.
SUSTAINED_KINDS = ("level_shift", "drift", "stuck")


def incident_scores(
    spans: list[tuple[str, datetime, datetime]],
    events: dict[str, set[tuple[str, datetime]]],
    kinds: dict[str, str] | None = None,
) -> dict:
    """Incidents against labelled events. `spans`: (device, opened_at, last confirmed reading) per
    incident. An incident is true when a labelled point of its device lies in its span; an event is
    found when one of its points does; coverage is the share of labelled points inside incidents,
    also per event kind (`kinds`: event id -> kind) and over the SUSTAINED_KINDS together."""
    by_device: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for device, a, b in spans:
        by_device[device].append((a, b))
    inside = lambda d, t: any(a <= t <= b for a, b in by_device.get(d, ()))  # noqa: E731
    labelled = defaultdict(list)
    for pts in events.values():
        for d, t in pts:
            labelled[d].append(t)
    true = sum(1 for d, a, b in spans if any(a <= t <= b for t in labelled.get(d, ())))
    points = [p for pts in events.values() for p in pts]
    by_kind: dict[str, list[bool]] = defaultdict(list)
    for event, pts in events.items():
        kind = (kinds or {}).get(event)
        if kind:
            by_kind[kind] += [inside(d, t) for d, t in pts]
    coverage = {k: round(sum(v) / len(v), 4) for k, v in sorted(by_kind.items())}
    sustained = [hit for k in SUSTAINED_KINDS for hit in by_kind.get(k, ())]
    extra = {"coverage_by_kind": coverage} if kinds else {}
    if sustained:
        extra["sustained_points_in_incidents"] = round(sum(sustained) / len(sustained), 4)
    return {
        "incidents": len(spans),
        "incident_precision": round(true / len(spans), 4) if spans else None,
        "event_recall": round(sum(1 for pts in events.values() if any(inside(d, t) for d, t in pts)) / len(events), 4)
        if events
        else None,
        "labelled_points_in_incidents": round(sum(1 for d, t in points if inside(d, t)) / len(points), 4)
        if points
        else None,
        **extra,
    }


def _incident_spans(spark, lake, start: datetime, end: datetime) -> list[tuple[str, datetime, datetime]]:
    from pyspark.sql import functions as F

    rows = (
        lake.read_window(spark, INCIDENTS, start, end)
        .groupBy("device_id", "incident_id")
        .agg(F.min("opened_at").alias("a"), F.max("last_flag_at").alias("b"))
        .collect()
    )
    return [(r["device_id"], r["a"].replace(tzinfo=None), r["b"].replace(tzinfo=None)) for r in rows]


def _flags(spark, lake, start: datetime, end: datetime) -> list[Flag]:
    rows = (
        lake.read_window(spark, ANOMALY_LOG, start, end)
        .select("device_id", "event_time", "method", "confirmed")
        .distinct()
        .collect()
    )
    return [Flag(r["device_id"], r["event_time"].replace(tzinfo=None), r["method"], r["confirmed"]) for r in rows]


def evaluate_simulator(eval_hours: int = 6, end: datetime | None = None, progress=print) -> dict:
    from iot_assets.automation.jobs import ANOMALY_DETECTION
    from iot_assets.lib.partitions import HOUR, last_complete_hours
    from iot_assets.resources.config import resolved
    from iot_assets.tools.demo import materialize_hours
    from iot_assets.tools.simulator import simulate_hour

    last = end or last_complete_hours(1)[0]
    first_scored = last - HOUR * (eval_hours - 1)
    start = first_scored - HOUR * 24
    began = time.monotonic()
    progress(
        f"simulator: {resolved('raw_source').device_count} devices, history "
        f"{start:%Y-%m-%d %H:00} .. , scoring {eval_hours} hours to {last:%Y-%m-%d %H:00}"
    )
    assert materialize_hours(start, last).success
    progress(f"  pipeline over {24 + eval_hours} hours done ({time.monotonic() - began:.0f} s)")
    assert materialize_hours(first_scored, last, include_registry=False, selection=ANOMALY_DETECTION).success
    progress(f"  models and anomaly log over {eval_hours} hours done ({time.monotonic() - began:.0f} s)")
    spark, lake, fleet = resolved("spark").session, resolved("lake"), resolved("raw_source").fleet
    events: dict[str, set] = defaultdict(set)
    kinds: dict[str, str] = {}
    hour = first_scored
    while hour <= last:
        for label in simulate_hour(hour, fleet).labels:
            events[label.event_id].add((label.device_id, datetime.strptime(label.event_time, "%Y-%m-%dT%H:%M:%S.%fZ")))
            kinds[label.event_id] = label.kind
        hour += HOUR
    flags = _flags(spark, lake, first_scored, last + HOUR)
    out = score(flags, dict(events), fleet.device_count * eval_hours / 24, gap=timedelta(minutes=10))
    out["incidents"] = incident_scores(_incident_spans(spark, lake, first_scored, last + HOUR), dict(events), kinds)
    return out


# The NAB series' catalogue: one channel, the CSV's `value` column. The replay imports each file
# with `iot-assets import`'s code, so it runs in a process whose active catalogue is this one.
NAB_CATALOGUE = Path(__file__).with_name("nab_catalogue.yaml")


def nab_catalogue_active() -> bool:
    from iot_assets.lib.catalogue import active

    return Path(active().path).resolve() == NAB_CATALOGUE.resolve()


def default_nab_dir() -> Path:
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nab"


def nab_windows(nab_dir: Path | None = None) -> dict[str, list[list[str]]]:
    """The labelled anomaly windows of each NAB file in the folder, by file name (`anomaly_windows.json`)."""
    return json.loads(((nab_dir or default_nab_dir()) / "anomaly_windows.json").read_text())


def nab_device(file_name: str) -> str:
    return "nab-" + file_name.removesuffix(".csv").replace("_", "-")


def nab_readings(path: Path) -> list[tuple[datetime, float]]:
    """The NAB series as (time, value), in its own units."""
    with path.open() as f:
        return [
            (datetime.strptime(row["timestamp"], "%Y-%m-%d %H:%M:%S"), float(row["value"])) for row in csv.DictReader(f)
        ]


def nab_speedup(readings: list[tuple[datetime, float]]) -> int:
    """How many times faster than real time to replay a series so that one reading becomes one minute."""
    gaps = sorted((b[0] - a[0]).total_seconds() for a, b in pairwise(readings))
    return max(1, round(gaps[len(gaps) // 2] / 60))


def operator_scores(
    times: list[datetime], flagged: set[datetime], openings: list[datetime], windows: list[tuple[datetime, datetime]]
) -> dict:
    """What an operator sees, on one series: NAB standard score on flagged readings and on incident
    openings, point F1, false-alarm rate (normal readings flagged), miss rate (labelled readings not
    flagged), and time from each window's start to its first incident opening (series time)."""
    from iot_assets.lib import nab

    labelled = [any(a <= t <= b for a, b in windows) for t in times]
    hit = [t in flagged for t in times]
    tp = sum(1 for y, p in zip(labelled, hit, strict=True) if y and p)
    fp = sum(1 for y, p in zip(labelled, hit, strict=True) if p and not y)
    pos, neg = sum(labelled), len(times) - sum(labelled)
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / pos if pos else None
    on_readings = nab.score(times, hit, windows)
    on_incidents = nab.score(times, nab.detections_at(times, sorted(openings)), windows)
    return {
        "nab_score_flagged": round(on_readings.normalised, 1),
        "nab_score_incidents": round(on_incidents.normalised, 1),
        "windows": on_incidents.windows,
        "windows_hit_by_incidents": on_incidents.windows_hit,
        "incidents": len(openings),
        "false_incidents": on_incidents.false_positives,
        "point_precision": None if precision is None else round(precision, 4),
        "point_recall": None if recall is None else round(recall, 4),
        "point_f1": round(2 * tp / (2 * tp + fp + pos - tp), 4) if tp else 0.0,
        "false_alarm_rate": round(fp / neg, 4) if neg else None,
        "miss_rate": round(1 - recall, 4) if recall is not None else None,
        "latency_hours": [None if d is None else round(d.total_seconds() / 3600, 1) for d in on_incidents.latencies],
    }


def evaluate_nab_file(file_name: str, nab_dir: Path | None = None, speedup: int | None = None, progress=print) -> dict:
    """Import one NAB series as `iot-assets import` does (raw batches on S3, its device registered,
    one backfill of bronze, silver and gold), run the models, anomaly log and incidents, then score
    them against the series' windows. Needs the NAB catalogue active (`NAB_CATALOGUE`).

    The series is replayed `speedup` times faster than real time (the import's `--time-scale`; by
    default so that each reading becomes a minute), which gives the fleet's usual shape of 60
    readings an hour and a 24-hour trailing window of 1,440 readings; a real-time replay of an
    hourly series would write ~8,000 hourly Delta partitions per table. Scores are computed in
    series time. The series is one channel in its own units, so no threshold rules apply.
    """
    from iot_assets.automation.jobs import ANOMALY_DETECTION
    from iot_assets.definitions import defs
    from iot_assets.lib.catalogue import active
    from iot_assets.lib.partitions import HOUR
    from iot_assets.resources.config import resolved
    from iot_assets.resources.detection import AnomalyModelConfig, ThresholdRules
    from iot_assets.tools import importer
    from iot_assets.tools.demo import materialize_hours

    if not nab_catalogue_active():
        raise RuntimeError(
            f"the NAB replay needs IOT_SENSOR_CATALOGUE={NAB_CATALOGUE}; the active catalogue is {active().path}"
        )
    nab_dir = nab_dir or default_nab_dir()
    device = nab_device(file_name)
    readings = nab_readings(nab_dir / file_name)
    speedup = speedup or nab_speedup(readings)
    windows = [
        (datetime.strptime(a[:19], "%Y-%m-%d %H:%M:%S"), datetime.strptime(b[:19], "%Y-%m-%d %H:%M:%S"))
        for a, b in nab_windows(nab_dir)[file_name]
    ]
    began = time.monotonic()
    batches, backfilled = importer.run_import(
        nab_dir / file_name, device=device, timestamp_column="timestamp", scale=speedup, out=progress
    )
    assert backfilled.success
    hours = sorted(batches)
    progress(
        f"nab {file_name}: {len(readings)} readings replayed {speedup}x as {len(hours)} hourly raw batches, "
        f"bronze, silver and gold done ({time.monotonic() - began:.0f} s)"
    )
    per_day = 24 * 60  # readings in a 24-hour trailing window of the replay
    cfg = AnomalyModelConfig(min_training_rows=min(120, per_day // 2), min_baseline_readings=min(30, per_day // 2))
    assert materialize_hours(
        hours[0],
        hours[-1],
        include_registry=False,
        selection=ANOMALY_DETECTION,
        resources={**defs.resources, "anomaly_config": cfg, "threshold_rules": ThresholdRules(rules=[])},
    ).success
    progress(f"  models, anomaly log and incidents done ({time.monotonic() - began:.0f} s)")
    spark, lake = resolved("spark").session, resolved("lake")
    # Replay time -> series time, as the import moved each reading (its records keep milliseconds).
    replayed = importer.time_map([t.replace(tzinfo=UTC) for t, _ in readings], scale=speedup)
    back = {importer.iso(replayed(t.replace(tzinfo=UTC))): t for t, _ in readings}
    flags = [f for f in _flags(spark, lake, hours[0], hours[-1] + HOUR) if f.device_id == device]
    openings = [
        back.get(importer.iso(r["opened_at"]))
        for r in lake.read_window(spark, INCIDENTS, hours[0], hours[-1] + HOUR)
        .where(f"device_id = '{device}'")
        .select("opened_at")
        .distinct()
        .collect()
    ]
    times = [t for t, _ in readings]
    result = operator_scores(
        times,
        {back[importer.iso(f.event_time)] for f in flags if f.confirmed and importer.iso(f.event_time) in back},
        [t for t in openings if t is not None],
        windows,
    )
    days = (times[-1] - times[0]).total_seconds() / 86400
    result["false_incidents_per_day"] = round(result["false_incidents"] / days, 3)
    result["replay"] = {
        "file": file_name,
        "speedup": speedup,
        "readings": len(readings),
        "partitions": len(hours),
        "series_days": round(days, 1),
        "seconds": round(time.monotonic() - began),
    }
    return result


def evaluate_nab(nab_dir: Path | None = None, files=None, speedup: int | None = None, progress=print) -> dict:
    """Each NAB series (by default every file the folder's windows label), one after another, and
    the mean NAB scores over them."""
    files = files or tuple(nab_windows(nab_dir))
    out = {f: evaluate_nab_file(f, nab_dir, speedup, progress) for f in files}
    for key in ("nab_score_flagged", "nab_score_incidents"):
        out.setdefault("mean", {})[key] = round(sum(r[key] for r in out.values() if key in r) / len(files), 1)
    return out


def print_nab_table(results: dict) -> None:
    print(
        f"\n{'NAB file':40} {'NAB flagged':>11} {'NAB incidents':>13} {'windows hit':>11} {'F1':>6} "
        f"{'false-alarm':>11} {'miss':>6} {'latency h':>12}"
    )
    for name, r in results.items():
        if name == "mean":
            continue
        print(
            f"{name:40} {r['nab_score_flagged']:>11.1f} {r['nab_score_incidents']:>13.1f} "
            f"{r['windows_hit_by_incidents']:>5}/{r['windows']:<5} {r['point_f1']:>6.3f} "
            f"{r['false_alarm_rate']:>11.4f} {r['miss_rate']:>6.3f} {str(r['latency_hours']):>12}"
        )
    if "mean" in results:
        m = results["mean"]
        print(f"{'mean':40} {m['nab_score_flagged']:>11.1f} {m['nab_score_incidents']:>13.1f}")


def print_table(results: dict) -> None:
    print(
        f"\n{'source':10} {'method':10} {'precision':>9} {'recall':>7} {'event_recall':>12} "
        f"{'false_alarms/dev-day':>20}"
    )
    for source, by_method in results.items():
        for method, m in by_method.items():
            if not isinstance(m, dict) or "precision" not in m:
                continue
            fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
            print(
                f"{source:10} {method:10} {fmt(m['precision']):>9} {fmt(m['recall']):>7} "
                f"{fmt(m['event_recall']):>12} {fmt(m['false_alarms_per_device_day']):>20}"
            )
