"""Each anomaly method on small hand-made series with known answers, and the evaluation scorer."""

from datetime import datetime, timedelta

import numpy as np
import pytest
from pyspark.sql import functions as F

from iot_assets.assets.anomalies import (
    kmeans_anomalies,
    mature,
    threshold_anomalies,
    trailing_baseline,
    with_verdict,
    zscore_anomalies,
)
from iot_assets.assets.models import FEATURES, train_device
from iot_assets.resources.detection import AnomalyModelConfig, ThresholdRule
from iot_assets.tools.evaluation import Flag, score

H = datetime(2026, 11, 21, 10)
HOUR = timedelta(hours=1)


def readings(spark, rows):
    cols = ["device_id", "event_time", "temperature", "humidity", "pressure", "vibration", "battery_level"]
    return spark.createDataFrame(rows, cols).withColumn("event_hour", F.date_trunc("hour", "event_time"))


def test_threshold_rules_and_severity(spark):
    df = readings(
        spark,
        [
            ("d1", H, 85.0, 50.0, 2.0, 1.0, 90.0),
            ("d1", H + timedelta(minutes=1), 60.0, 50.0, 2.0, 1.0, 10.0),
            ("d1", H + timedelta(minutes=2), 0.0, 50.0, 2.0, 1.0, 90.0),
        ],
    )
    rules = [
        ThresholdRule(metric="temperature", op=">", limit=80.0),
        ThresholdRule(metric="temperature", op="<", limit=5.0),
        ThresholdRule(metric="battery_level", op="<", limit=20.0),
    ]
    got = {
        (r["metric"], r["value"]): (r["severity"], r["limit"]) for r in threshold_anomalies(df, rules, "v").collect()
    }
    assert got == {
        ("temperature", 85.0): ("low", 80.0),
        ("battery_level", 10.0): ("medium", 20.0),
        ("temperature", 0.0): ("high", 5.0),
    }


def test_no_threshold_rules_flag_nothing(spark):
    df = readings(spark, [("d1", H, 85.0, 50.0, 2.0, 1.0, 90.0)])
    assert threshold_anomalies(df, [], "v").count() == 0


def hourly(spark, rows):
    cols = [
        "device_id",
        "event_hour",
        "reading_count",
        *[f"{p}_{m}" for m in ("temperature", "humidity", "pressure", "vibration") for p in ("avg", "stddev")],
    ]
    return with_range(spark.createDataFrame(rows, cols))


def with_range(stats):
    """Each hour's lowest and highest reading, as a Gaussian hour of 60 readings roughly reaches,
    and its median and robust sigma (`hourly_levels`), a Gaussian's mean and sigma."""
    for m in ("temperature", "humidity", "pressure", "vibration"):
        avg, std = F.col(f"avg_{m}"), F.col(f"stddev_{m}")
        stats = stats.withColumn(f"min_{m}", avg - 2.5 * std).withColumn(f"max_{m}", avg + 2.5 * std)
        stats = stats.withColumn(f"median_{m}", avg).withColumn(f"spread_{m}", std)
    return stats


def test_baseline_is_trailing_and_robust(spark):
    rows = [("d1", H - timedelta(hours=i), 60, 50.0, 1.0, 40.0, 1.0, 2.0, 0.1, 1.0, 0.1) for i in range(1, 25)]
    rows[3] = ("d1", H - timedelta(hours=4), 60, 0.0, 20.0, 40.0, 1.0, 2.0, 0.1, 1.0, 0.1)  # a dropout hour
    rows.append(("d1", H, 60, 500.0, 100.0, 40.0, 1.0, 2.0, 0.1, 1.0, 0.1))  # the hour itself
    base = trailing_baseline(hourly(spark, rows), [H]).collect()[0]
    assert base["baseline_n"] == 24 * 60
    assert base["mean_temperature"] == 50.0
    assert base["std_temperature"] == pytest.approx(1.0, abs=0.01)
    # The range spans every trailing hour, the dropout hour too, but not the hour itself.
    assert (base["lo_temperature"], base["hi_temperature"]) == (-50.0, 52.5)


