"""The pinned policy: models and z-score/shift baselines learnt once from a chosen known-good range
and reused for every later hour, instead of each hour's trailing day."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from pydantic import ValidationError

from iot_assets.assets.anomalies import baseline_basis, mature, trailing_baseline
from iot_assets.assets.models import FEATURES, PINNED_POLICY, model_version, reusable_models, train_models
from iot_assets.resources.config import build_resources
from iot_assets.resources.detection import AnomalyModelConfig
from iot_assets_tests.test_anomalies import with_range

P0 = datetime(2026, 11, 20, 0)
P1 = P0 + timedelta(hours=3)  # the pinned range: [P0, P1)
FAULT = P1 + timedelta(hours=2)  # d1 shifts by +50 from here on
M = timedelta(minutes=1)
B0, B1 = datetime(2026, 11, 19, 0), datetime(2026, 11, 20, 0)  # the baseline tests' pinned day
MODEL = ("centroids", "feature_means", "feature_stds", "distance_threshold", "training_rows", "excluded_rows")


def pinned(start=P0, end=P1, **kw) -> AnomalyModelConfig:
    return AnomalyModelConfig(
        training_policy="pinned",
        pinned_start=start.isoformat(timespec="minutes"),
        pinned_end=end.isoformat(timespec="minutes"),
        min_training_rows=50,
        learning_hours=0,
        **kw,
    )


def test_pinned_needs_a_whole_hour_range_in_order():
    cfg = pinned()
    assert cfg.pinned_range == (P0.replace(tzinfo=UTC), P1.replace(tzinfo=UTC))
    assert AnomalyModelConfig().pinned_range is None  # trailing by default
    assert AnomalyModelConfig(pinned_start="2026-11-20T00:00Z", pinned_end="2026-11-21T00:00").pinned_range is None
    bad = [
        ({"training_policy": "pinned"}, "needs both pinned_start and pinned_end"),
        ({"training_policy": "pinned", "pinned_start": "2026-11-20T00:00"}, "needs both"),
        ({"training_policy": "pinned", "pinned_start": "2026-11-21T00:00", "pinned_end": "2026-11-20T00:00"}, "before"),
        ({"training_policy": "pinned", "pinned_start": "2026-11-20T00:30", "pinned_end": "2026-11-21T00:00"}, "whole"),
        ({"training_policy": "pinned", "pinned_start": "last week", "pinned_end": "2026-11-21T00:00"}, "ISO hour"),
        ({"training_policy": "frozen"}, "'trailing' or 'pinned'"),
    ]
    for kw, message in bad:
        with pytest.raises(ValidationError, match=message):
            AnomalyModelConfig(**kw)


def test_the_settings_reach_the_resource(monkeypatch):
    monkeypatch.setenv("IOT_TRAINING_POLICY", "pinned")
    monkeypatch.setenv("IOT_PINNED_START", "2026-11-20T00:00")
    monkeypatch.setenv("IOT_PINNED_END", "2026-11-20T03:00+00:00")
    cfg = build_resources()["anomaly_config"]
    assert cfg.pinned_range == (P0.replace(tzinfo=UTC), P1.replace(tzinfo=UTC))
    monkeypatch.setenv("IOT_PINNED_END", "")
    with pytest.raises(ValidationError, match="needs both"):
        build_resources()


def featured(spark, shift=0.0):
    """d1 reads once a minute from P0 to P1 + 5 h, +50 from FAULT on; ten of its readings in the
    pinned range are abnormal (`normal` false). d2 starts reporting only after the pinned range."""
    rng = np.random.default_rng(3)
    rows = []
    for i in range(8 * 60):
        t = P0 + i * M
        x = rng.normal(0, 1, len(FEATURES)) + (50.0 if t >= FAULT else shift)
        rows.append(("d1", t, *map(float, x), not (60 <= i < 70)))
        if t >= P1:
            rows.append(("d2", t, *map(float, rng.normal(0, 1, len(FEATURES))), True))
    return spark.createDataFrame(rows, ["device_id", "event_time", *FEATURES, "normal"])


def by_device_and_hour(models):
    return {(r["device_id"], r["event_hour"]): r for r in models.collect()}


def test_pinned_models_are_trained_once_on_the_range_and_ignore_a_later_fault(spark):
    df, devices = featured(spark), spark.createDataFrame([("d1",), ("d2",)], "device_id string")
    early, h1, h2 = P1 - timedelta(hours=1), P1 + timedelta(hours=1), P1 + timedelta(hours=4)
    got = by_device_and_hour(train_models(df, devices, [early, h1, h2], pinned()))
    a, b = got["d1", h1], got["d1", h2]
    assert a["status"] == b["status"] == "trained"
    assert all(a[c] == b[c] for c in MODEL)  # the fault after P1 does not move the model
    # The range's 180 readings less the ten abnormal ones.
    assert (a["training_rows"], a["excluded_rows"]) == (170, 10)
    assert max(abs(v) for v in a["feature_means"]) < 1.0
    for r in got.values():
        assert (r["training_policy"], r["training_start"], r["training_end"]) == (PINNED_POLICY, P0, P1)
    assert got["d1", h1]["model_version"] == model_version(pinned()) + "@2026-11-20T04"
    # Before the range ends no model may be used (it would have seen the readings it scores).
    assert got["d1", early]["status"] == got["d2", early]["status"] == "learning"
    # d2 has no readings in the pinned range.
    assert got["d2", h1]["status"] == got["d2", h2]["status"] == "insufficient_data"

    # The same inputs fit the same model again (seeded, in a set order).
    again = by_device_and_hour(train_models(df, devices, [h2], pinned()))["d1", h2]
    assert all(again[c] == b[c] for c in MODEL)

    # The trailing policy would have learnt the fault as normal by h2.
    trailing = by_device_and_hour(
        train_models(df, devices, [h2], AnomalyModelConfig(min_training_rows=50, learning_hours=0))
    )
    assert trailing["d1", h2]["training_policy"] != PINNED_POLICY
    assert max(trailing["d1", h2]["feature_means"]) > 10.0


def test_a_stored_pinned_model_is_copied_not_refitted(spark):
    devices = spark.createDataFrame([("d1",), ("d2",)], "device_id string")
    h1, h2 = P1 + timedelta(hours=1), P1 + timedelta(hours=2)
    stored = train_models(featured(spark), devices, [h1], pinned()).persist()
    reuse = reusable_models(stored, pinned())
    assert [r["device_id"] for r in reuse.collect()] == ["d1"]  # only trained models are reused
    # Other readings in the range now: a refit would differ, the copy does not.
    got = by_device_and_hour(train_models(featured(spark, shift=5.0), devices, [h2], pinned(), reuse))
    first = by_device_and_hour(stored)["d1", h1]
    assert all(got["d1", h2][c] == first[c] for c in MODEL)
    assert got["d1", h2]["trained_at"] == first["trained_at"]
    assert got["d2", h2]["status"] == "insufficient_data"
    # A device no longer registered gets no copy.
    only_d2 = spark.createDataFrame([("d2",)], "device_id string")
    assert list(by_device_and_hour(train_models(featured(spark), only_d2, [h2], pinned(), reuse))) == [("d2", h2)]
    # A different range is another model version: nothing stored is reused.
    assert model_version(pinned(end=P1 + timedelta(hours=1))) != model_version(pinned())
    assert reusable_models(stored, pinned(end=P1 + timedelta(hours=1))).count() == 0
    stored.unpersist()


def hourly(spark, hours):
    """d1's gold hours: temperature 50 in the pinned day, 90 (a fault) after it."""
    metrics = ("temperature", "humidity", "pressure", "vibration")
    rows = [
        ("d1", h, 60, *[v for m in metrics for v in ((90.0 if m == "temperature" and h >= B1 else 50.0), 1.0)])
        for h in hours
    ]
    cols = ["device_id", "event_hour", "reading_count", *[f"{p}_{m}" for m in metrics for p in ("avg", "stddev")]]
    return with_range(spark.createDataFrame(rows, cols))


