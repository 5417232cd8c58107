"""The production instance for real: PostgreSQL from Debian's packages on 127.0.0.1.

`scripts/postgres_local.sh` installs the server if it is missing (apt) and starts a throwaway
cluster; deployments/production/dagster.yaml, unchanged, points Dagster at it through the
DAGSTER_POSTGRES_* variables. One hour is materialised, and the run, its events and the asset's
materialisation are read back from PostgreSQL itself. A machine without apt fails here, loudly.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
import pytest
from dagster import AssetSelection, DagsterEventType, DagsterInstance, DagsterRunStatus

from iot_assets.tools.demo import materialize_hours

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
HOUR = datetime(2026, 11, 12, 3, tzinfo=UTC)


@pytest.fixture()
def production_instance(postgres, tmp_path, monkeypatch):
    for key, value in postgres.items():
        monkeypatch.setenv(key, value)
    shutil.copy(ROOT / "deployments/production/dagster.yaml", tmp_path / "dagster.yaml")
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        yield instance


def _query(env: dict, sql: str, *args):
    with (
        psycopg2.connect(
            host=env["DAGSTER_POSTGRES_HOST"],
            port=int(env["DAGSTER_POSTGRES_PORT"]),
            user=env["DAGSTER_POSTGRES_USER"],
            password=env["DAGSTER_POSTGRES_PASSWORD"],
            dbname=env["DAGSTER_POSTGRES_DB"],
        ) as conn,
        conn.cursor() as cur,
    ):
        cur.execute(sql, args)
        return cur.fetchall()


def test_production_instance_stores_runs_and_events_in_postgres(production_instance, postgres, resources):
    instance = production_instance
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"

    # Raw and bronze: two steps, two Delta tables and their checks are enough to show the storage.
    result = materialize_hours(HOUR, HOUR, instance=instance, selection=AssetSelection.groups("raw", "bronze"))
    assert result.success

    [(status,)] = _query(postgres, "SELECT status FROM runs WHERE run_id = %s", result.run_id)
    assert status == DagsterRunStatus.SUCCESS.value
    events = dict(
        _query(
            postgres,
            "SELECT dagster_event_type, count(*) FROM event_logs WHERE run_id = %s GROUP BY dagster_event_type",
            result.run_id,
        )
    )
    count = {t: events.get(t.value, 0) for t in DagsterEventType}
    assert count[DagsterEventType.RUN_SUCCESS] == 1 and count[DagsterEventType.STEP_SUCCESS] == 2, events
    assert count[DagsterEventType.ASSET_MATERIALIZATION] == 3, events
    assert count[DagsterEventType.ASSET_CHECK_EVALUATION] >= 4, events
    [(partition,)] = _query(
        postgres,
        "SELECT partition FROM event_logs WHERE run_id = %s AND "
        "dagster_event_type = 'ASSET_MATERIALIZATION' AND asset_key = %s",
        result.run_id,
        '["bronze_sensor_readings"]',
    )
    assert partition == "2026-11-12-03:00"
    # The Delta writers' pool lives in the same database, with the yaml's default of one slot.
    assert _query(
        postgres,
        "SELECT concurrency_key, count(*) FROM concurrency_slots "
        "WHERE concurrency_key = 'delta_lake_writers' AND NOT deleted GROUP BY 1",
    ) == [("delta_lake_writers", 1)]
