"""Gold: per-device aggregates by hour, by 10-minute window, and by day."""

import pandera.pyspark as pa
import pyspark.sql.types as T
from dagster import AssetExecutionContext, BackfillPolicy, MaterializeResult, asset
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from iot_assets.assets.bronze import CATALOGUE
from iot_assets.assets.silver import SILVER_READINGS
from iot_assets.automation.conditions import FOLLOW_UPSTREAM
from iot_assets.lib import catalogue, quality
from iot_assets.lib.metadata import column_lineage, table_metadata
from iot_assets.lib.partitions import daily_partitions, hourly_partitions
from iot_assets.lib.schemas import conform, model
from iot_assets.lib.tables import Table, Upstream, deps
from iot_assets.resources.lakehouse import LAKE_WRITER_POOL, DeltaLakehouse
from iot_assets.resources.spark import SPARK_RETRY_POLICY, SparkResource

STAT_METRICS = CATALOGUE.with_role(catalogue.GOLD_STATISTICS)
# Each hour's median and robust sigma of these (the anomaly log's shift test).
LEVEL_METRICS = CATALOGUE.with_role(catalogue.ZSCORE)
_D = T.DoubleType()
_OPTIONAL = tuple(c.name for c in CATALOGUE.channels if not c.required)


def _stat_fields(prefixes: tuple[str, ...], metrics: tuple[str, ...]) -> dict:
    return {f"{p}_{m}": _D for m in metrics for p in prefixes}


def _attributes(table: str) -> dict[str, T.DataType]:
    """The registry attributes a gold table carries per device (the catalogue's `gold`)."""
    return {a.name: a.spark_type for a in CATALOGUE.in_gold(table)}


_OPTIONAL_ATTRIBUTES = {a.name for a in CATALOGUE.registry if not a.required}


def _model(name: str, doc: str, fields: dict[str, T.DataType], nullable: set[str] = frozenset()) -> type:
    """A pandera model from a field list, for tables whose columns are generated per metric."""
    return model(name, doc, {k: (dtype, pa.Field(nullable=k in nullable)) for k, dtype in fields.items()}, __name__)


_stats = _stat_fields(("avg", "min", "max", "stddev"), STAT_METRICS)
_levels = _stat_fields(("median", "spread"), LEVEL_METRICS)
DeviceHourlyStats = _model(
    "DeviceHourlyStats",
    "Per device and hour: count and avg/min/max/stddev of each metric.",
    {
        "device_id": T.StringType(),
        "event_hour": T.TimestampType(),
        **_attributes("hourly"),
        "reading_count": T.LongType(),
        **_stats,
        **_levels,
    },
    # A standard deviation needs two readings; an optional channel may have none in the hour. An
    # hour written before gold kept its levels has none.
    nullable={k for k in _stats if k.startswith("stddev_")}
    | _levels.keys()
    | _OPTIONAL_ATTRIBUTES
    | _stat_fields(("avg", "min", "max"), tuple(m for m in STAT_METRICS if m in _OPTIONAL)).keys(),
)

# The 10-minute and daily tables: each channel's statistics as the catalogue asks, then the count of
# readings in each banded channel's top band.
_TEN_MINUTE = CATALOGUE.ten_minute_columns()
_DAILY = CATALOGUE.daily_columns()
_TOP_COUNTS = {c.bands.top_count: c for c in CATALOGUE.banded()}
SensorAggregates10Min = _model(
    "SensorAggregates10Min",
    "Per device and 10-minute window.",
    {
        "device_id": T.StringType(),
        "window_start": T.TimestampType(),
        "window_end": T.TimestampType(),
        **_attributes("ten_minute"),
        "record_count": T.LongType(),
        **{column: _D for column, _, _ in _TEN_MINUTE},
        **dict.fromkeys(_TOP_COUNTS, T.LongType()),
        "event_hour": T.TimestampType(),
    },
    nullable={column for column, _, c in _TEN_MINUTE if not c.required} | _OPTIONAL_ATTRIBUTES,
)

