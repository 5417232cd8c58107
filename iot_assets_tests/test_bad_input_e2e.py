"""The bad-input corpus end to end: every fixture landed as a file for one hour, then one run of
raw -> bronze -> silver on the local stack (moto over sockets, Spark, Delta on s3a).

Counts reconcile (raw = bronze + quarantine, bronze = silver + rejected), each reason has exactly
the corpus's count, and no bad device id reaches an S3 key.
"""

import uuid
from collections import Counter

import pytest
from dagster import AssetSelection
from pyspark.sql import functions as F

from iot_assets.automation.s3_arrivals import LANDING_RUN_CONFIG
from iot_assets.lib.partitions import HOUR as ONE_HOUR
from iot_assets.lib.partitions import raw_key
from iot_assets.lib.tables import named
from iot_assets.resources.config import resolved
from iot_assets.resources.io_managers import S3KinesisRawIOManager
from iot_assets.resources.lakehouse import DeltaLakehouse
from iot_assets.resources.landing import LandingZone
from iot_assets.tools.demo import materialize_hours
from iot_assets_tests.bad_input import BAD_DEVICE_IDS, HOUR, body, expected_outcomes, names

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def landed(resources, spark):
    from iot_assets.definitions import defs

    uid = uuid.uuid4().hex[:8]
    aws, bucket = resolved("aws"), resolved("lake").bucket
    landing = LandingZone(aws=aws, bucket=bucket, prefix=f"landing-{uid}")
    for name in names():
        aws.s3.put_object(Bucket=bucket, Key=raw_key(landing.prefix, HOUR, name), Body=body(name))
    lake = DeltaLakehouse(bucket=bucket, prefix=f"bad{uid}")
    raw_io = S3KinesisRawIOManager(aws=aws, bucket=bucket, prefix=f"raw-{uid}")
    result = materialize_hours(
        HOUR,
        HOUR,
        resources={**defs.resources, "landing": landing, "lake": lake, "raw_io_manager": raw_io},
        selection=AssetSelection.groups("raw", "bronze", "silver"),
        run_config=LANDING_RUN_CONFIG,
    )
    assert result.success
    tables = {
        t: lake.read_window(spark, named(t), HOUR, HOUR + ONE_HOUR)
        for t, c in (
            ("bronze_sensor_readings", "event_hour"),
            ("bronze_quarantine", "batch_hour"),
            ("silver_sensor_readings", "event_hour"),
            ("silver_rejected_readings", "event_hour"),
        )
    }
    return result, tables, aws, bucket, uid


def test_counts_reconcile_and_every_reason_is_as_the_corpus_says(landed):
    result, t, _, _, _ = landed
    expected = expected_outcomes()
    raw = result.asset_materializations_for_node("raw_sensor_batches")[0].metadata["dagster/partition_row_count"].value
    bronze, quarantine = t["bronze_sensor_readings"].count(), t["bronze_quarantine"].count()
    silver, rejected = t["silver_sensor_readings"].count(), t["silver_rejected_readings"].count()
    assert raw == len(expected) == bronze + quarantine
    assert bronze == silver + rejected
    want = Counter(o for o in expected)
    got = Counter(
        {
            ("quarantine", r): n
            for r, n in Counter(x[0] for x in t["bronze_quarantine"].select("reason").collect()).items()
        }
    )
    got.update(
        {
            ("rejected", r): n
            for r, n in Counter(x[0] for x in t["silver_rejected_readings"].select("reason").collect()).items()
        }
    )
    got[("silver", None)] = silver
    assert got == want
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["check_bronze_reconciles_raw"] and checks["check_silver_reconciles_bronze"]
    assert checks["check_silver_schema"] and checks["check_silver_unique_readings"]


def test_accepted_timestamps_are_utc_and_in_the_hour(landed):
    _, t, _, _, _ = landed
    times = sorted(r[0].strftime("%H:%M:%S.%f") for r in t["silver_sensor_readings"].select("event_time").collect())
    minutes = [17, 18, 19, 20, 21, 25, 26, 29, *range(30, 46)]
    assert times == sorted(
        [f"12:{m}:00.{250000 if m == 20 else 0:06d}" for m in minutes] + [f"12:46:{s:02d}.000000" for s in range(16)]
    )


def test_bad_device_ids_never_reach_a_key_or_path(landed):
    _, t, aws, bucket, uid = landed
    keys = [
        o["Key"]
        for page in aws.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])
    ]
    mine = [k for k in keys if uid in k]
    assert mine
    for bad in BAD_DEVICE_IDS:
        assert not any(bad in k for k in keys)
        assert t["bronze_sensor_readings"].where(F.col("device_id") == bad).count() == 0
    q = t["bronze_quarantine"].where(F.col("reason") == "invalid_device_id").collect()
    assert len(q) == len(BAD_DEVICE_IDS) + 1 and all(r["payload"] for r in q)  # text kept as data
