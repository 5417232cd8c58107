"""Small scale: what a new user sees first, one 50-device hour end to end (registry, then raw from
the simulator, published to Kinesis and backed up to S3, through the anomaly log) on fresh tables,
with the engine floor on the same raw file for scale."""

from __future__ import annotations

import time
import uuid

from benchmarks.common import (
    BUCKET,
    PIPELINE_AFTER_RAW,
    bench_hour,
    engine_floor,
    ensure_registry,
    raw_uris,
    resources_for,
    run_assets,
)


def compare(fleet, progress=print) -> dict:
    from dagster import DagsterInstance

    from iot_assets.resources.config import resolved

    spark = resolved("spark").session
    hour = bench_hour(2)        # not the throughput hour: this run simulates and stores its own raw batch
    prefix = f"bench/small-{uuid.uuid4().hex[:8]}"
    resources = resources_for(prefix, fleet)
    instance = DagsterInstance.ephemeral()
    began = time.monotonic()
    ensure_registry(resources, instance)
    run = run_assets(("raw_sensor_batches", *PIPELINE_AFTER_RAW), resources, instance, hour)
    total = time.monotonic() - began
    progress(f"   end to end: {total:.1f} s; steps {run.steps}")
    floor_s = engine_floor(spark, raw_uris([hour]), f"s3a://{BUCKET}/{prefix}/engine_floor")
    records = spark.read.text(raw_uris([hour])).count()
    return {"devices": fleet.device_count, "readings_per_hour": fleet.readings_per_hour, "raw_records": records,
            "end_to_end_seconds": round(total, 1), "pipeline_run_seconds": round(run.seconds, 1),
            "floor_seconds": round(floor_s, 1), "step_seconds": run.steps}
