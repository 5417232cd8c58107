"""Models and z-score baselines learn from normal readings only: what earlier hours confirmed as
anomalous, or what lies inside an incident, is left out, and each model records its policy."""

from datetime import datetime, timedelta

import numpy as np
from pyspark.sql import functions as F

from iot_assets.assets.anomalies import abnormal_hours, trailing_baseline
from iot_assets.assets.models import FEATURES, TRAINING_POLICY, train_models, with_normal_flag
from iot_assets.assets.verdicts import abnormal_spans
from iot_assets.resources.detection import AnomalyModelConfig
from iot_assets_tests.test_anomalies import with_range

H = datetime(2026, 11, 21, 10)
M = timedelta(minutes=1)


def featured(spark, n=300, shift_from=200):
    """One device, one reading a minute before H; readings from `shift_from` on are shifted by +50."""
    rng = np.random.default_rng(1)
    rows = []
    for i in range(n):
        t = H - (n - i) * M
        x = rng.normal(0, 1, len(FEATURES)) + (50.0 if i >= shift_from else 0.0)
        rows.append(("d1", t, *map(float, x)))
    return spark.createDataFrame(rows, ["device_id", "event_time", *FEATURES])


def test_readings_in_incidents_and_confirmed_ones_are_left_out_of_training(spark):
    df = featured(spark)
    confirmed = spark.createDataFrame([("d1", H - 250 * M)], "device_id string, event_time timestamp")
    incidents = spark.createDataFrame(
        [("d1", "d1@x", H - 100 * M, H - 1 * M), ("d1", "d1@x", H - 100 * M, H - 90 * M)],
        "device_id string, incident_id string, opened_at timestamp, last_flag_at timestamp",
    )
    flagged = with_normal_flag(df, abnormal_spans(confirmed, incidents))
    assert flagged.where(~F.col("normal")).count() == 101
    devices = spark.createDataFrame([("d1",)], "device_id string")
    model = train_models(flagged, devices, [H], AnomalyModelConfig(min_training_rows=50, learning_hours=0)).collect()[0]
    assert (model["training_rows"], model["excluded_rows"], model["training_policy"]) == (199, 101, TRAINING_POLICY)
    # Trained on the normal readings, the shifted ones are far from every centroid.
    assert max(abs(v) for v in model["feature_means"]) < 1.0


def test_abnormal_hours_are_left_out_of_the_zscore_baseline(spark):
    cols = [
        "device_id",
        "event_hour",
        "reading_count",
        *[f"{p}_{m}" for m in ("temperature", "humidity", "pressure", "vibration") for p in ("avg", "stddev")],
    ]
    rows = [("d1", H - timedelta(hours=i), 60, 50.0, 1.0, 40.0, 1.0, 2.0, 0.1, 1.0, 0.1) for i in range(1, 25)]
    for i in (1, 2, 3):  # a sustained shift over the last three hours: normal variance, shifted mean
        rows[i - 1] = ("d1", H - timedelta(hours=i), 60, 90.0, 1.0, 40.0, 1.0, 2.0, 0.1, 1.0, 0.1)
    stats = with_range(spark.createDataFrame(rows, cols))
    confirmed = spark.createDataFrame(
        [("d1", H - timedelta(hours=4) + k * M) for k in range(20)], "device_id string, event_time timestamp"
    )  # 20 of 60: abnormal
    incidents = spark.createDataFrame(
        [("d1", "d1@y", H - timedelta(hours=3), H - timedelta(minutes=1))],
        "device_id string, incident_id string, opened_at timestamp, last_flag_at timestamp",
    )
    bad = abnormal_hours(abnormal_spans(confirmed, incidents), stats)
    assert sorted(r["event_hour"] for r in bad.collect()) == [H - timedelta(hours=i) for i in (4, 3, 2, 1)]
    assert trailing_baseline(stats, [H]).collect()[0]["mean_temperature"] == 55.0
    base = trailing_baseline(stats, [H], bad).collect()[0]
    assert base["mean_temperature"] == 50.0 and base["baseline_n"] == 20 * 60
    assert base["hi_temperature"] == 52.5  # the shifted hours' readings (up to 92.5) are left out of the range too