BASELINE_STATS = ("mean", "std", "lo", "hi", "lo_level", "hi_level", "noise")
BASELINE_COLS = [
    "device_id",
    "event_hour",
    "baseline_n",
    *[f"{p}_{m}" for m in ("temperature", "humidity", "pressure", "vibration") for p in BASELINE_STATS],
]


def baseline_frame(spark, n=1440, temperature_range=(47.5, 52.5), temperature_means=(50.0, 50.0)):
    """d1's baseline at H from n readings: temperature 50 +/- 1 over `temperature_range`, its hourly
    medians over `temperature_means` with a robust within-hour sigma of 0.5; the other metrics their mean
    +/- 2.5 sigma, at a constant level."""
    lo, hi = temperature_range
    row = ("d1", H, n, 50.0, 1.0, lo, hi, *temperature_means, 0.5)
    for mean, std in ((40.0, 1.0), (2.0, 0.1), (1.0, 0.1)):
        row += (mean, std, mean - 2.5 * std, mean + 2.5 * std, mean, mean, std)
    return spark.createDataFrame([row], BASELINE_COLS)


def test_zscore_flags_past_three_sigma_only(spark):
    df = readings(
        spark,
        [
            ("d1", H, 52.9, 40.0, 2.0, 1.0, 90.0),
            ("d1", H + timedelta(minutes=1), 56.0, 40.0, 2.0, 1.0, 90.0),
            ("d2", H, 99.0, 40.0, 2.0, 1.0, 90.0),
        ],
    )
    got = zscore_anomalies(df, baseline_frame(spark), 3.0, 30).collect()
    assert [(r["device_id"], r["metric"], r["score"], r["limit"]) for r in got] == [("d1", "temperature", 6.0, 53.0)]
    assert got[0]["severity"] == "high"


def test_zscore_flags_only_beyond_the_range_the_normal_day_reached(spark):
    """A bursty signal's normal day reached 58: a reading of 56 (6 sigma) is no news, one of 59 is,
    and its limit is that range's edge; below, the 3-sigma limit (47) is the nearer one."""
    df = readings(
        spark,
        [
            ("d1", H, 56.0, 40.0, 2.0, 1.0, 90.0),
            ("d1", H + timedelta(minutes=1), 59.0, 40.0, 2.0, 1.0, 90.0),
            ("d1", H + timedelta(minutes=2), 46.5, 40.0, 2.0, 1.0, 90.0),
        ],
    )
    got = zscore_anomalies(df, baseline_frame(spark, temperature_range=(48.0, 58.0)), 3.0, 30).collect()
    assert sorted((r["value"], r["score"], r["limit"]) for r in got) == [(46.5, 3.5, 47.0), (59.0, 9.0, 58.0)]
    assert {r["model_version"] for r in got} == {"zscore-3sigma-beyond-24h-range"}


def test_zscore_needs_a_baseline(spark):
    base = baseline_frame(spark, n=10)
    assert zscore_anomalies(readings(spark, [("d1", H, 99.0, 40.0, 2.0, 1.0, 90.0)]), base, 3.0, 30).count() == 0


