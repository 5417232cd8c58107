"""Gold aggregations with known answers."""

from datetime import UTC, datetime, timedelta

import pytest
from pyspark.sql import Window
from pyspark.sql import functions as F

from iot_assets.assets.gold import (
    AGGREGATES_10MIN,
    HOURLY_STATS,
    daily_summary,
    hourly_stats,
    ten_minute_aggregates,
)
from iot_assets.lib import quality

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


@pytest.mark.parametrize("transform", [hourly_stats, ten_minute_aggregates, daily_summary])
def test_each_row_carries_its_devices_registry_attributes(silver, transform):
    rows = transform(silver).collect()
    carried = [a for a in ("device_name", "site") if a in rows[0].asDict()]
    assert carried
    for row in rows:
        expected = {"device_name": f"name-{row['device_id']}", "site": "site-a"}
        assert {a: row[a] for a in carried} == {a: expected[a] for a in carried}


@pytest.mark.parametrize("transform", [hourly_stats, ten_minute_aggregates, daily_summary])
def test_the_statistics_are_hashed_not_sorted(silver, transform):
    """An aggregate over a text attribute (`first(site)`) has no fixed-width buffer, and Spark then
    sorts every reading of the window for the whole aggregation: at 1,000 devices x 1/s that sort
    was most of an hourly gold step."""
    plan = transform(silver)._jdf.queryExecution().executedPlan().toString().splitlines()
    # Only the attributes' first() over the distinct rows, a few per group, may be sorted.
    assert any("HashAggregate" in line and "count(1)" in line for line in plan)
    assert not any("SortAggregate" in line and "count(1)" in line for line in plan)


def test_a_device_moved_within_the_day_still_has_one_row_for_the_day(silver):
    """Silver joins the registry as each hour is written, so a day can hold two sites for a device."""
    moved = silver.withColumn(
        "site", F.when(F.col("event_hour").cast("string").endswith("11:00:00"), "site-b").otherwise(F.col("site"))
    )
    rows = daily_summary(moved).where("device_id = 'dev-0001'").collect()
    assert len(rows) == 1 and rows[0]["reading_count"] == 4 and rows[0]["site"] in ("site-a", "site-b")


@pytest.mark.parametrize(
    ("table", "transform", "count_col"),
    [(HOURLY_STATS, hourly_stats, "reading_count"), (AGGREGATES_10MIN, ten_minute_aggregates, "record_count")],
    ids=["hourly", "ten_minute"],
)
def test_checks_counted_as_written_equal_the_checks_read_back(silver, tmp_path, table, transform, count_col):
    """Gold's schema check and sums observed on its write (`quality.WriteObservation`) give what the
    table read back gives: clean, then with a required statistic missing in one row (a failing
    check is made again on the table read back, for its failing rows)."""
    hours = [T0.replace(tzinfo=UTC), (T0 + timedelta(hours=1)).replace(tzinfo=UTC)]
    check = f"check_{table.name}_schema"
    columns = table.model.to_schema().columns
    required = next(n for n, c in columns.items() if n.startswith(("avg_", "min_")) and not c.nullable)

    def observed_and_read_back(rows, where):
        def back():
            return rows.sparkSession.read.format("delta").load(where)

        observing = quality.WriteObservation("event_hour", hours)
        observing.schema(rows, table.model, table.name, check, ["device_id"], back)
        totals = observing.sum(count_col)
        observing.on(rows).write.format("delta").partitionBy("event_hour").save(where)
        (observed,) = observing.evaluations()
        read = quality.check_schema(back(), table.model, table.name, check, "event_hour", ["device_id"])
        assert (observed.passed, observed.by_partition) == (read.passed, read.by_partition)
        for key in ("failures_by_rule", "null_rates", "schema_problems"):
            assert observed.detail.get(key) == read.detail.get(key), key
        sums = back().groupBy("event_hour").agg(F.sum(count_col).alias("n")).collect()
        assert totals() == {quality.partition_value(r["event_hour"]): r["n"] for r in sums}
        return observed, totals()

    rows = transform(silver)
    clean, totals = observed_and_read_back(rows, str(tmp_path / "clean"))
    assert clean.passed and totals == {hours[0]: 6, hours[1]: 2}
    first = F.row_number().over(Window.orderBy("device_id", "event_hour", F.col(count_col).desc()))
    broken = rows.withColumn("_n", first).withColumn(required, F.when(F.col("_n") != 1, F.col(required))).drop("_n")
    defect, totals = observed_and_read_back(broken, str(tmp_path / "defect"))
    assert not defect.passed and defect.failed_rows == 1 and totals == {hours[0]: 6, hours[1]: 2}
    assert defect.detail["failures_by_rule"] == {f"{required}:not_null": 1}


def test_hourly_stats_keep_each_hours_levels(silver):
    """The anomaly log's shift band comes from each hour's median and robust sigma, kept in gold so
    that they are computed once, as the hour is written."""
    from iot_assets.assets.gold import hourly_levels, level_columns

    got = {(r["device_id"], r["event_hour"]): r for r in hourly_stats(silver).collect()}
    want = {(r["device_id"], r["event_hour"]): r for r in hourly_levels(silver).collect()}
    assert set(got) == set(want) and level_columns()
    for key, row in want.items():
        assert {c: got[key][c] for c in level_columns()} == {c: row[c] for c in level_columns()}
    assert got[("dev-0001", T0)]["median_temperature"] == 20.0  # of 10, 20 and 30
