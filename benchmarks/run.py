"""`make bench`: measurements with targets, separate from the tests.

Each measurement generates its own data with the fleet simulator at the chosen scale and runs
both sides of its comparison in one invocation on the same data, so the figure that matters is
a ratio and survives a noisy machine. Results go to `benchmarks/results/latest.json` (one object
per measurement, merged by name, so `--only` refreshes some and keeps the rest) and to the
table in benchmarks/README.md.

    python -m benchmarks.run --scale small|full [--only training,...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "latest.json"
README = ROOT / "benchmarks" / "README.md"
TABLE_START, TABLE_END = "<!-- bench:start -->", "<!-- bench:end -->"

SCALES = {
    # training: devices, and how many of them the naive per-device loop fits (then scaled up).
    # throughput: one hour of (devices, readings per device-hour); full is 1,000 devices x 1/s.
    # backfill: (devices, readings per device-hour, hours). The 1,000 devices x 1/s x 24 h
    # (86 M readings) does not fit this machine's time; 100 devices x 1/10 s x 24 h does, and both
    # sides always run on the same data.
    # growth: (readings per device-hour, fleet sizes), the throughput hour at each size; full is
    # the 100, 1,000 and 3,000 devices x 1/s.
    # small: the new user's first hour, 50 devices x 1/min (the settings' defaults).
    # historian: (devices, readings per device-hour), 7 tags a device; full is 1,001 tags x 1/s.
    # import_csv: CSV rows, 20 devices x 8 channels at 1 reading/4 s; full is the 1 M rows.
    # steady: (devices, readings per device-hour), an hour after a trailing day of 25 hours.
    "small": {
        "training_devices": 100,
        "loop_sample": 3,
        "throughput": (25, 3600),
        "backfill": (20, 60, 8),
        "growth": (3600, (5, 25, 75)),
        "small": (50, 60),
        "historian": (15, 3600),
        "import_csv": 50_000,
        "steady": (5, 3600),
    },
    "full": {
        "training_devices": 1000,
        "loop_sample": 10,
        "throughput": (1000, 3600),
        "backfill": (100, 360, 24),
        "growth": (3600, (100, 1000, 3000)),
        "small": (50, 60),
        "historian": (143, 3600),
        "import_csv": 1_000_000,
        "steady": (50, 3600),
    },
}


def measurement(
    name: str, scale: str, figures: dict, ratio: float | None, target: str, met: bool | None, notes: str = ""
) -> dict:
    return {
        "name": name,
        "scale": scale,
        "figures": figures,
        "ratio": None if ratio is None else round(ratio, 2),
        "target": target,
        "met": met,
        "notes": notes,
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}",
        # Other work on the machine skews absolute times (the ratios hold up better).
        "load_average_1m_after": round(os.getloadavg()[0], 2),
    }


def fleet(devices: int, readings_per_hour: int):
    from iot_assets.tools.simulator import FleetConfig

    return FleetConfig(device_count=devices, readings_per_hour=readings_per_hour)


def bench_training(scale: str, progress=print) -> dict:
    from benchmarks.training import compare

    cfg = SCALES[scale]
    f = compare(cfg["training_devices"], cfg["loop_sample"], progress)
    ratio = f["loop_seconds_scaled"] / f["grouped_seconds"]
    met = ratio >= 10 and (f["devices"] < 1000 or f["grouped_seconds"] <= 90)
    return measurement(
        "model_training",
        scale,
        f,
        ratio,
        "grouped training >= 10x faster than a per-device pyspark.ml KMeans loop; ~1 minute for 1,000 devices",
        met,
        notes=f"the loop was timed on {f['loop_devices']} devices and scaled to {f['devices']}",
    )


def bench_throughput(scale: str, progress=print) -> list[dict]:
    """Two measurements from one run of the hour: throughput against the floor, and memory."""
    from benchmarks.throughput import partition

    f = partition(fleet(*SCALES[scale]["throughput"]), progress)
    memory = f.pop("memory")
    ratio = f["pipeline_seconds"] / f["floor_seconds"]
    size = f"{f['devices']:,} devices x {f['readings_per_hour']:,} readings/hour, one hour"
    rss = memory["peak_driver_rss_gib"]
    return [
        measurement(
            "partition_throughput",
            scale,
            f,
            ratio,
            "raw -> bronze, silver, gold, anomaly log within 3x the engine floor (read.json -> Delta)",
            ratio <= 3,
            notes=f"{size}; ratio = pipeline seconds / floor seconds; the shape's own Delta writes, with no "
            f"logic, take {f['shape_floor_over_floor']}x the floor (shape_floor_*: benchmarks.common.shape_floor)",
        ),
        measurement(
            "memory",
            scale,
            memory,
            rss / 4,
            "peak driver RSS (Python + JVM) < 4 GiB",
            rss < 4,
            notes=f"{size}, during the pipeline run above; ratio = peak driver RSS / 4 GiB",
        ),
    ]


def bench_growth(scale: str, progress=print) -> list[dict]:
    """Two measurements from one run of the sizes: cost per reading against fleet size, and memory
    at the largest size."""
    from benchmarks import growth

    per_hour, sizes = SCALES[scale]["growth"]
    warm_up, runs = growth.compare([fleet(n, per_hour) for n in sizes], progress)
    f = growth.summarise(runs, warm_up)
    largest = max(runs, key=lambda r: r["devices"])
    memory = {"devices": largest["devices"], "raw_records": largest["raw_records"], **largest["memory"]}
    rss = memory["peak_driver_rss_gib"]
    names = ", ".join(f"{n:,}" for n in sorted(sizes))
    return [
        measurement(
            "growth",
            scale,
            f,
            f["growth_ratio"],
            "seconds per million readings at the largest fleet within 1.2x the next size down's "
            "(3,000 against 1,000 devices); the smallest (100 devices) in <= 60 s",
            growth.met(f),
            notes=f"{names} devices x {per_hour:,} readings/hour, one hour each on its own hour and lake prefix, "
            "smallest first, in one process after a warm-up hour of the smallest fleet (warm_up_*; the JVM's first "
            "hour when growth runs first in its process), so every size runs on a warm JVM; raw -> bronze, silver, "
            "gold, models, anomaly log as in partition_throughput, without the floor; ratio = growth_ratio",
        ),
        measurement(
            "memory_growth",
            scale,
            memory,
            rss / 4,
            "peak driver RSS (Python + JVM) < 4 GiB at 3,000 devices",
            rss < 4,
            notes=f"{largest['devices']:,} devices x {per_hour:,} readings/hour, the largest size of the growth run, "
            "after the smaller sizes in the same process; ratio = peak driver RSS / 4 GiB",
        ),
    ]


def bench_backfill(scale: str, progress=print) -> list[dict]:
    """Two measurements on the same raw hours: every run in this process (warm JVM), and every run
    in its own process and JVM."""
    from benchmarks.backfill import compare

    devices, per_hour, hours = SCALES[scale]["backfill"]
    f = compare(fleet(devices, per_hour), hours, progress)
    common = {k: v for k, v in f.items() if k not in ("same_process", "process_per_run")}
    warm, cold = {**common, **f["same_process"]}, {**common, **f["process_per_run"]}
    size = (
        f"{devices} devices x {per_hour} readings/hour x {hours} hours (chosen to fit the machine; both sides on "
        "the same raw files); bronze, silver, hourly gold"
    )
    warm_ratio = warm["per_partition_seconds"] / warm["single_run_seconds"]
    cold_ratio = cold["per_partition_seconds"] / cold["single_run_seconds"]
    return [
        measurement(
            "backfill",
            scale,
            warm,
            warm_ratio,
            "single-run backfill >= 5x faster than one run per partition, all runs in one process (warm JVM)",
            warm_ratio >= 5,
            notes=f"{size}; both sides in this process with its warm JVM (JVM start counted on neither); the "
            "issue's target is on backfill_process_per_run",
        ),
        measurement(
            "backfill_process_per_run",
            scale,
            cold,
            cold_ratio,
            "single-run backfill >= 10x faster than one run per partition, each run in its own process and JVM",
            cold_ratio >= 10,
            notes=f"{size}; every run (the single-range run too) in a fresh interpreter with its own JVM, one "
            "after another, timed from process start to exit; *_in_run_seconds are the Dagster runs alone (the JVM "
            "starts inside a run, at its first Spark step)",
        ),
    ]


def bench_small(scale: str, progress=print) -> dict:
    from benchmarks.throughput import first_hour

    f = first_hour(fleet(*SCALES[scale]["small"]), progress)
    return measurement(
        "small_scale",
        scale,
        f,
        f["end_to_end_seconds"] / f["floor_seconds"],
        "none in the issue (reported)",
        None,
        notes="registry, then raw (simulated, published to Kinesis, stored) through the anomaly log on fresh "
        "tables, warm JVM; ratio = end-to-end seconds / engine floor on the same raw file",
    )


def bench_steady(scale: str, progress=print) -> dict:
    from benchmarks.steady import steady_hour

    f = steady_hour(fleet(*SCALES[scale]["steady"]), progress)
    return measurement(
        "steady_state",
        scale,
        f,
        f["pipeline_seconds"] / f["first_hour_pipeline_seconds"],
        "none in the issue (reported): what partition_throughput's first hour leaves out",
        None,
        notes="bronze through the anomaly log for the hour after a trailing day (the models train on it, the "
        "anomaly log scores against it); ratio = that hour's seconds / the same fleet's first hour's",
    )


def bench_historian(scale: str, progress=print) -> dict:
    from benchmarks.historian import compare

    f = compare(fleet(*SCALES[scale]["historian"]), progress)
    return measurement(
        "historian_read",
        scale,
        f,
        f["ratio_2_partitions"],
        "none in the issue (reported): the raw step's historian read against PostgreSQL's COPY TO STDOUT",
        None,
        notes=f"{f['tags']:,} tags x 3,600 samples, one hour; ratio = read seconds (2 JDBC partitions, the default) "
        "/ COPY seconds; 1 and 4 partitions in the figures; read = JDBC read, tag join, scan pivot, records "
        "collected to the driver",
    )


def bench_import_csv(scale: str, progress=print) -> dict:
    from benchmarks.import_csv import compare

    f = compare(SCALES[scale]["import_csv"], progress)
    return measurement(
        "import_csv",
        scale,
        f,
        f["import_seconds"] / f["floor_seconds"],
        "none in the issue (reported): the counts reconcile (raw = CSV rows, bronze + quarantine = raw, "
        "silver + rejected = bronze)",
        None,
        notes=f"{f['rows']:,} rows, {f['devices']} devices x {f['channels']} channels over {f['hours']} hours; "
        "ratio = (import store phase + backfill seconds) / floor seconds (read.csv -> Delta of the same file, "
        "best of 3); "
        "store_ratio and backfill_ratio per phase; both sides in one process, JVM start counted on neither",
    )


def bench_connect(scale: str, progress=print) -> dict:
    from benchmarks.connect import compare

    f = compare(fleet(*SCALES[scale]["throughput"]), progress)
    return measurement(
        "connect_throughput",
        scale,
        f,
        f["connect_seconds"] / f["classic_seconds"],
        "none in the issue (reported): the throughput hour over Spark Connect against classic mode",
        None,
        notes="same raw files; each side a fresh process after a warm-up run (JVM start and session "
        "set-up counted on neither side); ratio = Connect seconds / classic seconds",
    )


BENCHES = {
    "throughput": bench_throughput,
    "growth": bench_growth,
    "connect": bench_connect,
    "backfill": bench_backfill,
    "training": bench_training,
    "small": bench_small,
    "historian": bench_historian,
    "import_csv": bench_import_csv,
    "steady": bench_steady,
}


def save(results: list[dict]) -> list[dict]:
    """Merge into latest.json by (name, scale) and rewrite the table in benchmarks/README.md."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    fresh = {(r["name"], r["scale"]) for r in results}
    merged = [r for r in old if (r["name"], r["scale"]) not in fresh] + results
    merged.sort(key=lambda r: (r["name"], r["scale"]))
    RESULTS.write_text(json.dumps(merged, indent=2) + "\n")
    if README.exists() and TABLE_START in README.read_text():
        text = README.read_text()
        table = render(merged)
        text = re.sub(
            re.escape(TABLE_START) + ".*?" + re.escape(TABLE_END),
            lambda _: f"{TABLE_START}\n{table}\n{TABLE_END}",
            text,
            flags=re.S,
        )
        README.write_text(text)
    return merged


