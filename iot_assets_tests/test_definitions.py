"""The code location: every asset explains itself, Spark assets backfill in one run, schemas agree."""

from pathlib import Path

import pytest
from dagster import AssetKey, BackfillPolicy

from iot_assets.assets import bronze, gold, incidents, registry, silver
from iot_assets.definitions import defs
from iot_assets.lib.schemas import struct_type, table_schema

GRAPH = defs.get_repository_def().asset_graph
MODELS = [
    bronze.BronzeReading,
    bronze.QuarantinedRecord,
    silver.SilverReading,
    silver.RejectedReading,
    gold.DeviceHourlyStats,
    gold.SensorAggregates10Min,
    gold.DailyDeviceSummary,
    registry.DeviceRecord,
    incidents.IncidentRecord,
]


def test_every_asset_has_description_group_and_kinds():
    for key in GRAPH.get_all_asset_keys():
        node = GRAPH.get(key)
        assert node.description, key
        assert node.group_name != "default", key
        assert node.kinds, key


def test_partitioned_assets_backfill_in_one_run():
    for key in GRAPH.get_all_asset_keys():
        node = GRAPH.get(key)
        if node.partitions_def is not None:
            assert node.backfill_policy == BackfillPolicy.single_run(), key


def test_runs_stay_in_one_process():
    for name in ("hourly_pipeline_job", "hour_end_job", "anomaly_detection_job"):
        assert defs.resolve_job_def(name).executor_def.name == "in_process", name


def test_an_hours_end_is_one_run_from_raw_to_its_incidents():
    """The live arrival sensors request the whole hour, so the anomaly log does not wait for a
    second run (and a second Spark driver) after gold."""
    job = defs.resolve_job_def("hour_end_job")
    steps = {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
    assert {"raw_sensor_batches", "silver_sensor_readings", "device_hourly_stats"} <= steps
    assert {"device_anomaly_models", "anomaly_log", "anomaly_incidents"} <= steps
    repository = defs.get_repository_def()
    for name in ("kinesis_arrival_sensor", "s3_landing_sensor"):
        assert repository.get_sensor_def(name).job_name == "hour_end_job", name


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_spark_and_dagster_schemas_come_from_the_pandera_model(model):
    fields = struct_type(model).fields
    cols = table_schema(model).columns
    assert [f.name for f in fields] == [c.name for c in cols] == list(model.to_schema().columns)
    assert [f.dataType.simpleString() for f in fields] == [c.type for c in cols]
    assert [f.nullable for f in fields] == [c.constraints.nullable for c in cols]


def test_assets_publish_their_model_schema():
    for key, model in [
        ("bronze_sensor_readings", bronze.BronzeReading),
        ("silver_sensor_readings", silver.SilverReading),
        ("device_hourly_stats", gold.DeviceHourlyStats),
    ]:
        meta = GRAPH.get(AssetKey(key)).metadata
        assert meta["dagster/column_schema"] == table_schema(model)


def test_every_asset_has_owners_and_a_code_reference():
    for key in GRAPH.get_all_asset_keys():
        node = GRAPH.get(key)
        assert node.owners and all(o.startswith("team:") for o in node.owners), key
        refs = node.metadata["dagster/code_references"].code_references
        assert refs and all(Path(r.file_path).is_file() and r.line_number > 0 for r in refs), key


def test_silver_gold_and_the_anomaly_log_have_freshness_policies_and_no_freshness_checks():
    fresh = {k.to_user_string() for k in GRAPH.get_all_asset_keys() if GRAPH.get(k).freshness_policy}
    assert fresh == {
        "silver_sensor_readings",
        "device_hourly_stats",
        "sensor_aggregates_10min",
        "daily_device_summary",
        "anomaly_log",
    }
    assert not [k for k in GRAPH.asset_check_keys if "freshness" in k.name]


def test_column_lineage_names_real_upstream_columns():
    from iot_assets.assets.gold import _lineage

    columns = {
        "silver_sensor_readings": silver.SilverReading,
        "bronze_sensor_readings": bronze.BronzeReading,
        "device_registry": registry.DeviceRecord,
    }
    for model, lineage in [
        (silver.SilverReading, silver.SILVER_LINEAGE),
        (gold.DeviceHourlyStats, _lineage(gold.DeviceHourlyStats)),
        (gold.SensorAggregates10Min, _lineage(gold.SensorAggregates10Min)),
        (gold.DailyDeviceSummary, _lineage(gold.DailyDeviceSummary)),
    ]:
        deps = lineage.deps_by_column
        assert set(deps) <= set(model.to_schema().columns)
        for column, sources in deps.items():
            for dep in sources:
                assert dep.column_name in columns[dep.asset_key.to_user_string()].to_schema().columns, (column, dep)
    hourly = _lineage(gold.DeviceHourlyStats).deps_by_column
    assert [d.column_name for d in hourly["avg_temperature"]] == ["temperature"]
    assert [d.column_name for d in _lineage(gold.DailyDeviceSummary).deps_by_column["daily_min_battery"]] == [
        "battery_level"
    ]
    assert len(hourly) == len(gold.DeviceHourlyStats.to_schema().columns) - 1  # all but reading_count


def test_lineage_starts_at_arrival_and_ends_in_the_quality_log():
    assert {k.to_user_string() for k in GRAPH.get(AssetKey("raw_sensor_batches")).parent_keys} == {
        "kinesis_stream",
        "landing_files",
        "historian_tables",
    }
    checked = {k.asset_key for k in GRAPH.asset_check_keys}
    assert GRAPH.get(AssetKey("data_quality_log")).parent_keys == checked - {AssetKey("data_quality_log")}
    assert {"raw_sensor_batches", "anomaly_incidents"} <= {k.to_user_string() for k in checked}
    for key in ("kinesis_stream", "landing_files", "historian_tables", "data_quality_log"):
        assert not GRAPH.get(AssetKey(key)).is_executable
