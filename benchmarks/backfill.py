"""Backfill: the hourly pipeline (bronze, silver, hourly gold) over a range of hours as one
single-run backfill, against one Dagster run per partition (the naive Dagster + Spark setup), on
the same raw files and in the same process, so JVM start is counted on neither side."""

from __future__ import annotations

import uuid

from benchmarks.common import (
    HOURLY_AFTER_RAW,
    bench_hour,
    ensure_registry,
    hours_ending,
    resources_for,
    run_assets,
    write_raw_hours,
)


def compare(fleet, hours: int, progress=print) -> dict:
    from dagster import DagsterInstance

    window = hours_ending(bench_hour(), hours)
    records = write_raw_hours(window, fleet, progress)
    instance = DagsterInstance.ephemeral()
    tag = uuid.uuid4().hex[:8]
    single_res, per_res = (resources_for(f"bench/backfill-{side}-{tag}", fleet) for side in ("single", "per"))
    ensure_registry(single_res, instance)
    ensure_registry(per_res, instance)
    single = run_assets(HOURLY_AFTER_RAW, single_res, instance, window[0], window[-1])
    progress(f"   single run over {hours} hours: {single.seconds:.1f} s; steps {single.steps}")
    per = [run_assets(HOURLY_AFTER_RAW, per_res, instance, h) for h in window]
    per_s = sum(r.seconds for r in per)
    progress(
        f"   {hours} runs, one per hour: {per_s:.1f} s (first {per[0].seconds:.1f} s, "
        f"last {per[-1].seconds:.1f} s; steps of the last {per[-1].steps})"
    )
    return {
        "devices": fleet.device_count,
        "readings_per_hour": fleet.readings_per_hour,
        "hours": hours,
        "raw_records": records,
        "single_run_seconds": round(single.seconds, 1),
        "per_partition_seconds": round(per_s, 1),
        "per_partition_run_seconds_median": round(sorted(r.seconds for r in per)[len(per) // 2], 1),
        "single_run_step_seconds": single.steps,
        "per_partition_last_step_seconds": per[-1].steps,
    }
