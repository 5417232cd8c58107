"""The data-quality checks on small hand-made frames with known answers."""

from datetime import UTC, datetime, timedelta

import pyspark.sql.types as T
import pytest
from dagster import AssetCheckSeverity

from iot_assets.assets.bronze import BronzeReading, QuarantinedRecord
from iot_assets.assets.gold import DailyDeviceSummary, DeviceHourlyStats, SensorAggregates10Min
from iot_assets.assets.models import DeviceAnomalyModel
from iot_assets.assets.registry import DeviceRecord
from iot_assets.assets.silver import RejectedReading, SilverReading
from iot_assets.assets.verdicts import AnomalyRecord
from iot_assets.lib import quality
from iot_assets.lib.schemas import struct_type

H = datetime(2026, 11, 21, 10, tzinfo=UTC)
MODELS = [
    BronzeReading,
    QuarantinedRecord,
    SilverReading,
    RejectedReading,
    DeviceHourlyStats,
    SensorAggregates10Min,
    DailyDeviceSummary,
    DeviceAnomalyModel,
    AnomalyRecord,
    DeviceRecord,
    quality.DataQualityRecord,
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_pandera_rule_has_a_spark_rule(spark, model):
    named = quality.rules(model)
    cols = model.to_schema().columns
    assert len(named) == sum((not c.nullable) + len(c.checks) for c in cols.values())


def registry_rows(spark, rows):
    """Rows as a reader yields them: JSON and Delta readers do not enforce non-nullable fields."""
    return spark.createDataFrame(
        rows, T.StructType([T.StructField(f.name, f.dataType, True) for f in struct_type(DeviceRecord).fields])
    )


def test_schema_check_counts_rule_failures_and_shows_examples(spark):
    df = registry_rows(
        spark,
        [
            ("d1", "a", "s", "pump", 10.0, 20.0),
            ("d2", "b", None, "pump", 95.0, 20.0),
            ("d3", "c", "s", "pump", 0.0, 0.0),
        ],
    )
    e = quality.check_schema(df, DeviceRecord, "device_registry", "check_registry_schema", None, ["device_id"])
    assert not e.passed and e.failed_rows == 1 and e.passed_rows == 2
    assert e.detail["failures_by_rule"] == {"site:not_null": 1, "latitude:less_than_or_equal_to": 1}
    assert e.detail["examples"] == [
        {"device_id": "d2", "broken_rules": ["site:not_null", "latitude:less_than_or_equal_to"]}
    ]
    assert e.detail["null_rates"] == {}
    result = e.result()
    assert result.metadata["failed_rows"].value == 1 and result.severity == AssetCheckSeverity.ERROR


def test_schema_check_reports_schema_drift(spark):
    ok = registry_rows(spark, [("d1", "a", "s", "pump", 10.0, 20.0)])
    drifted = (
        ok.drop("site").withColumn("firmware", ok["device_id"]).withColumn("latitude", ok["latitude"].cast("string"))
    )
    e = quality.check_schema(drifted, DeviceRecord, "device_registry", "check_registry_schema", None, ["device_id"])
    assert not e.passed
    problems = " ".join(e.detail["schema_problems"])
    assert "site" in problems and "firmware" in problems and "latitude" in problems
    assert quality.check_schema(ok, DeviceRecord, "device_registry", "c", None, ["device_id"]).passed


def test_unique_counts_surplus_copies_per_partition(spark):
    df = spark.createDataFrame(
        [
            ("d1", H, H),
            ("d1", H, H),
            ("d1", H, H),
            ("d2", H, H),
            ("d1", H + timedelta(hours=1), H + timedelta(hours=1)),
        ],
        "device_id string, event_time timestamp, event_hour timestamp",
    )
    e = quality.check_unique(df, ["device_id", "event_time"], "silver_sensor_readings", "u", "event_hour")
    assert not e.passed and e.by_partition == {H: (2, 2), H + timedelta(hours=1): (1, 0)}
    assert e.detail["examples"][0]["count"] == 3


def test_reconciliation_counts_lost_and_invented_rows():
    h2 = H + timedelta(hours=1)
    ok = quality.check_reconciles(
        {H: 10, h2: 5}, {"bronze": {H: 9, h2: 5}, "quarantine": {H: 1}}, "a", "c", "raw = b + q"
    )
    assert ok.passed and ok.failed_rows == 0 and ok.passed_rows == 15
    bad = quality.check_reconciles(
        {H: 10, h2: 5}, {"bronze": {H: 9, h2: 7}, "quarantine": {H: 0}}, "a", "c", "raw = b + q"
    )
    assert not bad.passed and bad.by_partition == {H: (9, 1), h2: (5, 2)}
    assert bad.detail["examples"][1] == {"partition": "2026-11-21-11:00", "expected": 5, "bronze": 7, "quarantine": 0}


def test_a_check_on_the_written_frame_fails_when_the_commit_wrote_other_rows():
    def schema_check():
        return quality.Evaluation("a", "c", AssetCheckSeverity.ERROR, True, {H: (9, 1)}, "10 rows checked")

    same = quality.as_committed(schema_check(), 10)
    assert same.passed and same.detail["committed_rows"] == 10 and same.description == "10 rows checked"
    other = quality.as_committed(schema_check(), 12)
    assert not other.passed
    assert other.description.startswith("the Delta commit wrote 12 rows, but the check saw 10")


def test_rate_warns_above_the_limit():
    h2 = H + timedelta(hours=1)
    e = quality.check_rate({H: 1, h2: 30}, {H: 100, h2: 100}, 0.05, "bronze_quarantine", "r", "quarantined")
    assert not e.passed and e.severity == AssetCheckSeverity.WARN
    assert e.by_partition == {H: (100, 0), h2: (70, 30)} and e.detail["rate"] == 0.155


def test_log_rows_one_per_check_and_partition():
    h2 = H + timedelta(hours=1)
    e = quality.Evaluation(
        "silver_sensor_readings",
        "check_x",
        AssetCheckSeverity.ERROR,
        False,
        {H: (10, 0), h2: (8, 2)},
        "2 of 20 rows break a rule",
    )
    rows = quality.log_rows([e], "run-1", now=datetime(2026, 11, 21, 12, 5))
    assert [(r[4], r[5], r[7], r[8]) for r in rows] == [
        ("2026-11-21-10:00", "passed", 10, 0),
        ("2026-11-21-11:00", "failed", 8, 2),
    ]
    drift = quality.Evaluation(
        "silver_sensor_readings",
        "check_x",
        AssetCheckSeverity.ERROR,
        False,
        {H: (10, 0), h2: (10, 0)},
        "schema differs",
    )
    assert {r[5] for r in quality.log_rows([drift], "run-2")} == {"failed"}


def test_partition_keys_become_the_checks_keys():
    from datetime import date

    assert quality.partitions_of(["2026-11-21-10:00", "2026-11-21"]) == [H, date(2026, 11, 21)]
