"""One hourly partition from raw through bronze, silver, hourly gold, the models and the anomaly
log, against Spark's own floor (`read.json` -> Delta write of the same raw file in the same
session).

Two ways: `partition` (the raw hour simulated beforehand, the driver's peak memory sampled while
the pipeline runs; `benchmarks.growth` runs it at several fleet sizes), and `first_hour` (what a
new user sees first: the registry, then raw from the simulator, published to Kinesis, through the
anomaly log on fresh tables)."""

from __future__ import annotations

import time
import uuid

from benchmarks import cores
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
    shape_floor,
    write_raw_hours,
)
from iot_assets.resources.spark import parallelism


def _setup(fleet, name: str):
    from dagster import DagsterInstance

    prefix = f"bench/{name}-{uuid.uuid4().hex[:8]}"
    return cores.session(), prefix, resources_for(prefix, fleet), DagsterInstance.ephemeral()


def partition(fleet, progress=print, hours_back: int = 1, name: str = "throughput", floor: bool = True) -> dict:
    """The hour `hours_back` hours ago on a fresh lake prefix; the engine floor too unless `floor`
    is False (then its figures are left out)."""
    spark, prefix, resources, instance = _setup(fleet, name)
    hour = bench_hour(hours_back)
    records = write_raw_hours([hour], fleet, progress)
    ensure_registry(resources, instance)  # also warms the session's code paths
    floor_s = shape = None
    if floor:
        # The engine floor is timed before and after the shape's floor, and the better one kept: in
        # one run of this bench it was the process's first heavy Spark job, and took 18.7 s
        # against 16.1 s in another run.
        uris, lake = raw_uris([hour]), f"s3a://{BUCKET}/{prefix}"
        floors = [engine_floor(spark, uris, f"{lake}/engine_floor")]
        shape = shape_floor(spark, uris, f"{lake}/shape_floor")
        floors.append(engine_floor(spark, uris, f"{lake}/engine_floor_again"))
        floor_s = min(floors)
        progress(f"   engine floor: {records:,} records read.json -> Delta in {floors[0]:.1f} and {floors[1]:.1f} s")
        progress(f"   the shape's floor (its Delta writes alone): {sum(shape.values()):.1f} s {shape}")
    with PeakMemory(spark) as memory:
        run = run_assets(PIPELINE_AFTER_RAW, resources, instance, hour)
    progress(f"   pipeline, {fleet.device_count:,} devices: {run.seconds:.1f} s; steps {run.steps}")
    on_cores = cores.steps_on_cores(cores.read_tasks(), cores.step_windows(instance, run.run_id), parallelism(spark))
    figures = {
        "devices": fleet.device_count,
        "readings_per_hour": fleet.readings_per_hour,
        "raw_records": records,
        "pipeline_seconds": round(run.seconds, 1),
        "floor_seconds": round(floor_s, 1) if floor else None,
        "floor_seconds_worst": round(max(floors), 1) if floor else None,
        "pipeline_readings_per_second": round(records / run.seconds),
        "floor_readings_per_second": round(records / floor_s) if floor else None,
        # The layers' Delta writes alone (`shape_floor`): the least the pipeline's shape can take.
        "shape_floor_seconds": round(sum(shape.values()), 1) if floor else None,
        "shape_floor_parts": shape,
        "shape_floor_over_floor": round(sum(shape.values()) / floor_s, 2) if floor else None,
        "pipeline_over_shape_floor": round(run.seconds / sum(shape.values()), 2) if floor else None,
        "step_seconds": run.steps,
        "steps_on_cores": on_cores or None,
        "memory": memory.figures(),
    }
    return {k: v for k, v in figures.items() if v is not None}


def first_hour(fleet, progress=print) -> dict:
    spark, prefix, resources, instance = _setup(fleet, "small")
    hour = bench_hour(2)  # not the throughput hour: this run simulates and stores its own raw batch
    began = time.monotonic()
    ensure_registry(resources, instance)
    run = run_assets(("raw_sensor_batches", *PIPELINE_AFTER_RAW), resources, instance, hour)
    total = time.monotonic() - began
    progress(f"   end to end: {total:.1f} s; steps {run.steps}")
    floor_s = engine_floor(spark, raw_uris([hour]), f"s3a://{BUCKET}/{prefix}/engine_floor")
    records = spark.read.text(raw_uris([hour])).count()
    return {
        "devices": fleet.device_count,
        "readings_per_hour": fleet.readings_per_hour,
        "raw_records": records,
        "end_to_end_seconds": round(total, 1),
        "pipeline_run_seconds": round(run.seconds, 1),
        "floor_seconds": round(floor_s, 1),
        "step_seconds": run.steps,
    }
