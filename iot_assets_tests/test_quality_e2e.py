"""A bad reference file reaches silver: the blocking silver checks fail, say why, and gold is not run.

The registry lists one device twice and another without a site. Silver's dedup rejects the
doubled readings as duplicates (so bronze no longer equals silver + rejected), and the readings
of the device without a site break silver's not-null rule. Both are blocking ERROR checks, so the
run stops before gold; the checks' metadata and the data-quality log say what failed.
"""

import json
from datetime import UTC, datetime

import pytest
from dagster import AssetKey, DagsterInstance, materialize
from pyspark.sql import functions as F

from iot_assets.assets.registry import REFERENCE_KEY
from iot_assets.automation.jobs import HOURLY_PIPELINE
from iot_assets.lib.partitions import HOUR, hour_key
from iot_assets.lib.quality import DATA_QUALITY_LOG
from iot_assets.lib.tables import named
from iot_assets.resources.config import resolved
from iot_assets.tools.demo import QUIET
from iot_assets.tools.simulator import device_registry, simulate_hour

pytestmark = pytest.mark.e2e

BAD_HOUR = datetime(2026, 11, 12, 7, tzinfo=UTC)


def evaluations(result) -> dict:
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


@pytest.fixture(scope="module")
def bad_run(resources, spark):
    from iot_assets.definitions import defs, executable_assets

    aws, lake, raw = resolved("aws"), resolved("lake"), resolved("raw_source")
    fleet = {d.device_id: d.__dict__ for d in device_registry(raw.fleet)}
    doubled, siteless = "dev-0001", "dev-0002"
    listed = [fleet[doubled], fleet[doubled], {**fleet[siteless], "site": None}]
    aws.s3.put_object(Bucket=lake.bucket, Key=REFERENCE_KEY, Body="\n".join(json.dumps(d) for d in listed).encode())
    every = executable_assets
    instance = DagsterInstance.ephemeral()
    try:
        registry = materialize(
            every,
            selection=["device_registry"],
            instance=instance,
            resources=defs.resources,
            run_config=QUIET,
            raise_on_error=False,
        )
        hour = materialize(
            every,
            selection=HOURLY_PIPELINE,
            partition_key=hour_key(BAD_HOUR),
            instance=instance,
            resources=defs.resources,
            run_config=QUIET,
            raise_on_error=False,
        )
    finally:
        aws.s3.delete_object(Bucket=lake.bucket, Key=REFERENCE_KEY)
        # Leave a clean registry for the tests that follow.
        materialize(every, selection=["device_registry"], instance=instance, resources=defs.resources, run_config=QUIET)
    sim = simulate_hour(BAD_HOUR, raw.fleet)
    per_device = {d: sum(1 for r in sim.records if f'"device_id":"{d}"' in r) for d in (doubled, siteless)}
    return registry, hour, per_device, lake


def test_registry_checks_fail_on_the_reference_file(bad_run):
    registry, _, _, _ = bad_run
    got = evaluations(registry)
    assert not got[("device_registry", "check_registry_unique_devices")].passed
    assert got[("device_registry", "check_registry_unique_devices")].metadata["failed_rows"].value == 1
    schema = got[("device_registry", "check_registry_schema")]
    assert not schema.passed and schema.metadata["failures_by_rule"].value == {"site:not_null": 1}


def test_blocking_silver_checks_fail_with_counts_and_examples(bad_run, spark):
    _, run, per_device, lake = bad_run
    assert not run.success
    got = evaluations(run)
    schema = got[("silver_sensor_readings", "check_silver_schema")]
    assert not schema.passed and schema.blocking
    silver = lake.read_window(spark, named("silver_sensor_readings"), BAD_HOUR, BAD_HOUR + HOUR)
    siteless = silver.where(F.col("site").isNull()).count()
    assert siteless > 0 and abs(siteless - per_device["dev-0002"]) <= 2  # a malformed record or two aside
    assert schema.metadata["failed_rows"].value == siteless
    assert schema.metadata["failures_by_rule"].value == {"site:not_null": siteless}
    assert {e["device_id"] for e in schema.metadata["examples"].value} == {"dev-0002"}

    recon = got[("silver_sensor_readings", "check_silver_reconciles_bronze")]
    rejected = lake.read_window(spark, named("silver_rejected_readings"), BAD_HOUR, BAD_HOUR + HOUR)
    doubled = rejected.where((F.col("reason") == "duplicate") & (F.col("device_id") == "dev-0001")).count()
    assert not recon.passed and recon.metadata["failed_rows"].value == doubled > 0
    assert got[("silver_sensor_readings", "check_silver_unique_readings")].passed  # dedup did its job
    assert got[("bronze_sensor_readings", "check_bronze_reconciles_raw")].passed


def test_downstream_of_silver_did_not_run(bad_run):
    _, run, _, _ = bad_run
    materialized = {e.asset_key for e in run.get_asset_materialization_events()}
    assert AssetKey("silver_sensor_readings") in materialized
    assert not materialized & {AssetKey("device_hourly_stats"), AssetKey("sensor_aggregates_10min")}


def test_data_quality_log_records_the_failures(bad_run, spark):
    _, run, _, lake = bad_run
    log = lake.read(spark, DATA_QUALITY_LOG).where(F.col("run_id") == run.run_id)
    rows = {(r["check_name"], r["partition"]): r for r in log.collect()}
    failed = rows[("check_silver_schema", hour_key(BAD_HOUR))]
    assert failed["status"] == "failed" and failed["failed_rows"] > 0 and failed["severity"] == "ERROR"
    assert rows[("check_bronze_schema", hour_key(BAD_HOUR))]["status"] == "passed"
