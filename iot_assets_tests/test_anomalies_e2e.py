"""Anomaly detection end to end: 24 hours of history, then models and the anomaly log for the next hours."""

from datetime import UTC, datetime

import pytest
from pyspark.sql import functions as F

from iot_assets.automation.jobs import ANOMALY_DETECTION
from iot_assets.lib.partitions import HOUR
from iot_assets.lib.tables import named
from iot_assets.resources.config import resolved
from iot_assets.tools.demo import materialize_hours
from iot_assets.tools.simulator import simulate_hour

pytestmark = pytest.mark.e2e

START = datetime(2026, 11, 5, 0, tzinfo=UTC)
SCORED = [START + HOUR * 24, START + HOUR * 25]


@pytest.fixture(scope="module")
def scored(resources, spark):
    assert materialize_hours(START, SCORED[-1], include_registry=True).success
    assert materialize_hours(START, START, include_registry=False, selection=ANOMALY_DETECTION).success
    result = materialize_hours(SCORED[0], SCORED[-1], include_registry=False, selection=ANOMALY_DETECTION)
    assert result.success
    return result


def test_first_hour_has_no_history(scored, spark):
    lake = resolved("lake")
    first = lake.read_window(spark, named("device_anomaly_models"), START, START + HOUR).collect()
    assert first and {r["status"] for r in first} == {"insufficient_data"}
    assert all(r["training_rows"] == 0 and r["centroids"] is None for r in first)


def test_models_trained_on_previous_day_only(scored, spark):
    lake = resolved("lake")
    models = lake.read_window(spark, named("device_anomaly_models"), SCORED[0], SCORED[-1] + HOUR).collect()
    assert len(models) == 2 * resolved("raw_source").device_count
    trained = [m for m in models if m["status"] == "trained"]
    assert len(trained) >= len(models) - 2
    for m in trained:
        assert m["training_end"] == m["event_hour"].replace(tzinfo=None)
        assert (m["training_end"] - m["training_start"]).total_seconds() == 24 * 3600
        assert m["k"] == 3 and len(m["centroids"]) == 3 and m["distance_threshold"] > 0
        assert m["artifact_uri"].startswith("s3://")


def test_injected_anomalies_are_found(scored, spark):
    lake = resolved("lake")
    log = lake.read_window(spark, named("anomaly_log"), SCORED[0], SCORED[-1] + HOUR)
    flagged = {
        (r["device_id"], r["event_time"].replace(tzinfo=None)) for r in log.select("device_id", "event_time").collect()
    }
    fleet = resolved("raw_source").fleet
    events: dict[str, set] = {}
    for hour in SCORED:
        for label in simulate_hour(hour, fleet).labels:
            t = datetime.strptime(label.event_time, "%Y-%m-%dT%H:%M:%S.%fZ")
            events.setdefault(label.event_id, set()).add((label.device_id, t))
    assert len(events) >= 3
    hit = [e for e, pts in events.items() if pts & flagged]
    assert len(hit) / len(events) >= 0.8, sorted(set(events) - set(hit))
    assert set(r["method"] for r in log.select("method").distinct().collect()) <= {
        "threshold",
        "zscore",
        "kmeans",
        "shift",
    }


def test_summary_metadata(scored):
    mats = scored.asset_materializations_for_node("anomaly_log")
    summary = mats[0].metadata["anomaly_summary"].value
    assert set(summary["by_method"]) == {"threshold", "zscore", "kmeans", "shift"}
    assert sum(summary["by_method"].values()) == sum(summary["by_severity"].values()) > 0
    assert summary["top_devices"] and summary["top_devices"][0]["anomalies"] > 0


def test_rematerialising_replaces_the_hours_rows(scored, spark):
    lake = resolved("lake")
    before = lake.read_window(spark, named("anomaly_log"), SCORED[0], SCORED[0] + HOUR).count()
    assert materialize_hours(SCORED[0], SCORED[0], include_registry=False, selection=ANOMALY_DETECTION).success
    after = lake.read_window(spark, named("anomaly_log"), SCORED[0], SCORED[0] + HOUR)
    assert after.count() == before
    assert after.groupBy("device_id", "event_time", "metric", "method").count().where(F.col("count") > 1).count() == 0


