"""Backfill: the hourly pipeline (bronze, silver, hourly gold) over a range of hours as one
single-run backfill, against one Dagster run per partition (the naive Dagster + Spark setup), on
the same raw files, two ways:

- `same_process`: every run in this process with its warm JVM, so JVM start is counted on
  neither side;
- `process_per_run`: every run in a fresh interpreter with its own JVM, as a user's backfill or a
  sensor starts one, timed from the process's start to its exit; the single-range run too, so
  both sides pay the start. The runs go one after another, each side on its own lake prefix.

`python -m benchmarks.backfill <prefix> <devices> <readings per hour> <first hour> [<last hour>]`
is one run's child: one partition, or the range as one run.
"""

from __future__ import annotations

import json
import sys
import tempfile
import uuid
from datetime import datetime
from pathlib import Path

from benchmarks.common import (
    HOURLY_AFTER_RAW,
    bench_hour,
    ensure_registry,
    hours_ending,
    resources_for,
    run_assets,
    run_child,
    write_raw_hours,
)


def _same_process(fleet, window: list[datetime], instance, tag: str, progress) -> dict:
    single_res, per_res = (resources_for(f"bench/backfill-{side}-{tag}", fleet) for side in ("single", "per"))
    ensure_registry(single_res, instance)
    ensure_registry(per_res, instance)
    single = run_assets(HOURLY_AFTER_RAW, single_res, instance, window[0], window[-1])
    progress(f"   same process: single run over {len(window)} hours: {single.seconds:.1f} s; steps {single.steps}")
    per = [run_assets(HOURLY_AFTER_RAW, per_res, instance, h) for h in window]
    per_s = sum(r.seconds for r in per)
    progress(
        f"   same process: {len(window)} runs, one per hour: {per_s:.1f} s (first {per[0].seconds:.1f} s, "
        f"last {per[-1].seconds:.1f} s; steps of the last {per[-1].steps})"
    )
    return {
        "single_run_seconds": round(single.seconds, 1),
        "per_partition_seconds": round(per_s, 1),
        "per_partition_run_seconds_median": round(sorted(r.seconds for r in per)[len(per) // 2], 1),
        "single_run_step_seconds": single.steps,
        "per_partition_last_step_seconds": per[-1].steps,
    }


def _process_per_run(fleet, window: list[datetime], instance, tag: str, progress) -> dict:
    logs = Path(tempfile.mkdtemp(prefix="iot-bench-backfill-"))
    prefixes = {side: f"bench/backfill-proc-{side}-{tag}" for side in ("single", "per")}
    for prefix in prefixes.values():  # the registry is there before a run starts, as in a deployment
        ensure_registry(resources_for(prefix, fleet), instance)

    def child(prefix: str, hours: list[datetime], log: str):
        args = [prefix, str(fleet.device_count), str(fleet.readings_per_hour), *(h.isoformat() for h in hours)]
        return run_child("benchmarks.backfill", args, logs / log)

    single = child(prefixes["single"], [window[0], window[-1]], "single.log")
    progress(
        f"   process per run: single run over {len(window)} hours: {single.seconds:.1f} s from process start "
        f"to exit ({single.reported['run_seconds']:.1f} s in the run); logs in {logs}"
    )
    per = [child(prefixes["per"], [h], f"hour-{i:02d}.log") for i, h in enumerate(window)]
    per_s = sum(r.seconds for r in per)
    progress(
        f"   process per run: {len(window)} runs, one per hour: {per_s:.1f} s (first {per[0].seconds:.1f} s, "
        f"last {per[-1].seconds:.1f} s, of which {per[-1].reported['run_seconds']:.1f} s in the run)"
    )
    return {
        "single_run_seconds": round(single.seconds, 1),
        "per_partition_seconds": round(per_s, 1),
        "per_partition_run_seconds_median": round(sorted(r.seconds for r in per)[len(per) // 2], 1),
        "single_run_in_run_seconds": round(single.reported["run_seconds"], 1),
        "per_partition_in_run_seconds": round(sum(r.reported["run_seconds"] for r in per), 1),
        "single_run_step_seconds": single.reported["steps"],
        "per_partition_last_step_seconds": per[-1].reported["steps"],
    }


def compare(fleet, hours: int, progress=print) -> dict:
    """Both ways on the same raw hours: {..., "same_process": {...}, "process_per_run": {...}}."""
    from dagster import DagsterInstance

    window = hours_ending(bench_hour(), hours)
    records = write_raw_hours(window, fleet, progress)
    instance, tag = DagsterInstance.ephemeral(), uuid.uuid4().hex[:8]
    return {
        "devices": fleet.device_count,
        "readings_per_hour": fleet.readings_per_hour,
        "hours": hours,
        "raw_records": records,
        "same_process": _same_process(fleet, window, instance, tag, progress),
        "process_per_run": _process_per_run(fleet, window, instance, tag, progress),
    }


def main(argv: list[str]) -> int:
    """One run in this fresh process: one partition, or [first, last] as one run."""
    from dagster import DagsterInstance

    from iot_assets.tools.simulator import FleetConfig

    prefix, devices, per_hour, first, *last = argv
    fleet = FleetConfig(device_count=int(devices), readings_per_hour=int(per_hour))
    end = datetime.fromisoformat(last[0]) if last else None
    run = run_assets(
        HOURLY_AFTER_RAW, resources_for(prefix, fleet), DagsterInstance.ephemeral(), datetime.fromisoformat(first), end
    )
    print(json.dumps({"run_seconds": run.seconds, "steps": run.steps}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