def render(results: list[dict]) -> str:
    rows = ["| measurement | scale | figures | ratio | target | met | load (1 min) |", "|---|---|---|---|---|---|---|"]
    for r in results:
        # Per-step timings stay in the JSON; the table keeps the headline figures.
        figs = ", ".join(f"{k} {v}" for k, v in r["figures"].items() if not isinstance(v, dict))
        met = {True: "yes", False: "**no**", None: "-"}[r["met"]]
        load = f"{r.get('load_average_1m_before', '?')} -> {r.get('load_average_1m_after', '?')}"
        rows.append(f"| {r['name']} | {r['scale']} | {figs} | {r['ratio']} | {r['target']} | {met} | {load} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--only", default=",".join(BENCHES), help=f"comma-separated subset of {', '.join(BENCHES)}")
    args = parser.parse_args(argv)
    wanted = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = set(wanted) - set(BENCHES)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    from benchmarks.common import start_stack

    # A stopped run (timeout, kill) still stops its moto server: SIGTERM unwinds through `finally`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    server = start_stack()  # before the definitions are imported: resources read it
    results = []
    try:
        if set(wanted) - {"connect"}:  # connect's sides run in their own processes
            from benchmarks import cores

            cores.session()  # this process's Spark, with the event log the step figures read
        for name in wanted:
            began = time.monotonic()
            print(f"== {name} ({args.scale})", flush=True)
            load_before = round(os.getloadavg()[0], 2)
            out = BENCHES[name](args.scale)
            for r in out if isinstance(out, list) else [out]:
                r["load_average_1m_before"] = load_before
                results.append(r)
                print(f"   {r['name']}: {json.dumps(r['figures'])} ratio {r['ratio']} met {r['met']}", flush=True)
            print(f"   ({time.monotonic() - began:.0f} s)", flush=True)
            save(results)  # after each, so a long run keeps what it has measured
    finally:
        server.stop()
    print(f"wrote {RESULTS.relative_to(ROOT)}\n\n{render(results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