def _png(markdown: str) -> bytes:
    import base64

    assert markdown.startswith("![") and "(data:image/png;base64," in markdown
    return base64.b64decode(markdown.split("base64,", 1)[1].rstrip(")"))


def test_charts_and_uniform_metadata(scored):
    """Both assets carry their chart and the standard table metadata (see iot_assets.lib.metadata)."""
    log = scored.asset_materializations_for_node("anomaly_log")[0].metadata
    models = scored.asset_materializations_for_node("device_anomaly_models")[0].metadata
    for meta in (log, models):
        assert {
            "dagster/partition_row_count",
            "dagster/uri",
            "dagster/column_schema",
            "delta_version",
            "spark_seconds",
            "partition_start",
            "partition_end",
        } <= set(meta)
    for chart in (log["top_devices_chart"].value, models["training_distance_chart"].value):
        png = _png(chart)
        assert png.startswith(b"\x89PNG") and 2_000 < len(png) < 100_000


def test_incidents_cover_the_confirmed_readings(scored, spark):
    lake = resolved("lake")
    window = (SCORED[0], SCORED[-1] + HOUR)
    confirmed = (
        lake.read_window(spark, named("anomaly_log"), *window)
        .where("confirmed")
        .select("device_id", "event_time")
        .distinct()
        .count()
    )
    rows = lake.read_window(spark, named("anomaly_incidents"), *window)
    latest = rows.groupBy("incident_id").agg(F.max("readings").alias("n"), F.min("opened_at").alias("opened"))
    assert rows.groupBy("incident_id", "event_hour").count().where("count > 1").count() == 0
    # Incidents open at the end of the hour before SCORED[0] carry readings from it, and a stretch
    # of fewer than three low- or medium-severity readings opens none, so neither bound is exact.
    assert latest.agg(F.sum("n")).first()[0] > 0 and confirmed > 0
    assert latest.count() < confirmed
    meta = scored.asset_materializations_for_node("anomaly_incidents")[0].metadata
    assert meta["incidents_opened"].value == len(meta["opened_incidents"].value) > 0


def test_a_pinned_baseline_trains_once_on_its_range_and_is_reused(scored, spark):
    """Under the pinned policy the scored hours' models come from the first day (the pinned range),
    the second hour reuses the first hour's fit, and the z-score and shift rows name the range.
    Last in the module: it replaces the scored hours' models and the first one's anomaly log."""
    from iot_assets.definitions import defs
    from iot_assets.resources.detection import AnomalyModelConfig

    # A new resource (a pydantic copy would not change the config Dagster builds it from).
    base = resolved("anomaly_config")
    pinned = AnomalyModelConfig(
        **{f: getattr(base, f) for f in ("k", "learning_hours", "zscore_limit", "distance_percentile")},
        training_policy="pinned",
        pinned_start=START.isoformat(),
        pinned_end=SCORED[0].isoformat(),
    )
    resources = {**defs.resources, "anomaly_config": pinned}
    # One run per hour, so the second one finds the first one's models; the second hour needs only
    # its models (the log's rows are checked on the first).
    for hour, selection in ((SCORED[0], ANOMALY_DETECTION), (SCORED[1], [named("device_anomaly_models").key])):
        assert materialize_hours(hour, hour, resources=resources, include_registry=False, selection=selection).success
    lake = resolved("lake")
    models = lake.read_window(spark, named("device_anomaly_models"), SCORED[0], SCORED[-1] + HOUR).collect()
    trained = [m for m in models if m["status"] == "trained"]
    assert len(trained) >= len(models) - 2 and {m["training_policy"] for m in models} == {"pinned"}
    assert {(m["training_start"], m["training_end"]) for m in trained} == {
        (START.replace(tzinfo=None), SCORED[0].replace(tzinfo=None))
    }
    by_device = {}
    for m in trained:
        by_device.setdefault(m["device_id"], []).append(m)
    assert all(a["centroids"] == b["centroids"] and a["trained_at"] == b["trained_at"] for a, b in by_device.values())
    versions = {
        r[0]
        for r in lake.read_window(spark, named("anomaly_log"), SCORED[0], SCORED[0] + HOUR)
        .where("method IN ('zscore', 'shift')")
        .select("model_version")
        .distinct()
        .collect()
    }
    assert versions and all("pinned-20261105T00-20261106T00" in v for v in versions)
