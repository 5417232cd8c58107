"""Partition throughput and memory: one hour from raw through bronze, silver, hourly gold, the
models and the anomaly log, against Spark's own floor (`read.json` -> Delta write of the same raw
file in the same session), with the driver's peak memory sampled while the pipeline runs."""

from __future__ import annotations

import uuid

from benchmarks.common import (
    BUCKET,
    PIPELINE_AFTER_RAW,
    PeakMemory,
    bench_hour,
    engine_floor,
    ensure_registry,
    raw_uris,
    resources_for,
    run_assets,
    write_raw_hours,
)


def compare(fleet, progress=print) -> dict:
    from dagster import DagsterInstance

    from iot_assets.resources.config import resolved

    spark = resolved("spark").session
    hour = bench_hour()
    records = write_raw_hours([hour], fleet, progress)
    prefix = f"bench/throughput-{uuid.uuid4().hex[:8]}"
    resources = resources_for(prefix, fleet)
    instance = DagsterInstance.ephemeral()
    ensure_registry(resources, instance)            # also warms the session's code paths
    floor_s = engine_floor(spark, raw_uris([hour]), f"s3a://{BUCKET}/{prefix}/engine_floor")
    progress(f"   engine floor: {records:,} records read.json -> Delta in {floor_s:.1f} s")
    with PeakMemory(spark) as memory:
        run = run_assets(PIPELINE_AFTER_RAW, resources, instance, hour)
    progress(f"   pipeline: {run.seconds:.1f} s; steps {run.steps}")
    return {"devices": fleet.device_count, "readings_per_hour": fleet.readings_per_hour, "raw_records": records,
            "pipeline_seconds": round(run.seconds, 1), "floor_seconds": round(floor_s, 1),
            "pipeline_readings_per_second": round(records / run.seconds),
            "floor_readings_per_second": round(records / floor_s),
            "step_seconds": run.steps, "memory": memory.figures()}
