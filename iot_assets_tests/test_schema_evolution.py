"""Changing the catalogue of an existing lake: a channel added appears in the new partitions (older
ones read it as null), a channel removed keeps its history, and a changed type is refused before
anything is written. The tables are written with bronze's model derived from catalogue variants."""

import copy
import json
import uuid
from datetime import datetime, timedelta

import numpy as np
import pyspark.sql.types as T
import pytest
import yaml
from dagster import TimeWindow
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from iot_assets.assets.anomalies import trailing_baseline
from iot_assets.assets.bronze import _number, reading_model
from iot_assets.assets.models import FEATURES, train_models
from iot_assets.lib import quality
from iot_assets.lib.catalogue import DEFAULT_PATH, CatalogueError, parse_catalogue
from iot_assets.lib.schemas import conform, struct_type
from iot_assets.lib.tables import Table
from iot_assets.resources.detection import AnomalyModelConfig
from iot_assets.resources.lakehouse import STATS_COLUMNS, DeltaLakehouse, SchemaChangeRefused, type_changes
from iot_assets_tests.test_anomalies import with_range

H = datetime(2026, 11, 10, 10)
OLD, NEW = TimeWindow(H, H + timedelta(hours=1)), TimeWindow(H + timedelta(hours=1), H + timedelta(hours=2))
ROWS = 3
MOTOR_CURRENT = {"name": "motor_current", "unit": "A", "type": "double", "range": [0, 400], "roles": []}


def variant(edit=None):
    """The shipped catalogue, changed by `edit(doc)`."""
    doc = copy.deepcopy(yaml.safe_load(DEFAULT_PATH.read_text()))
    if edit:
        edit(doc)
    return parse_catalogue(doc, "variant.yaml")


def add_motor_current(doc):
    doc["channels"].append(MOTOR_CURRENT)


def drop_signal_strength(doc):
    doc["channels"] = [c for c in doc["channels"] if c["name"] != "signal_strength"]


def signal_strength_as_long(doc):
    next(c for c in doc["channels"] if c["name"] == "signal_strength")["type"] = "long"


def readings(spark, model, window: TimeWindow):
    """ROWS bronze readings of the window, conformed to `model`: every channel has a value."""
    fixed = {"device_id": "dev-1", "status": "ok", "source": "simulator", "source_object": "s3://raw/x"}
    by_type = {"double": 1.5, "bigint": 7, "timestamp": window.start, "string": "x"}
    rows = []
    for i in range(ROWS):
        values = {f.name: fixed.get(f.name, by_type[f.dataType.simpleString()]) for f in struct_type(model).fields}
        rows.append({**values, "record_index": i, "event_time": window.start + timedelta(minutes=i)})
    return conform(spark.createDataFrame(rows, struct_type(model)), model)


@pytest.fixture()
def lake(lake_prefix):
    return DeltaLakehouse(bucket="iot-test-lake", prefix=lake_prefix)


def table(model) -> Table:
    return Table(f"bronze_{uuid.uuid4().hex[:8]}", model, "event_hour")


def column(lake, spark, tbl, name, window) -> list:
    return [r[0] for r in lake.read_window(spark, tbl, window.start, window.end).select(name).collect()]


@pytest.mark.e2e
def test_a_channel_added_appears_in_new_partitions_and_old_ones_read_null(lake, spark):
    before, after = reading_model(variant()), reading_model(variant(add_motor_current))
    tbl = table(before)
    lake.write_window(readings(spark, before, OLD), tbl, OLD)
    written = lake.write_window(readings(spark, after, NEW), tbl, NEW)
    assert written.rows == ROWS
    assert "motor_current" in lake.read(spark, tbl).columns
    assert column(lake, spark, tbl, "motor_current", OLD) == [None] * ROWS
    assert column(lake, spark, tbl, "motor_current", NEW) == [1.5] * ROWS
    assert column(lake, spark, tbl, "signal_strength", OLD) == [1.5] * ROWS
    assert lake.read(spark, tbl).count() == 2 * ROWS
    # The new window keeps every rule of the model that added the channel.
    check = quality.check_schema(
        lake.read_window(spark, tbl, NEW.start, NEW.end), after, tbl.name, "check_bronze_schema", "event_hour", []
    )
    assert check.passed, check.detail


