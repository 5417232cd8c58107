"""Two consecutive hours end to end through the local AWS endpoint, Spark, and Delta on s3a.

Counts must reconcile with what the simulator says it produced: raw = bronze + quarantine,
bronze = silver + rejected, each reason as predicted, and gold sums back to silver. Then the
first hour is materialised again: its rows stay the same and the second hour is untouched.
"""

from collections import Counter
from datetime import UTC, datetime

import pytest
from pyspark.sql import functions as F

from iot_assets.lib.partitions import HOUR
from iot_assets.lib.tables import named
from iot_assets.resources.config import resolved
from iot_assets.tools.demo import materialize_hours
from iot_assets.tools.simulator import simulate_hour

pytestmark = pytest.mark.e2e

H1 = datetime(2026, 11, 10, 10, tzinfo=UTC)
H2 = H1 + HOUR
VOLATILE = ("ingest_time",)


def rows(spark, lake, table, column, hour):
    df = lake.read_window(spark, named(table), hour, hour + HOUR)
    keep = [c for c in df.columns if c not in VOLATILE]
    return sorted(tuple(r) for r in df.select(keep).collect())


def files(spark, lake, table, hour):
    df = lake.read_window(spark, named(table), hour, hour + HOUR)
    return sorted(r[0] for r in df.select(F.input_file_name()).distinct().collect())


@pytest.fixture(scope="module")
def lake(resources):
    return resolved("lake")


@pytest.fixture(scope="module")
def runs(resources, spark, lake):
    out = {}
    for hour in (H1, H2):
        out[hour] = materialize_hours(hour, hour, include_registry=hour == H1)
        assert out[hour].success
    return out


@pytest.fixture(scope="module")
def two_hours(runs):
    raw = resolved("raw_source")
    return {h: simulate_hour(h, raw.fleet) for h in (H1, H2)}


def test_every_check_passes_on_clean_hours_and_is_logged(runs, spark, lake):
    for result in runs.values():
        evaluations = result.get_asset_check_evaluations()
        failed = [(e.asset_key.to_user_string(), e.check_name, e.description) for e in evaluations if not e.passed]
        assert not failed
        names = {e.check_name for e in evaluations}
        assert {
            "check_bronze_reconciles_raw",
            "check_silver_schema",
            "check_silver_unique_readings",
            "check_silver_reconciles_bronze",
            "check_device_hourly_stats_reconciles_silver",
        } <= names
        recon = next(e for e in evaluations if e.check_name == "check_silver_reconciles_bronze")
        assert recon.metadata["failed_rows"].value == 0 and recon.metadata["passed_rows"].value > 0
        log = lake.read(spark, "data_quality_log").where(F.col("run_id") == result.run_id)
        assert log.where("status = 'failed'").count() == 0
        # Every check of ours is logged, from arrival on (Dagster's own freshness check is not ours to log).
        assert {"check_raw_reconciles_arrivals", "check_landing_keys_name_an_hour"} <= names
        ours = {n for n in names if n.startswith("check_")}
        assert {r[0] for r in log.select("check_name").distinct().collect()} == ours


@pytest.mark.parametrize("hour", [H1, H2], ids=["h1", "h2"])
def test_layers_reconcile(two_hours, spark, lake, hour):
    sim = two_hours[hour]
    bronze = lake.read_window(spark, named("bronze_sensor_readings"), hour, hour + HOUR)
    quarantine = lake.read_window(spark, named("bronze_quarantine"), hour, hour + HOUR)
    silver = lake.read_window(spark, named("silver_sensor_readings"), hour, hour + HOUR)
    rejected = lake.read_window(spark, named("silver_rejected_readings"), hour, hour + HOUR)

    n_bronze, n_quarantine, n_silver, n_rejected = bronze.count(), quarantine.count(), silver.count(), rejected.count()
    assert n_bronze + n_quarantine == len(sim.records)
    assert n_silver + n_rejected == n_bronze
    assert (
        Counter({r["reason"]: r["count"] for r in quarantine.groupBy("reason").count().collect()})
        == sim.expected_quarantine
    )
    assert (
        Counter({r["reason"]: r["count"] for r in rejected.groupBy("reason").count().collect()})
        == sim.expected_rejected
    )
    assert n_silver == sim.valid_readings
    assert silver.select("device_id", "event_time").distinct().count() == n_silver

    hourly = lake.read_window(spark, named("device_hourly_stats"), hour, hour + HOUR)
    assert hourly.count() == resolved("raw_source").device_count
    assert hourly.agg(F.sum("reading_count")).first()[0] == n_silver
    ten = lake.read_window(spark, named("sensor_aggregates_10min"), hour, hour + HOUR)
    assert ten.agg(F.sum("record_count")).first()[0] == n_silver
    assert ten.where((F.unix_timestamp("window_end") - F.unix_timestamp("window_start")) != 600).count() == 0


def test_quarantine_keeps_text_and_reason(two_hours, spark, lake):
    q = lake.read_window(spark, named("bronze_quarantine"), H1, H1 + HOUR).collect()
    assert q and all(
        r["payload"] and r["reason"] and r["source_object"].endswith(".jsonl.gz") and "/raw/" in r["source_object"]
        for r in q
    )


def test_rematerialising_is_idempotent(two_hours, spark, lake):
    tables = [
        ("bronze_sensor_readings", "event_hour"),
        ("bronze_quarantine", "batch_hour"),
        ("silver_sensor_readings", "event_hour"),
        ("silver_rejected_readings", "event_hour"),
        ("device_hourly_stats", "event_hour"),
        ("sensor_aggregates_10min", "event_hour"),
    ]
    before = {t: rows(spark, lake, t, c, H1) for t, c in tables}
    h2_before = {t: rows(spark, lake, t, c, H2) for t, c in tables}
    h2_files = files(spark, lake, "silver_sensor_readings", H2)

    assert materialize_hours(H1, H1, include_registry=False).success

    assert {t: rows(spark, lake, t, c, H1) for t, c in tables} == before
    assert {t: rows(spark, lake, t, c, H2) for t, c in tables} == h2_before
    assert files(spark, lake, "silver_sensor_readings", H2) == h2_files


def test_bronze_carries_kinesis_metadata(two_hours, spark, lake):
    b = lake.read_window(spark, named("bronze_sensor_readings"), H1, H1 + HOUR)
    assert b.where(F.col("kinesis_sequence_number").isNull() | F.col("kinesis_shard_id").isNull()).count() == 0
    assert b.select("source").distinct().collect()[0][0] == "simulator"