def test_kmeans_training_and_scoring(spark):
    rng = np.random.default_rng(0)
    centres = np.array([[0.0] * len(FEATURES), [5.0] * len(FEATURES)])
    x = np.vstack([c + rng.normal(0, 0.2, (200, len(FEATURES))) for c in centres])
    model = train_device(
        x,
        {
            "k": 2,
            "min_training_rows": 50,
            "max_iterations": 25,
            "seed": 1,
            "distance_percentile": 99.5,
            "threshold_margin": 1.5,
        },
    )
    assert model["status"] == "trained" and model["k"] == 2
    got = sorted(
        np.round(np.array(model["centroids"]) * np.array(model["feature_stds"]) + np.array(model["feature_means"]))[
            :, 0
        ]
    )
    assert got == [0.0, 5.0]
    models = spark.createDataFrame(
        [
            (
                "d1",
                H,
                "trained",
                model["centroids"],
                model["feature_means"],
                model["feature_stds"],
                model["distance_threshold"],
                "m1",
            )
        ],
        "device_id string, event_hour timestamp, status string, centroids array<array<double>>, "
        "feature_means array<double>, feature_stds array<double>, distance_threshold double, "
        "model_version string",
    )
    normal, odd = [0.1] * len(FEATURES), [2.5] * len(FEATURES)
    odd[2] = 40.0
    feats = spark.createDataFrame(
        [("d1", H, H, *normal), ("d1", H + timedelta(minutes=1), H, *odd)],
        ["device_id", "event_time", "event_hour", *FEATURES],
    )
    flagged = kmeans_anomalies(feats, models).collect()
    assert len(flagged) == 1 and flagged[0]["metric"] == f"multivariate:{FEATURES[2]}" and flagged[0]["value"] == 40.0


def test_a_device_with_less_than_a_day_of_history_is_learning(spark):
    """The baseline of a device that began reporting 3 hours ago is not used; one of a day is."""
    rows = [("new", H - timedelta(hours=i), 60, 50.0, 1.0, 40.0, 1.0, 2.0, 0.1, 1.0, 0.1) for i in range(1, 4)]
    rows += [("old", H - timedelta(hours=i), 60, 50.0, 1.0, 40.0, 1.0, 2.0, 0.1, 1.0, 0.1) for i in range(1, 25)]
    base = trailing_baseline(hourly(spark, rows), [H])
    assert {r["device_id"]: r["history_hours"] for r in base.collect()} == {"new": 3, "old": 24}
    assert [r["device_id"] for r in mature(base, AnomalyModelConfig()).collect()] == ["old"]
    assert sorted(r["device_id"] for r in mature(base, AnomalyModelConfig(learning_hours=3)).collect()) == [
        "new",
        "old",
    ]
    # Abnormal hours left out of the baseline still count as history.
    excluded = spark.createDataFrame([("old", H - timedelta(hours=24))], "device_id string, event_hour timestamp")
    again = trailing_baseline(hourly(spark, rows), [H], excluded).where("device_id = 'old'").collect()[0]
    assert (again["history_hours"], again["baseline_n"]) == (24, 23 * 60)


def test_a_model_is_learning_until_its_history_covers_the_learning_hours():
    x = np.random.default_rng(1).normal(size=(300, len(FEATURES)))
    cfg = {"k": 3, "min_training_rows": 120, "max_iterations": 5, "seed": 1, "distance_percentile": 99.0}
    cfg |= {"threshold_margin": 1.5, "learning_hours": 24}
    assert train_device(x, cfg, history_hours=6)["status"] == "learning"
    assert train_device(x, cfg, history_hours=24)["status"] == "trained"
    assert train_device(x[:10], cfg, history_hours=24)["status"] == "insufficient_data"


def test_too_little_data_is_reported():
    assert (
        train_device(np.zeros((10, len(FEATURES))), {"k": 3, "min_training_rows": 120})["status"] == "insufficient_data"
    )


