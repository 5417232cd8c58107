"""`iot-assets demo`: the last complete hours through every layer, headless, with a row-count table."""

from __future__ import annotations

import os
import time
import uuid
from datetime import datetime

from dagster import AssetSelection, DagsterInstance, materialize

from iot_assets import settings
from iot_assets.assets.bronze import BRONZE_READINGS, QUARANTINE
from iot_assets.assets.gold import AGGREGATES_10MIN, HOURLY_STATS
from iot_assets.assets.registry import REGISTRY
from iot_assets.assets.silver import REJECTED, SILVER_READINGS
from iot_assets.lib.partitions import HOUR, hour_key, last_complete_hours
from iot_assets.tools import local_aws
from iot_assets.tools.progress import Progress, watch_run

QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
LAYER_TABLES = (BRONZE_READINGS, QUARANTINE, SILVER_READINGS, REJECTED, HOURLY_STATS, AGGREGATES_10MIN)


def materialize_hours(
    first: datetime,
    last: datetime,
    instance: DagsterInstance | None = None,
    resources: dict | None = None,
    include_registry: bool = True,
    selection=None,
    run_config: dict | None = None,
    raise_on_error: bool = True,
):
    """One run over the hour range [first, last], following the assets' single-run backfill policy.

    Reports partitions materialised out of the total, and elapsed time, to stderr while it runs.
    """
    from iot_assets.automation.jobs import HOURLY_PIPELINE
    from iot_assets.definitions import defs, executable_assets

    graph = defs.get_repository_def().asset_graph
    every = executable_assets
    # The run needs an instance this process can watch; materialize() would make the same one.
    instance = instance or DagsterInstance.ephemeral()
    if include_registry:
        materialize(
            every,
            selection=[REGISTRY.key],
            instance=instance,
            resources=resources or defs.resources,
            run_config=QUIET,
        )
    selection = AssetSelection.from_coercible(selection or HOURLY_PIPELINE)
    hours = int((last - first) / HOUR) + 1
    tag = ("iot/progress", uuid.uuid4().hex)
    progress = Progress(
        f"{hour_key(first)} .. {hour_key(last)}", total=len(selection.resolve(graph)) * hours, unit="asset partitions"
    )
    with watch_run(instance, tag, progress):
        return materialize(
            every,
            selection=selection,
            instance=instance,
            resources=resources or defs.resources,
            run_config={**QUIET, **(run_config or {})},
            tags={
                "dagster/asset_partition_range_start": hour_key(first),
                "dagster/asset_partition_range_end": hour_key(last),
                tag[0]: tag[1],
            },
            raise_on_error=raise_on_error,
        )


def layer_counts(spark, lake, start: datetime, end: datetime, raw_total: int) -> list[tuple[str, int]]:
    rows = [("raw_sensor_batches (records)", raw_total)]
    for table in LAYER_TABLES:
        rows.append((table.name, lake.read_window(spark, table, start, end).count()))
    return rows


def run_demo(hours: int = 3) -> int:
    server = None
    port = local_aws.local_port()
    if not local_aws.is_listening(local_aws.LOOPBACK, port):
        print(f"starting local AWS on {local_aws.LOOPBACK}:{port} for this demo")
        server = local_aws.start_server(port)
    local_aws.ensure_from_settings()
    window = last_complete_hours(hours)
    instance = DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else DagsterInstance.ephemeral()
    print(
        f"materialising {hours} hours {hour_key(window[0])} .. {hour_key(window[-1])} as one run "
        f"({settings.get('IOT_DEVICE_COUNT')} devices, source={settings.get('IOT_RAW_SOURCE')})",
        flush=True,
    )
    began = time.monotonic()
    result = materialize_hours(window[0], window[-1], instance=instance)
    elapsed = time.monotonic() - began
    if not result.success:
        print("the run failed; see the events above")
        return 1
    from iot_assets.resources.config import resolved

    # A range run repeats the range's metadata on each partition's event: read it once.
    first = result.asset_materializations_for_node("raw_sensor_batches")[0]
    raw_total = sum(first.metadata["records_per_hour"].value.values())
    spark = resolved("spark").session
    lake = resolved("lake")
    print(f"\nrun {result.run_id} succeeded in {elapsed:.1f} s\n")
    print(f"{'layer':40} {'rows':>8}")
    for name, n in layer_counts(spark, lake, window[0], window[-1] + HOUR, raw_total):
        print(f"{name:40} {n:>8}")
    if server:
        server.stop()
    return 0


def lake_has_silver() -> bool:
    """Whether the lake already holds silver (its Delta log exists), without starting Spark."""
    from iot_assets.resources.config import resolved

    lake = resolved("lake")
    bucket, key = lake.uri(SILVER_READINGS).removeprefix("s3a://").split("/", 1)
    listed = resolved("aws").s3.list_objects_v2(Bucket=bucket, Prefix=f"{key}/_delta_log/", MaxKeys=1)
    return listed.get("KeyCount", 0) > 0


def seed_history(hours: int = 26) -> int:
    """`make dev`'s first start: the simulated fleet's previous `hours` hours, from raw to gold, as one
    run, then the anomaly group for the last of them.

    Then every device has a day of history before the live hour arrives: its model trains and its
    z-score baseline is mature (it is no longer learning), so the first anomaly log holds the
    simulator's injected anomalies, not a learning device's noise. Skipped when the lake already holds
    silver. Raw comes from the simulator in this run, whatever IOT_RAW_SOURCE says: the live
    producer sends only from now on."""
    local_aws.ensure_from_settings()
    if lake_has_silver():
        print("history: the lake already holds silver; nothing to land", flush=True)
        return 0
    os.environ["IOT_RAW_SOURCE"] = "simulator"  # read by the raw source when this run starts
    window = last_complete_hours(hours)
    instance = DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else DagsterInstance.ephemeral()
    devices, per_hour = int(settings.get("IOT_DEVICE_COUNT")), int(settings.get("IOT_READINGS_PER_HOUR"))
    print(
        f"history: landing {hours} hours {hour_key(window[0])} .. {hour_key(window[-1])} of the simulated fleet "
        f"({devices} devices x {per_hour} readings an hour, {devices * per_hour * hours:,} readings) through gold "
        "as one run, then the models and the anomaly log of the last hour; on a quiet 2-core laptop this takes "
        "about 5 minutes",
        flush=True,
    )
    began = time.monotonic()
    result = land_history(window[0], window[-1], instance)
    if not result.success:
        print("history: the run failed; see the events above (make dev continues without history)", flush=True)
        return 1
    print(f"history: done in {time.monotonic() - began:.0f} s (run {result.run_id})", flush=True)
    return 0


def land_history(first: datetime, last: datetime, instance: DagsterInstance):
    """The registry, then the hours [first, last] from raw (the simulator) through hourly gold, as
    one run; then the models, the anomaly log and the incidents of the last hour, which has a day
    of history when [first, last] spans more than a day. Returns the last run's result."""
    from iot_assets.automation.jobs import ANOMALY_DETECTION, HOURLY_PIPELINE

    # Not published to Kinesis: the live sensor drains the stream by arrival time, and would read
    # a day of history, arriving now, into the current hour as late records.
    unpublished = {"resources": {"raw_source": {"config": {"source": "simulator", "publish_simulated": False}}}}
    result = materialize_hours(first, last, instance=instance, selection=HOURLY_PIPELINE, run_config=unpublished)
    if not result.success:
        return result
    return materialize_hours(last, last, instance=instance, include_registry=False, selection=ANOMALY_DETECTION)
