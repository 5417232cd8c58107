"""Gold aggregations with known answers."""

from datetime import datetime, timedelta

import pytest
from pyspark.sql import functions as F

from iot_assets.assets.gold import daily_summary, hourly_stats, ten_minute_aggregates

T0 = datetime(2026, 11, 21, 10, 0, 0)


@pytest.fixture(scope="module")
def silver(spark):
    rows = []
    for dev in ("dev-0001", "dev-0002"):
        for m, temp, vib in ((1, 10.0, 1.0), (5, 20.0, 5.0), (12, 30.0, 2.0), (70, 40.0, 1.0)):
            t = T0 + timedelta(minutes=m)
            rows.append(
                (
                    dev,
                    t,
                    t.replace(minute=0),
                    f"name-{dev}",
                    "site-a",
                    temp,
                    50.0,
                    2.0,
                    vib,
                    90.0 - m,
                    -60.0,
                    "High" if vib >= 4.5 else "Low",
                )
            )
    cols = [
        "device_id",
        "event_time",
        "event_hour",
        "device_name",
        "site",
        "temperature",
        "humidity",
        "pressure",
        "vibration",
        "battery_level",
        "signal_strength",
        "vibration_category",
    ]
    return spark.createDataFrame(rows, cols).withColumn("event_hour", F.date_trunc("hour", "event_time"))


def test_hourly_stats(silver):
    r = {(x["device_id"], x["event_hour"].hour): x for x in hourly_stats(silver).collect()}
    first = r[("dev-0001", 10)]
    assert first["reading_count"] == 3 and first["avg_temperature"] == 20.0
    assert first["min_temperature"] == 10.0 and first["max_temperature"] == 30.0
    assert first["stddev_temperature"] == pytest.approx(10.0)
    assert r[("dev-0001", 11)]["reading_count"] == 1 and r[("dev-0001", 11)]["stddev_temperature"] is None


def test_ten_minute_windows(silver):
    rows = sorted(
        ten_minute_aggregates(silver).where("device_id = 'dev-0001'").collect(), key=lambda x: x["window_start"]
    )
    assert [(x["window_start"].minute, x["window_end"].minute, x["record_count"]) for x in rows] == [
        (0, 10, 2),
        (10, 20, 1),
        (10, 20, 1),
    ]
    assert rows[0]["avg_temperature"] == 15.0 and rows[0]["high_vibration_count"] == 1
    assert rows[0]["min_battery_level"] == 85.0


def test_daily_summary(silver):
    r = {x["device_id"]: x for x in daily_summary(silver).collect()}
    d = r["dev-0002"]
    assert d["reading_count"] == 4 and d["hours_reporting"] == 2 and d["daily_avg_temperature"] == 25.0
    assert d["daily_max_vibration"] == 5.0 and d["high_vibration_count"] == 1 and d["daily_min_battery"] == 20.0