DailyDeviceSummary = _model(
    "DailyDeviceSummary",
    "Per device and day.",
    {
        "device_id": T.StringType(),
        "event_date": T.DateType(),
        **_attributes("daily"),
        "reading_count": T.LongType(),
        "hours_reporting": T.LongType(),
        **{column: _D for column, _, _ in _DAILY},
        **dict.fromkeys(_TOP_COUNTS, T.LongType()),
    },
    nullable={column for column, _, c in _DAILY if not c.required} | _OPTIONAL_ATTRIBUTES,
)

HOURLY_STATS = Table("device_hourly_stats", DeviceHourlyStats, "event_hour")
AGGREGATES_10MIN = Table("sensor_aggregates_10min", SensorAggregates10Min, "event_hour")
DAILY_SUMMARY = Table("daily_device_summary", DailyDeviceSummary, "event_date")
# Each gold table reads its own window of silver.
FROM_SILVER = Upstream(SILVER_READINGS)

_SILVER = SILVER_READINGS
_STAT_PREFIXES = ("avg_", "min_", "max_", "stddev_", "median_", "spread_")
_STAT = {"avg": F.avg, "min": F.min, "max": F.max}


def _lineage(model: type) -> object:
    """A gold table's column lineage: each statistic from its silver metric, time columns from event_time."""
    silver_columns = SILVER_READINGS.model.to_schema().columns
    derived = {
        "window_start": [(_SILVER, "event_time")],
        "window_end": [(_SILVER, "event_time")],
        "event_date": [(_SILVER, "event_time")],
        "hours_reporting": [(_SILVER, "event_hour")],
        **{column: [(_SILVER, c.name)] for column, _, c in _DAILY},
        **{column: [(_SILVER, c.bands.column)] for column, c in _TOP_COUNTS.items()},
    }
    for column in model.to_schema().columns:
        metrics = [column.removeprefix(p) for p in _STAT_PREFIXES if column.startswith(p)]
        if metrics and metrics[0] in silver_columns:
            derived[column] = [(_SILVER, metrics[0])]
    if "window_start" in model.to_schema().columns:
        derived["event_hour"] = [(_SILVER, "event_time")]
    return column_lineage(model, [_SILVER], derived)


def _aggregate(silver: DataFrame, keys: list[str], aggs: list, table: str) -> DataFrame:
    """`silver` grouped by `keys` with `aggs`, and each registry attribute the gold `table` carries:
    one value per group, as silver joined it.

    The attributes are text, and an aggregate over text has no fixed-width buffer: with one among
    the aggregates Spark sorts every row of the window by the keys (a sort aggregate) instead of
    hashing them. So the statistics are one hash aggregate, and the attributes come from the
    distinct keys and attributes of the rows (another, a few rows per group), joined on the keys."""
    names = [a.name for a in CATALOGUE.in_gold(table)]
    stats = silver.groupBy(*keys).agg(*aggs)
    if not names:
        return stats
    distinct = silver.select(*keys, *names).distinct()
    attributes = distinct.groupBy(*keys).agg(*[F.first(n).alias(n) for n in names])
    return stats.join(attributes, keys, "left")


# An interquartile range over this is a Gaussian's sigma.
IQR_PER_SIGMA = 1.349


def level_columns() -> list[str]:
    return [f"{p}_{m}" for p in ("median", "spread") for m in LEVEL_METRICS]


def hourly_levels(silver: DataFrame) -> DataFrame:
    """Per device and hour, each z-score metric's median (`median_`) and robust sigma (`spread_`,
    the interquartile range / 1.349) over the hour's readings: the anomaly log's shift test's band.
    Kept in the hourly stats, so that each hour's are computed once, as gold writes the hour, and
    not again for every hour whose trailing day holds it."""
    quartiles = [F.percentile_approx(m, [0.25, 0.5, 0.75]).alias(m) for m in LEVEL_METRICS]
    return (
        silver.groupBy("device_id", "event_hour")
        .agg(*quartiles)
        .select(
            "device_id",
            "event_hour",
            *[F.col(m)[1].alias(f"median_{m}") for m in LEVEL_METRICS],
            *[((F.col(m)[2] - F.col(m)[0]) / IQR_PER_SIGMA).alias(f"spread_{m}") for m in LEVEL_METRICS],
        )
    )


