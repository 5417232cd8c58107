"""The code location: every asset explains itself, Spark assets backfill in one run, schemas agree."""

import pytest
from dagster import AssetKey, BackfillPolicy

from iot_assets.assets import bronze, gold, registry, silver
from iot_assets.definitions import defs
from iot_assets.schemas import struct_type, table_schema

GRAPH = defs.get_repository_def().asset_graph
MODELS = [bronze.BronzeReading, bronze.QuarantinedRecord, silver.SilverReading, silver.RejectedReading,
          gold.DeviceHourlyStats, gold.SensorAggregates10Min, gold.DailyDeviceSummary, registry.DeviceRecord]


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
    job = defs.resolve_job_def("hourly_pipeline_job")
    assert job.executor_def.name == "in_process"


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_spark_and_dagster_schemas_come_from_the_pandera_model(model):
    fields = struct_type(model).fields
    cols = table_schema(model).columns
    assert [f.name for f in fields] == [c.name for c in cols] == list(model.to_schema().columns)
    assert [f.dataType.simpleString() for f in fields] == [c.type for c in cols]
    assert [f.nullable for f in fields] == [c.constraints.nullable for c in cols]


def test_assets_publish_their_model_schema():
    for key, model in [("bronze_sensor_readings", bronze.BronzeReading), ("silver_sensor_readings", silver.SilverReading),
                       ("device_hourly_stats", gold.DeviceHourlyStats)]:
        meta = GRAPH.get(AssetKey(key)).metadata
        assert meta["dagster/column_schema"] == table_schema(model)
