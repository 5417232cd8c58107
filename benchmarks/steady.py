"""An hour in the steady state: after a full trailing day, as every hour is after the first day.

The throughput hour (`benchmarks.throughput.partition`) is a first hour. With no history, the
models train nothing and the anomaly log has no baseline, so Spark prunes its z-score and shift
branches. Every later hour trains each device's model on its trailing 24 hours of silver and scores
against the trailing day's gold hours; that work grows with the reading rate times 24 hours, not
with the hour alone. Here the trailing day is written first (one range run of bronze, silver and
hourly gold, timed apart), then the next hour runs from bronze through the anomaly log. The same
fleet's first hour, on a lake of its own, runs after it (on the same warm JVM) for the ratio."""

from __future__ import annotations

from benchmarks.common import (
    HOURLY_AFTER_RAW,
    PIPELINE_AFTER_RAW,
    bench_hour,
    ensure_registry,
    hours_ending,
    run_assets,
    write_raw_hours,
)
from benchmarks.throughput import _setup


def steady_hour(fleet, progress=print, history_hours: int = 25) -> dict:
    _, _, resources, instance = _setup(fleet, "steady")
    hours = hours_ending(bench_hour(2), history_hours + 1)
    history_readings = write_raw_hours(hours[:-1], fleet, progress)
    readings = write_raw_hours(hours[-1:], fleet, progress)
    ensure_registry(resources, instance)
    history = run_assets(HOURLY_AFTER_RAW, resources, instance, hours[0], hours[-2])
    progress(f"   the trailing day ({history_hours} hours, one range run): {history.seconds:.1f} s")
    run = run_assets(PIPELINE_AFTER_RAW, resources, instance, hours[-1])
    progress(f"   the hour after it: {run.seconds:.1f} s; steps {run.steps}")
    # The first hour, on a lake of its own (no history), after the others: the JVM is warm for both.
    _, _, first_resources, first_instance = _setup(fleet, "steady-first")
    first_hour = bench_hour(1)
    write_raw_hours([first_hour], fleet, progress)
    ensure_registry(first_resources, first_instance)
    first = run_assets(PIPELINE_AFTER_RAW, first_resources, first_instance, first_hour)
    progress(f"   a first hour, no history: {first.seconds:.1f} s; steps {first.steps}")
    return {
        "devices": fleet.device_count,
        "readings_per_hour": fleet.readings_per_hour,
        "history_hours": history_hours,
        "history_readings": history_readings,
        "raw_records": readings,
        "history_run_seconds": round(history.seconds, 1),
        "pipeline_seconds": round(run.seconds, 1),
        "first_hour_pipeline_seconds": round(first.seconds, 1),
        "step_seconds": run.steps,
        "first_hour_step_seconds": first.steps,
    }
