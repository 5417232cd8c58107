"""Two runs at once on different hours of existing Delta tables: both land, one writer at a time.

Delta's default S3 log store is safe for one writer only, so every Delta-writing step takes a slot
of the `delta_lake_writers` pool, which the instance gives one slot. The two runs are two
processes, each with its own Spark driver, as the daemon launches them. The instance is the
production one (deployments/production/dagster.yaml) on PostgreSQL: slots are claimed with row
locks, which SQLite does not have (two runs claiming in the same instant on SQLite can both get
the slot, which is why the local dagster.yaml runs one run at a time).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dagster import AssetSelection, DagsterEventType, DagsterInstance, EventRecordsFilter

from iot_assets import settings
from iot_assets.lib.partitions import HOUR
from iot_assets.lib.tables import named
from iot_assets.resources.lakehouse import LAKE_WRITER_POOL, DeltaLakehouse
from iot_assets.tools.demo import materialize_hours

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]

FIRST = datetime(2026, 11, 14, 1, tzinfo=UTC)
# Raw to bronze is enough to show it (two Delta tables, plus data_quality_log) and keeps this test short.
SELECTION = AssetSelection.groups("raw", "bronze")


def _pooled_steps() -> set[str]:
    from iot_assets.definitions import executable_assets

    ops = {a.op for a in executable_assets}
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


RUN_ONE_HOUR = """
import sys
from datetime import datetime
from dagster import AssetSelection, DagsterInstance
from iot_assets import settings
from iot_assets.tools.demo import materialize_hours
from iot_assets.resources.config import resolved
hour = datetime.fromisoformat(sys.argv[1])
result = materialize_hours(hour, hour, instance=DagsterInstance.get(), include_registry=False,
                           selection=AssetSelection.groups("raw", "bronze"))
print("RUN", result.run_id, flush=True)
resolved("spark").session.stop()  # the JVM exits with this process
sys.exit(0 if result.success else 1)
"""


def test_two_concurrent_runs_on_one_table_both_land(resources, spark, lake_prefix, tmp_path, postgres, monkeypatch):
    lake = DeltaLakehouse(bucket=settings.get("IOT_BUCKET"), prefix=lake_prefix)
    for key, value in postgres.items():
        monkeypatch.setenv(key, value)
    shutil.copy(ROOT / "deployments/production/dagster.yaml", tmp_path / "dagster.yaml")
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        first = materialize_hours(
            FIRST,
            FIRST,
            instance=instance,
            resources={**resources, "lake": lake},
            include_registry=False,
            selection=SELECTION,
        )
        assert first.success  # now the tables exist

        env = {
            **os.environ,
            "DAGSTER_HOME": str(tmp_path),
            "IOT_LAKE_PREFIX": lake_prefix,
            "IOT_SPARK_DRIVER_MEMORY": "1g",
        }
        hours = (FIRST + HOUR, FIRST + 2 * HOUR)
        logs = [tmp_path / f"run-{i}.log" for i in range(len(hours))]
        # Output to files, not pipes: a pipe stays open while any child (the JVM) lives.
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", RUN_ONE_HOUR, h.isoformat()],
                env=env,
                stdout=log.open("w"),
                stderr=subprocess.STDOUT,
            )
            for h, log in zip(hours, logs, strict=True)
        ]
        try:
            for p in procs:
                p.wait(timeout=600)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
        outs = [log.read_text() for log in logs]
        assert all(p.returncode == 0 for p in procs), "\n".join(o[-3000:] for o in outs)
        run_ids = [next(line.split()[1] for line in o.splitlines() if line.startswith("RUN ")) for o in outs]
        assert instance.event_log_storage.get_concurrency_info(LAKE_WRITER_POOL).slot_count == 1

        # The writing steps of the two runs never overlapped.
        a, b = (_writer_intervals(instance, run_id) for run_id in run_ids)
        assert len(a) == len(b) == 2  # raw (its checks append to data_quality_log) and bronze
        assert not [(x, y) for x in a for y in b if x[0] < y[1] and y[0] < x[1]]

    # Every hour landed. (Its quarantine may be empty: the simulator garbles about 1% of readings.)
    for hour in (FIRST, *hours):
        assert lake.read_window(spark, named("bronze_sensor_readings"), hour, hour + HOUR).count() > 0, hour