def test_score():
    t = [H + timedelta(minutes=i) for i in range(10)]
    events = {"e1": {("d1", t[0]), ("d1", t[1])}, "e2": {("d2", t[5])}}
    flags = [
        Flag("d1", t[0], "threshold"),
        Flag("d1", t[1], "kmeans"),
        Flag("d1", t[8], "zscore"),
        Flag("d1", t[9], "zscore"),
        Flag("d3", t[2], "zscore"),
    ]
    got = score(flags, events, device_days=2.0, gap=timedelta(minutes=5))
    assert got["any_method"]["precision"] == pytest.approx(2 / 5, abs=1e-3)
    assert got["any_method"]["recall"] == pytest.approx(2 / 3, abs=1e-3)
    assert got["any_method"]["event_recall"] == 0.5
    assert got["any_method"]["false_alarms_per_device_day"] == 1.0  # two runs (d1 t8-t9, d3 t2) over 2 device-days
    assert got["zscore"]["precision"] == 0.0 and got["threshold"]["recall"] == pytest.approx(1 / 3, abs=1e-3)
    # The combined verdict counts only confirmed readings.
    unconfirmed = [Flag(f.device_id, f.event_time, f.method, confirmed=f.method != "zscore") for f in flags]
    got = score(unconfirmed, events, device_days=2.0, gap=timedelta(minutes=5))
    assert got["combined"]["precision"] == 1.0 and got["combined"]["false_alarms_per_device_day"] == 0.0


def test_verdict_confirms_readings_not_rows(spark):
    rows = [
        ("d1", H, "zscore", "low"),  # a z-score just past 3 sigma, alone
        ("d1", H + timedelta(minutes=1), "zscore", "low"),  # ... joined by a KMeans hit on the same reading
        ("d1", H + timedelta(minutes=1), "kmeans", "low"),
        ("d1", H + timedelta(minutes=2), "zscore", "medium"),  # a strong z-score confirms itself
        ("d2", H, "threshold", "low"),
    ]
    # d3: weak z-scores on one metric every 2 minutes; from the fifth within 10 minutes they persist.
    rows += [("d3", H + timedelta(minutes=2 * i), "zscore", "low") for i in range(6)]
    got = {
        (r["device_id"], r["event_time"], r["method"]): r["confirmed"]
        for r in with_verdict(
            spark.createDataFrame(
                [(d, t, m, "temperature", s) for d, t, m, s in rows],
                "device_id string, event_time timestamp, method string, metric string, severity string",
            )
        ).collect()
    }
    assert {k: v for k, v in got.items() if k[0] != "d3"} == {
        ("d1", H, "zscore"): False,
        ("d1", H + timedelta(minutes=1), "zscore"): True,
        ("d1", H + timedelta(minutes=1), "kmeans"): True,
        ("d1", H + timedelta(minutes=2), "zscore"): True,
        ("d2", H, "threshold"): True,
    }
    assert [got[("d3", H + timedelta(minutes=2 * i), "zscore")] for i in range(6)] == [False] * 4 + [True] * 2


def test_shift_flags_a_sustained_shift_for_as_long_as_it_lasts_but_not_a_spike(spark):
    from iot_assets.assets.anomalies import shift_anomalies

    base = baseline_frame(spark)
    m = timedelta(minutes=1)
    rows = [("d1", H - (10 - i) * m, 50.0, 40.0, 2.0, 1.0, 90.0) for i in range(10)]  # the hour before
    rows += [("d1", H + i * m, 60.0 if i == 2 else 50.0, 40.0, 2.0, 1.0, 90.0) for i in range(20)]  # a spike at 10:02
    rows += [("d1", H + i * m, 52.0, 40.0, 2.0, 1.0, 90.0) for i in range(20, 60)]  # +4 noise sigma from 10:20
    df = readings(spark, rows)
    got = shift_anomalies(df, base, 30, scored_from=H).collect()
    assert {r["metric"] for r in got} == {"temperature"}
    times = sorted(r["event_time"] for r in got)
    assert times == [H + i * m for i in range(25, 60)]  # from the 6th shifted reading (of 10) to the end
    first = min(got, key=lambda r: r["event_time"])
    assert (first["limit"], first["value"], first["score"], first["method"]) == (51.5, 52.0, 4.0, "shift")