@pytest.mark.e2e
def test_a_channel_removed_keeps_its_history_and_new_partitions_read_null(lake, spark):
    before, after = reading_model(variant()), reading_model(variant(drop_signal_strength))
    tbl = table(before)
    lake.write_window(readings(spark, before, OLD), tbl, OLD)
    lake.write_window(readings(spark, after, NEW), tbl, NEW)
    assert column(lake, spark, tbl, "signal_strength", OLD) == [1.5] * ROWS
    assert column(lake, spark, tbl, "signal_strength", NEW) == [None] * ROWS
    assert lake.read(spark, tbl).count() == 2 * ROWS
    # Rewriting the old hour with the new model replaces its rows: the history is in the hours
    # not written again.
    check = quality.check_schema(
        lake.read_window(spark, tbl, NEW.start, NEW.end), after, tbl.name, "check_bronze_schema", "event_hour", []
    )
    assert check.passed, check.detail
    assert check.detail["retired_columns"] == ["signal_strength"]
    # A column the model lacks that holds values is still a schema problem.
    stale = quality.check_schema(
        lake.read_window(spark, tbl, OLD.start, OLD.end), after, tbl.name, "check_bronze_schema", "event_hour", []
    )
    assert not stale.passed
    assert stale.detail["schema_problems"] == ["COLUMN_NOT_IN_SCHEMA: signal_strength"]


@pytest.mark.e2e
def test_a_type_change_is_refused_and_nothing_is_written(lake, spark):
    before, after = reading_model(variant()), reading_model(variant(signal_strength_as_long))
    tbl = table(before)
    lake.write_window(readings(spark, before, OLD), tbl, OLD)
    delta = DeltaTable.forPath(spark, lake.uri(tbl))
    version, rows = delta.history(1).first()["version"], sorted(lake.read(spark, tbl).collect())
    for window in (OLD, NEW):
        with pytest.raises(SchemaChangeRefused) as refused:
            lake.write_window(readings(spark, after, window), tbl, window)
        message = str(refused.value)
        assert message.startswith(f"s3://iot-test-lake/{lake.prefix}/{tbl.name}: refusing to change the type")
        assert "column 'signal_strength': the table has double, the new data has bigint" in message
        assert "No data was written" in message and "under a new name" in message
        assert isinstance(refused.value, ValueError) and refused.value.allow_retries is False
    assert delta.history(1).first()["version"] == version
    assert sorted(lake.read(spark, tbl).collect()) == rows


def test_type_changes_compares_types_not_nullability():
    table_ = T.StructType([T.StructField("a", T.DoubleType()), T.StructField("b", T.StringType())])
    new = T.StructType(
        [
            T.StructField("A", T.LongType(), False),
            T.StructField("b", T.StringType(), False),
            T.StructField("c", T.LongType()),
        ]
    )
    assert type_changes(table_, new) == [("A", "double", "bigint")]


def test_a_long_channel_is_accepted_and_an_unknown_type_refused():
    assert variant(signal_strength_as_long).channel("signal_strength").spark_type == T.LongType()

    def as_text(doc):
        doc["channels"][0]["type"] = "text"

    with pytest.raises(CatalogueError, match="type 'text' is not supported; supported: double, long"):
        variant(as_text)


def test_a_long_channel_takes_whole_numbers_only(spark):
    texts = ["3", "3.0", "-2", "1.5E3", "9223372036854775807", "9223372036854775808", "3.5", "1e-3", "abc", None]
    df = spark.createDataFrame([(t,) for t in texts], "t string")
    got = [r[0] for r in df.select(_number(F.col("t"), "long")).collect()]
    assert got == [3, 3, -2, 1500, 9223372036854775807, None, None, None, None, None]
    assert [r[0] for r in df.select(_number(F.col("t"), "double")).collect()][:4] == [3.0, 3.0, -2.0, 1500.0]