def test_the_pinned_baseline_uses_the_pinned_hours_only(spark):
    stats = hourly(spark, [B0 + timedelta(hours=i) for i in range(30)])
    target, early = B1 + timedelta(hours=6), B1 - timedelta(hours=1)
    cfg = AnomalyModelConfig(
        training_policy="pinned", pinned_start=B0.isoformat(), pinned_end=B1.isoformat(), learning_hours=24
    )
    got = trailing_baseline(stats, [early, target], pinned=cfg.pinned_range)
    trailing = trailing_baseline(stats, [target])
    assert got.columns == trailing.columns
    rows = got.collect()
    assert [r["event_hour"] for r in rows] == [target]  # no baseline before the range ends
    base = rows[0]
    assert (base["mean_temperature"], base["hi_temperature"], base["baseline_n"]) == (50.0, 52.5, 24 * 60)
    assert base["history_hours"] == 24 and mature(got, cfg).count() == 1
    assert trailing.collect()[0]["mean_temperature"] > 50.0  # the trailing day holds the fault's six hours
    assert baseline_basis(cfg) == "pinned-20261119T00-20261120T00"
    # A range shorter than learning_hours leaves the device learning.
    short = (B0.replace(tzinfo=UTC) + timedelta(hours=20), B1.replace(tzinfo=UTC))
    assert mature(trailing_baseline(stats, [target], pinned=short), cfg).count() == 0