def test_hourly_levels_are_robust_to_a_busy_signals_bursts(spark):
    """A CPU at 30-32 % with one reading in six at 100 %: a mean of 42.7 and a sigma of 26, but
    its level is 31 and its noise the spread of the readings between bursts (quartiles 31 and 32)."""
    from iot_assets.assets.anomalies import hourly_levels

    m = timedelta(minutes=1)
    rows = [("d1", H + i * m, 100.0 if i % 6 == 0 else 30.0 + (i % 3), 40.0, 2.0, 1.0, 90.0) for i in range(60)]
    got = hourly_levels(readings(spark, rows)).collect()[0]
    assert got["median_temperature"] == 31.0
    assert got["spread_temperature"] == pytest.approx(1 / 1.349, abs=1e-6)
    assert (got["median_pressure"], got["spread_pressure"]) == (2.0, 0.0)


def test_shift_is_judged_against_the_range_the_normal_days_level_moved_through(spark):
    """Yesterday's hourly means ran from 47 to 53 (a daily cycle): a level of 53.5 is the warm
    afternoon again, 55 is beyond it by 4 within-hour sigmas, and so is 44 below it."""
    from iot_assets.assets.anomalies import shift_anomalies

    m = timedelta(minutes=1)
    levels = [53.5] * 20 + [55.0] * 20 + [44.0] * 20
    rows = [("d1", H + i * m, v, 40.0, 2.0, 1.0, 90.0) for i, v in enumerate(levels)]
    base = baseline_frame(spark, temperature_means=(47.0, 53.0))
    got = shift_anomalies(readings(spark, rows), base, 30, scored_from=H).collect()
    assert {(r["value"], r["limit"], r["score"]) for r in got} == {(55.0, 54.5, 4.0), (44.0, 45.5, 6.0)}
    # From the 6th reading at 55 until the last one: when the level drops to 44, the window's
    # median stays at 55 for five more readings, but those readings are no longer at 55.
    assert sorted(r["event_time"] for r in got if r["value"] == 55.0) == [H + i * m for i in range(25, 40)]


def test_shift_ignores_a_burst_shorter_than_half_its_window(spark):
    """Four readings at +10 sigma move a 10-minute mean by 4 sigma, but not its median."""
    from iot_assets.assets.anomalies import shift_anomalies

    m = timedelta(minutes=1)
    rows = [("d1", H + i * m, 60.0 if 10 <= i < 14 else 50.0, 40.0, 2.0, 1.0, 90.0) for i in range(30)]
    assert shift_anomalies(readings(spark, rows), baseline_frame(spark), 30, scored_from=H).count() == 0


def test_rolling_medians_equal_the_median_of_each_readings_trailing_frame(spark):
    """`rolling_medians` (pandas, per device) against Spark's own frame: the sorted values of
    (t - 10 min, t] at millisecond resolution. Irregular gaps, readings exactly 10 minutes and
    10 minutes less a millisecond apart, nulls (a metric with none left in its frame), and three
    devices at different rates."""
    from pyspark.sql import Window

    from iot_assets.assets.anomalies import SHIFT_WINDOW, ZSCORE_METRICS, rolling_medians

    rng = np.random.default_rng(7)
    rows = []
    for device, step, n in (("d1", 1.0, 900), ("d2", 37.5, 60), ("d3", 240.0, 12)):
        t = H - timedelta(minutes=10)
        for i in range(n):
            values = [float(v) for v in np.round(rng.normal(50, 5, 4), 1)]
            if i % 7 == 3:
                values[0] = None
            if device == "d3" and 3 <= i <= 8:
                values[1] = None  # no humidity in a whole frame
            rows.append((device, t, *values, 90.0))
            t += timedelta(seconds=step * (3 if i % 11 == 5 else 1))
    # d4: exactly 10 minutes apart (out of the frame), then 10 minutes less a millisecond (in it).
    e0 = H + timedelta(hours=1)
    e1 = e0 + SHIFT_WINDOW
    e2 = e1 + SHIFT_WINDOW - timedelta(milliseconds=1)
    edges = [e0, e1, e2, e2 + timedelta(minutes=1)]
    rows += [("d4", t, 10.0 * i, 40.0, 2.0, 1.0, 90.0) for i, t in enumerate(edges)]
    df = readings(spark, rows)
    frame = Window.partitionBy("device_id").orderBy(F.unix_millis("event_time")).rangeBetween(-599_999, 0)

    def median(column):
        ordered = F.array_sort(F.collect_list(column).over(frame))
        n = F.size(ordered)
        low = F.element_at(ordered, F.floor((n + 1) / 2).cast("int"))
        high = F.element_at(ordered, (n / 2 + 1).cast("int"))
        return F.when(n > 0, (low + high) / 2)

    keys = ["device_id", "event_time"]
    expected = df.select(
        *keys,
        *[median(m).alias(f"roll_{m}") for m in ZSCORE_METRICS],
        *[F.count(m).over(frame).alias(f"n_{m}") for m in ZSCORE_METRICS],
    )
    got = rolling_medians(df, SHIFT_WINDOW).select(*expected.columns)
    assert got.count() == df.count() == len(rows)
    assert expected.exceptAll(got).count() == 0 and got.exceptAll(expected).count() == 0
    d4 = {r["event_time"]: r for r in got.where("device_id = 'd4'").collect()}
    assert [d4[t]["n_temperature"] for t in edges] == [1, 1, 2, 2]
    assert [d4[t]["roll_temperature"] for t in edges] == [0.0, 10.0, 15.0, 25.0]


