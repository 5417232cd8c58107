"""Silver transforms on small hand-made frames with known answers."""

import random
from datetime import UTC, datetime, timedelta

import pytest
from pyspark.sql import Window
from pyspark.sql import functions as F

from iot_assets.assets.bronze import BronzeReading
from iot_assets.assets.registry import DeviceRecord
from iot_assets.assets.silver import KEYS, ROLLING_METRICS, RejectedReading, SilverReading, read_back_checks, to_silver
from iot_assets.lib import quality, reasons
from iot_assets.lib.schemas import struct_type

T0 = datetime(2026, 11, 21, 10, 0, 0)


def bronze_row(i, dev="dev-0001", minute=0.0, temperature=50.0, status="normal", vibration=1.0, humidity=40.0):
    t = T0 + timedelta(minutes=minute)
    return (
        dev,
        t,
        temperature,
        humidity,
        2.0,
        vibration,
        80.0,
        -60.0,
        status,
        None,
        "simulator",
        "s3a://b/raw",
        i,
        None,
        None,
        None,
        None,
        t,
        t.replace(minute=0, second=0, microsecond=0),
    )


@pytest.fixture(scope="module")
def registry(spark):
    return spark.createDataFrame(
        [("dev-0001", "pump-1", "plant", "pump", 50.0, 5.0), ("dev-0002", "pump-2", "plant", "pump", 50.0, 5.0)],
        struct_type(DeviceRecord),
    )


def run(spark, registry, rows):
    df = spark.createDataFrame(rows, struct_type(BronzeReading))
    silver, rejected = to_silver(df, registry, T0, T0 + timedelta(hours=1))
    return silver.orderBy("device_id", "event_time").collect(), rejected.orderBy("record_index").collect()


def test_rejections_have_reasons(spark, registry):
    rows = [
        bronze_row(0),
        bronze_row(1, minute=1, humidity=140.0),
        bronze_row(2, minute=2, status="bogus"),
        bronze_row(3, dev="dev-9999", minute=3),
        bronze_row(4, minute=0),
        bronze_row(5, minute=4),
    ]
    silver, rejected = run(spark, registry, rows)
    assert [(r["record_index"], r["reason"]) for r in rejected] == [
        (1, reasons.OUT_OF_RANGE),
        (2, reasons.INVALID_STATUS),
        (3, reasons.UNKNOWN_DEVICE),
        (4, reasons.DUPLICATE),
    ]
    assert rejected[0]["reason_detail"] == "humidity=140.0"
    assert [r["record_index"] for r in silver] == [0, 5]
    assert len(silver) + len(rejected) == len(rows)


def test_duplicate_of_a_rejected_reading_is_kept(spark, registry):
    silver, rejected = run(spark, registry, [bronze_row(0, status="bogus"), bronze_row(1)])
    assert [r["record_index"] for r in silver] == [1] and rejected[0]["reason"] == reasons.INVALID_STATUS


def test_rolling_average_and_vibration_category(spark, registry):
    rows = [
        bronze_row(i, minute=m, temperature=t, vibration=v)
        for i, (m, t, v) in enumerate([(0, 10.0, 1.0), (2, 20.0, 2.0), (4, 30.0, 5.0), (7, 40.0, 1.7)])
    ]
    silver, _ = run(spark, registry, rows)
    assert [r["temperature_avg_5min"] for r in silver] == [10.0, 15.0, 20.0, 35.0]
    assert [r["vibration_category"] for r in silver] == ["Low", "Medium", "High", "Low"]
    assert silver[0]["device_name"] == "pump-1" and silver[0]["site"] == "plant"


def test_previous_hour_tail_seeds_rolling_but_is_not_emitted(spark, registry):
    rows = [bronze_row(0, minute=-2, temperature=10.0), bronze_row(1, minute=1, temperature=30.0)]
    silver, rejected = run(spark, registry, rows)
    assert [r["record_index"] for r in silver] == [1] and not rejected
    assert silver[0]["temperature_avg_5min"] == 20.0


def test_of_several_copies_the_first_fit_one_received_is_kept(spark, registry):
    # One instant, five readings: unfit ones keep their own reason and do not count as the original.
    rows = [
        bronze_row(0, status="bogus"),
        bronze_row(1),
        bronze_row(2),
        bronze_row(3, humidity=140.0),
        bronze_row(4),
        bronze_row(5, minute=1),
        bronze_row(6, dev="dev-0002"),
    ]
    silver, rejected = run(spark, registry, rows)
    assert [r["record_index"] for r in silver] == [1, 5, 6]
    assert [(r["record_index"], r["reason"]) for r in rejected] == [
        (0, reasons.INVALID_STATUS),
        (2, reasons.DUPLICATE),
        (3, reasons.OUT_OF_RANGE),
        (4, reasons.DUPLICATE),
    ]
    # Across raw objects, the earlier object's copy is the one kept.
    later, earlier = list(bronze_row(0)), list(bronze_row(1))
    later[11], earlier[11] = "s3a://b/raw/hour=02", "s3a://b/raw/hour=01"
    silver, rejected = run(spark, registry, [tuple(later), tuple(earlier)])
    assert [r["source_object"] for r in silver] == ["s3a://b/raw/hour=01"]
    assert [r["source_object"] for r in rejected] == ["s3a://b/raw/hour=02"]