def hourly_stats(silver: DataFrame) -> DataFrame:
    aggs = [F.count("*").alias("reading_count")]
    for m in STAT_METRICS:
        aggs += [
            F.avg(m).alias(f"avg_{m}"),
            F.min(m).alias(f"min_{m}"),
            F.max(m).alias(f"max_{m}"),
            F.stddev_samp(m).alias(f"stddev_{m}"),
        ]
    keys = ["device_id", "event_hour"]
    # The quartiles are an aggregate of their own: in the statistics' aggregate they would make it
    # an object hash aggregate, which Spark runs without generated code.
    stats = _aggregate(silver, keys, aggs, "hourly").join(hourly_levels(silver), keys, "left")
    return conform(stats, DeviceHourlyStats)


def _top_counts() -> list:
    """Per banded channel: how many readings fell in its top band."""
    top = [(column, c.bands.column, c.bands.levels[-1]) for column, c in _TOP_COUNTS.items()]
    return [F.sum(F.when(F.col(band) == level, 1).otherwise(0)).alias(column) for column, band, level in top]


def ten_minute_aggregates(silver: DataFrame) -> DataFrame:
    aggs = [
        F.count("*").alias("record_count"),
        *(_STAT[stat](c.name).alias(column) for column, stat, c in _TEN_MINUTE),
        *_top_counts(),
    ]
    windowed = silver.withColumn("w", F.window("event_time", "10 minutes"))
    out = (
        _aggregate(windowed, ["device_id", "w"], aggs, "ten_minute")
        .withColumn("window_start", F.col("w.start"))
        .withColumn("window_end", F.col("w.end"))
        .withColumn("event_hour", F.date_trunc("hour", "window_start"))
    )
    return conform(out, SensorAggregates10Min)


def daily_summary(silver: DataFrame) -> DataFrame:
    aggs = [
        F.count("*").alias("reading_count"),
        F.countDistinct("event_hour").alias("hours_reporting"),
        *(_STAT[stat](c.name).alias(column) for column, stat, c in _DAILY),
        *_top_counts(),
    ]
    dated = silver.withColumn("event_date", F.to_date("event_time"))
    return conform(_aggregate(dated, ["device_id", "event_date"], aggs, "daily"), DailyDeviceSummary)


def _silver_window(context: AssetExecutionContext, spark: SparkResource, lake: DeltaLakehouse) -> DataFrame:
    return lake.read_upstream(spark.session, FROM_SILVER, context.partition_time_window)


def gold_checks(
    table: Table, schema: quality.Evaluation, counted: dict, count_col: str, silver: DataFrame
) -> list[quality.Evaluation]:
    """Schema conformance, and every silver reading counted exactly once in the aggregate:
    `counted` is the sum of `count_col` per partition of the rows written."""
    asset, partition_col = table.name, table.partition_column
    silver_part = (
        F.to_date("event_time").alias(partition_col) if partition_col == "event_date" else F.col(partition_col)
    )
    return [
        schema,
        quality.check_reconciles(
            quality.counts_by(silver.select(silver_part), partition_col),
            {count_col: counted},
            asset,
            f"check_{asset}_reconciles_silver",
            f"silver rows = sum of {count_col}",
        ),
    ]