def test_rolling_medians_take_a_whole_number_channel_too(spark):
    from iot_assets.assets.anomalies import SHIFT_WINDOW, ZSCORE_METRICS, rolling_medians

    m = ZSCORE_METRICS[0]
    rows = [("d1", H + timedelta(minutes=i), i, 40.0, 2.0, 1.0, 90.0) for i in range(4)]
    df = readings(spark, rows).withColumn(m, F.col(m).cast("long"))
    got = sorted(rolling_medians(df, SHIFT_WINDOW).collect(), key=lambda r: r["event_time"])
    assert [r[f"roll_{m}"] for r in got] == [0.0, 0.5, 1.0, 1.5]


def test_levels_come_from_gold_and_from_silver_only_for_hours_gold_wrote_without_them(spark):
    """An hour gold wrote before it kept its levels (every level null, or no level column at all)
    gets them from its silver readings; an hour with gold's own levels keeps them."""
    from iot_assets.assets.anomalies import with_levels
    from iot_assets.assets.gold import hourly_levels, level_columns

    m = timedelta(minutes=1)
    rows = [
        (d, h + i * m, 50.0 + i % 3, 40.0, 2.0, 1.0, 90.0)
        for d in ("d1", "d2")
        for h in (H, H + HOUR)
        for i in range(6)
    ]
    silver = readings(spark, rows)
    levels = hourly_levels(silver)
    gold = levels.withColumns({c: F.lit(7.0) for c in level_columns()})
    # d1's first hour was written before gold kept levels.
    old = F.col("device_id").eqNullSafe("d1") & (F.col("event_hour") == F.lit(H))
    gold = gold.withColumns({c: F.when(old, F.lit(None)).otherwise(F.col(c)) for c in level_columns()})
    got = {(r["device_id"], r["event_hour"]): r for r in with_levels(gold, silver).collect()}
    want = {(r["device_id"], r["event_hour"]): r for r in levels.collect()}
    assert got[("d1", H)]["median_temperature"] == want[("d1", H)]["median_temperature"] == 51.0
    assert {got[k]["median_temperature"] for k in got if k != ("d1", H)} == {7.0}
    # A gold table from before the columns existed: every hour from silver.
    bare = with_levels(levels.select("device_id", "event_hour"), silver).collect()
    assert {(r["device_id"], r["event_hour"], r["spread_temperature"]) for r in bare} == {
        (r["device_id"], r["event_hour"], r["spread_temperature"]) for r in want.values()
    }