def test_rolling_averages_equal_the_direct_five_minute_mean(spark, registry):
    # The running-total formula against Spark's own average over a (t - 5 min, t] range frame.
    rng = random.Random(7)
    rows = [
        bronze_row(
            i,
            dev=rng.choice(["dev-0001", "dev-0002"]),
            minute=rng.uniform(-5, 59.9),
            temperature=rng.uniform(-50, 240),
            humidity=rng.uniform(0, 100),
        )
        for i in range(400)
    ]
    silver, _ = run(spark, registry, rows)
    direct = Window.partitionBy("device_id").orderBy(F.unix_millis("event_time")).rangeBetween(-299_999, 0)
    expected = {
        (r["device_id"], r["event_time"]): r
        for r in (
            spark.createDataFrame(rows, struct_type(BronzeReading))
            .select("device_id", "event_time", *[F.avg(m).over(direct).alias(m) for m in ROLLING_METRICS])
            .collect()
        )
    }
    assert len(silver) > 300
    for r in silver:
        want = expected[(r["device_id"], r["event_time"])]
        for m in ROLLING_METRICS:
            assert r[f"{m}_avg_5min"] == pytest.approx(want[m], rel=1e-9, abs=1e-9)


def observed_and_read_back(spark, silver, rejected, hours, where):
    """The silver checks observed on writes to `where` (`quality.WriteObservation`), and the same
    checks on the tables read back."""

    def table(name):
        return lambda: spark.read.format("delta").load(where[name])

    on_silver, on_rejected = (
        quality.WriteObservation("event_hour", hours),
        quality.WriteObservation("event_hour", hours),
    )
    on_silver.schema(silver, SilverReading, "silver_sensor_readings", "check_silver_schema", KEYS, table("silver"))
    on_silver.unique(
        ["device_id", "event_time"], "silver_sensor_readings", "check_silver_unique_readings", table("silver")
    )
    on_rejected.schema(
        rejected, RejectedReading, "silver_rejected_readings", "check_rejected_schema", KEYS, table("rejected")
    )
    on_silver.on(silver).write.format("delta").partitionBy("event_hour").save(where["silver"])
    on_rejected.on(rejected).write.format("delta").partitionBy("event_hour").save(where["rejected"])
    observed = on_silver.evaluations() + on_rejected.evaluations()
    read_back = read_back_checks(table("silver")(), table("rejected")())
    for o, r in zip(observed, read_back, strict=True):
        assert (o.check, o.passed, o.by_partition) == (r.check, r.passed, r.by_partition)
        for key in ("failures_by_rule", "null_rates", "schema_problems"):
            assert o.detail.get(key) == r.detail.get(key), key
    return observed


def test_checks_on_the_rows_written_equal_the_checks_read_back(spark, registry, tmp_path):
    """Over two hours: clean, then with a copied row and a missing site (a failing check is made
    again on the table read back, for its detail)."""
    end = T0 + timedelta(hours=2)
    rows = [bronze_row(i, minute=3.0 * i) for i in range(30)] + [bronze_row(40, minute=61, humidity=140.0)]
    df = spark.createDataFrame(rows, struct_type(BronzeReading))
    silver, rejected = to_silver(df, registry, T0, end)
    h0, h1 = hours = [T0.replace(tzinfo=UTC), (T0 + timedelta(hours=1)).replace(tzinfo=UTC)]

    where = {"silver": str(tmp_path / "clean"), "rejected": str(tmp_path / "rejected")}
    schema, unique, rejected_schema = observed_and_read_back(spark, silver, rejected, hours, where)
    assert schema.passed and unique.passed and rejected_schema.passed
    assert schema.by_partition == unique.by_partition == {h0: (20, 0), h1: (10, 0)}
    assert rejected_schema.by_partition == {h1: (1, 0)}

    copy = silver.where("record_index = 25").withColumn("record_index", F.lit(99).cast("long"))
    silver = silver.unionByName(copy).withColumn("site", F.when(F.col("record_index") != 3, F.col("site")))
    where = {"silver": str(tmp_path / "defects"), "rejected": str(tmp_path / "rejected-again")}
    schema, unique, _ = observed_and_read_back(spark, silver, rejected, hours, where)
    assert schema.by_partition == {h0: (19, 1), h1: (11, 0)}
    assert schema.detail["failures_by_rule"] == {"site:not_null": 1}
    assert [e["record_index"] for e in schema.detail["examples"]] == [3]
    assert unique.by_partition == {h0: (20, 0), h1: (10, 1)} and unique.detail["examples"][0]["count"] == 2
    assert not quality.WriteObservation.fits([]) and not quality.WriteObservation.fits(list(range(49)))
