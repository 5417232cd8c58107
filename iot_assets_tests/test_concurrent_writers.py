"""Two runs at once on different hours of existing Delta tables: both land, one writer at a time.

Delta's default S3 log store is safe for one writer only, so every Delta-writing step takes a slot
of the `delta_lake_writers` pool, which the instance (like dagster.yaml) gives one slot. The two
runs share this process's SparkSession from two threads; the pool, held in the instance's storage,
is what keeps their writing steps apart, exactly as it does for runs in separate processes.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest
from dagster import AssetSelection, DagsterEventType, EventRecordsFilter
from dagster._core.test_utils import instance_for_test

from iot_assets.demo import materialize_hours
from iot_assets.partitions import HOUR
from iot_assets.resources.lakehouse import LAKE_WRITER_POOL, DeltaLakehouse

pytestmark = pytest.mark.e2e

FIRST = datetime(2026, 11, 14, 1, tzinfo=timezone.utc)
# Raw to bronze is enough to show it (two Delta tables, plus data_quality_log) and keeps this test short.
SELECTION = AssetSelection.groups("raw", "bronze")
TABLES = (("bronze_sensor_readings", "event_hour"), ("bronze_quarantine", "batch_hour"))


def _pooled_steps() -> set[str]:
    from iot_assets.definitions import defs

    graph = defs.get_repository_def().asset_graph
    ops = {defs.get_assets_def(k).op for k in graph.get_all_asset_keys()}
    return {op.name for op in ops if op.pool == LAKE_WRITER_POOL}


def _writer_intervals(instance, run_id: str) -> list[tuple[float, float]]:
    """[start, end] of each of the run's steps in the writers' pool."""
    pooled, times = _pooled_steps(), {}
    for kind in (DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS):
        for record in instance.get_event_records(EventRecordsFilter(event_type=kind)):
            entry = record.event_log_entry
            if entry.run_id == run_id and entry.step_key in pooled:
                times.setdefault(entry.step_key, []).append(entry.timestamp)
    return [(min(t), max(t)) for t in times.values()]


def test_two_concurrent_runs_on_one_table_both_land(resources, spark, lake_prefix):
    lake = DeltaLakehouse(bucket=resources["lake"].bucket, prefix=lake_prefix)
    res = {**resources, "lake": lake}
    overrides = {"concurrency": {"pools": {"default_limit": 1}}}
    with instance_for_test(overrides=overrides) as instance:
        def run(hour):
            return materialize_hours(hour, hour, instance=instance, resources=res, include_registry=False,
                                     selection=SELECTION)

        assert run(FIRST).success  # now the tables exist
        hours = (FIRST + HOUR, FIRST + 2 * HOUR)
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(run, hours))
        assert all(r.success for r in results)
        assert instance.event_log_storage.get_concurrency_info(LAKE_WRITER_POOL).slot_count == 1

        # The writing steps of the two runs never overlapped.
        a, b = (_writer_intervals(instance, r.run_id) for r in results)
        assert len(a) == len(b) == 1  # bronze
        assert not [(x, y) for x in a for y in b if x[0] < y[1] and y[0] < x[1]]

    for hour in (FIRST, *hours):
        for table, column in TABLES:
            assert lake.read_window(spark, table, column, hour, hour + HOUR).count() > 0, (table, hour)