def _write_and_check(context, session, lake: DeltaLakehouse, table: Table, rows: DataFrame, count_col: str):
    """Write the window's rows; (the write's result, its schema check, the sum of `count_col` per
    partition written). An hourly table's checks are counted as the write writes the rows
    (`quality.WriteObservation`) and held to the commit's row count; the daily summary, and a
    range of more than 48 hours, are checked on the window read back."""
    w = context.partition_time_window
    asset, partition_col = table.name, table.partition_column
    check = f"check_{asset}_schema"

    def written():
        return lake.read_window(session, table, w.start, w.end)

    hours = quality.partitions_of(context.partition_keys)
    if partition_col == "event_hour" and quality.WriteObservation.fits(hours):
        observing = quality.WriteObservation(partition_col, hours)
        observing.schema(rows, table.model, asset, check, ["device_id"], written)
        totals = observing.sum(count_col)
        result = lake.write_window(observing.on(rows), table, w)
        (schema,) = observing.evaluations()
        return result, quality.as_committed(schema, result.rows), totals()
    result = lake.write_window(rows, table, w)
    back = written()
    schema = quality.check_schema(back, table.model, asset, check, partition_col, ["device_id"])
    counted = back.groupBy(partition_col).agg(F.sum(count_col).alias("n")).collect()
    return result, schema, {quality.partition_value(r[partition_col]): int(r["n"]) for r in counted}


def _gold_specs(table: Table, count_col: str) -> list:
    asset = table.name
    return [
        table.check(f"check_{asset}_schema", "Columns, types and nulls agree with the pandera model."),
        table.check(
            f"check_{asset}_reconciles_silver",
            f"Every silver reading of the window is counted once: silver rows = sum of {count_col}.",
        ),
    ]


# A day's summary needs all 24 of its silver hours: eager() waits until none is missing.
_GOLD = dict(
    group_name="gold",
    kinds={"spark", "delta", "s3"},
    backfill_policy=BackfillPolicy.single_run(),
    automation_condition=FOLLOW_UPSTREAM,
    pool=LAKE_WRITER_POOL,
    retry_policy=SPARK_RETRY_POLICY,
)


@asset(
    partitions_def=hourly_partitions,
    key=HOURLY_STATS.key,
    deps=deps(FROM_SILVER),
    metadata=HOURLY_STATS.metadata(),
    check_specs=_gold_specs(HOURLY_STATS, "reading_count"),
    **_GOLD,
)
def device_hourly_stats(context: AssetExecutionContext, spark: SparkResource, lake: DeltaLakehouse):
    """Per device and hour: reading count, and average, minimum, maximum and standard deviation of each metric."""
    yield from _gold(context, spark, lake, HOURLY_STATS, hourly_stats, "reading_count")


@asset(
    partitions_def=hourly_partitions,
    key=AGGREGATES_10MIN.key,
    deps=deps(FROM_SILVER),
    metadata=AGGREGATES_10MIN.metadata(),
    check_specs=_gold_specs(AGGREGATES_10MIN, "record_count"),
    **_GOLD,
)
def sensor_aggregates_10min(context: AssetExecutionContext, spark: SparkResource, lake: DeltaLakehouse):
    """Per device and 10-minute window (`window_start`, `window_end`): counts and avg/min/max of each metric."""
    yield from _gold(context, spark, lake, AGGREGATES_10MIN, ten_minute_aggregates, "record_count")


def _gold(context, spark, lake, table: Table, transform, count_col):
    silver = _silver_window(context, spark, lake)
    written, schema, counted = _write_and_check(context, spark.session, lake, table, transform(silver), count_col)
    yield MaterializeResult(metadata=table_metadata(written, table.model, lineage=_lineage(table.model)))
    yield from quality.report(context, spark.session, lake, gold_checks(table, schema, counted, count_col, silver))


@asset(
    partitions_def=daily_partitions,
    key=DAILY_SUMMARY.key,
    deps=deps(FROM_SILVER),
    metadata=DAILY_SUMMARY.metadata(),
    check_specs=_gold_specs(DAILY_SUMMARY, "reading_count"),
    **_GOLD,
)
def daily_device_summary(context: AssetExecutionContext, spark: SparkResource, lake: DeltaLakehouse):
    """Per device and day, from the day's 24 hourly silver partitions: the statistics the sensor
    catalogue asks for (`daily`), and the readings in each banded channel's top band."""
    yield from _gold(context, spark, lake, DAILY_SUMMARY, daily_summary, "reading_count")