def test_readings_lacking_a_feature_added_since_are_left_out_of_training(spark):
    """A feature channel added to the catalogue is null in the readings written before it."""
    hour, rng = datetime(2026, 11, 21, 10), np.random.default_rng(2)
    rows = []
    for i in range(300):
        x = [float(v) for v in rng.normal(0, 1, len(FEATURES))]
        rows.append(("d1", hour - (300 - i) * timedelta(minutes=1), *[None if i < 100 else v for v in x[:1]], *x[1:]))
    featured = spark.createDataFrame(rows, ["device_id", "event_time", *FEATURES])
    devices = spark.createDataFrame([("d1",)], "device_id string")
    model = train_models(
        featured, devices, [hour], AnomalyModelConfig(min_training_rows=50, learning_hours=0)
    ).collect()[0]
    assert (model["status"], model["training_rows"], model["incomplete_rows"]) == ("trained", 200, 100)
    assert all(np.isfinite(model["feature_means"])) and np.isfinite(model["distance_threshold"])


def test_hours_before_a_channel_existed_do_not_shrink_its_zscore_baseline(spark):
    hour = datetime(2026, 11, 21, 10)
    metrics = ("temperature", "humidity", "pressure", "vibration")
    rows = []
    for i in range(1, 25):
        added = i <= 8  # the channel `vibration` exists in the last eight hours only
        values = [v for m in metrics for v in ((50.0, 2.0) if m != "vibration" or added else (None, None))]
        rows.append(("d1", hour - timedelta(hours=i), 60, *values))
    cols = [f"{p}_{m}" for m in metrics for p in ("avg", "stddev")]
    schema = ", ".join(
        ["device_id string", "event_hour timestamp", "reading_count int", *[f"{c} double" for c in cols]]
    )
    stats = spark.createDataFrame(rows, schema)
    base = trailing_baseline(with_range(stats), [hour]).first()
    assert (base["mean_vibration"], base["std_vibration"]) == (50.0, 2.0)
    assert (base["mean_temperature"], base["std_temperature"]) == (50.0, 2.0)


def _file_stats(spark, lake, tbl) -> list[set]:
    """The columns each data file of the table's latest commit has minimum values for."""
    log = lake.uri(tbl) + "/_delta_log/*.json"
    version = spark.sql(f"DESCRIBE HISTORY delta.`{lake.uri(tbl)}` LIMIT 1").first()["version"]
    adds = spark.read.json(log).where("add IS NOT NULL").select("add.path", "add.stats", F.input_file_name().alias("f"))
    return [set(json.loads(r["stats"])["minValues"]) for r in adds.collect() if r["f"].endswith(f"{version:020d}.json")]


@pytest.mark.e2e
def test_statistics_are_kept_on_the_declared_columns_and_a_users_choice_is_kept(lake, spark):
    model = reading_model(variant())
    declared = Table(f"bronze_{uuid.uuid4().hex[:8]}", model, "event_hour", ("device_id", "event_time"))
    lake.write_window(readings(spark, model, OLD), declared, OLD)
    assert _file_stats(spark, lake, declared) == [{"device_id", "event_time"}]
    # A table written before its columns were declared gets them at its next write.
    older = table(model)
    lake.write_window(readings(spark, model, OLD), older, OLD)
    assert len(_file_stats(spark, lake, older)[0]) > 10
    # The same table declared again with its columns, as after an upgrade (a process declares a
    # table's name once, so the declaration is renamed to it).
    redeclared = Table(older.name + "_x", model, "event_hour", ("device_id",))
    object.__setattr__(redeclared, "name", older.name)
    lake.write_window(readings(spark, model, NEW), redeclared, NEW)
    assert _file_stats(spark, lake, older) == [{"device_id"}]
    # A value set on the table by its owner is kept.
    spark.sql(f"ALTER TABLE delta.`{lake.uri(older)}` SET TBLPROPERTIES ('{STATS_COLUMNS}' = 'event_time')")
    lake.write_window(readings(spark, model, NEW), redeclared, NEW)
    assert _file_stats(spark, lake, older) == [{"event_time"}]


def test_statistics_columns_must_be_in_the_model():
    with pytest.raises(ValueError, match="not in"):
        Table(f"bronze_{uuid.uuid4().hex[:8]}", reading_model(variant()), "event_hour", ("no_such_column",))
