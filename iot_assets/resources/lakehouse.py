"""Delta tables on S3: where each table lives, and idempotent writes of whole partitions.

Every write replaces exactly the time window it was given (`replaceWhere` on the typed partition
column), so materialising a partition twice leaves the same rows and other partitions untouched.
Delta also refuses a write whose rows fall outside that window.

The schema of an existing table evolves with the models (`mergeSchema`): a column added to a model
(a channel added to the catalogue) is added to the table, and older partitions read it as null; a
column dropped from a model stays in the table with its history, and newer partitions read it as
null. A column whose type changed is refused before anything is written (`SchemaChangeRefused`):
Delta would fail with an obscure merge error, or with type widening rewrite the column's meaning.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from dagster import ConfigurableResource, Failure, MetadataValue, TimeWindow
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from iot_assets import settings
from iot_assets.lib.partitions import spark_ts

if TYPE_CHECKING:
    from iot_assets.lib.tables import Table, Upstream

_TABLE_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

# What reading a location that holds no Delta table raises: nothing there, or files without a log.
NO_TABLE_CONDITIONS = frozenset({"PATH_NOT_FOUND", "DELTA_TABLE_NOT_FOUND", "DELTA_MISSING_DELTA_TABLE"})

# Every step that commits to a Delta table takes a slot of this Dagster concurrency pool. Delta's
# default S3 log store (S3SingleDriverLogStore) is safe for one driver only: two runs committing
# the same version of one table (every step also appends to data_quality_log) can lose a commit.
# The instance gives the pool one slot (dagster.yaml `concurrency.pools.default_limit`); with the
# DynamoDB log store (deployments/production/) it may have more.
LAKE_WRITER_POOL = "delta_lake_writers"

# The table property naming the columns Delta keeps file statistics on (`Table.stats_columns`).
STATS_COLUMNS = "delta.dataSkippingStatsColumns"


class SchemaChangeRefused(Failure, ValueError):
    """A write that would change the type of a column the table already has; nothing was written.

    A Dagster `Failure` that bypasses the retry policy: running the step again cannot help."""

    def __init__(self, uri: str, changes: list[tuple[str, str, str]]):
        self.uri = uri
        self.changes = changes
        listed = "; ".join(f"column {c!r}: the table has {old}, the new data has {new}" for c, old, new in changes)
        super().__init__(
            f"{s3_uri(uri)}: refusing to change the type of {len(changes)} column(s): {listed}. No data was "
            "written. A channel keeps its type for the life of a lake: to record it with another type, add it "
            "under a new name (the old column keeps its history), or migrate the table by hand and then "
            "change the catalogue (docs/catalogue.md).",
            metadata={"table_uri": s3_uri(uri), "type_changes": {c: f"{old} -> {new}" for c, old, new in changes}},
            allow_retries=False,
        )


def type_changes(table: StructType, new: StructType) -> list[tuple[str, str, str]]:
    """(column, table's type, new type) for each column in both schemas whose type differs.

    Nullability is not compared: Delta stores every column of a DataFrame write as nullable.
    Names are compared without case, as Delta resolves them."""
    existing = {f.name.lower(): f.dataType for f in table.fields}
    return [
        (f.name, existing[f.name.lower()].simpleString(), f.dataType.simpleString())
        for f in new.fields
        if f.name.lower() in existing and existing[f.name.lower()].simpleString() != f.dataType.simpleString()
    ]


@dataclass(frozen=True)
class WriteResult:
    table: str
    uri: str
    version: int
    rows: int
    files: int
    start: datetime | None
    end: datetime | None
    seconds: float

    def metadata(self) -> dict:
        meta = {
            # The rows of the window written (the partition, or the run's range of partitions).
            "dagster/partition_row_count": self.rows,
            "dagster/table_name": self.table,
            "dagster/uri": MetadataValue.path(s3_uri(self.uri)),
            "delta_version": self.version,
            "files_written": self.files,
            "spark_seconds": round(self.seconds, 2),
        }
        if self.start is not None:
            meta["partition_start"] = self.start.isoformat()
            meta["partition_end"] = self.end.isoformat()
        return meta


def s3_uri(uri: str) -> str:
    """The `s3://` form of a location Spark reads as `s3a://` (one scheme in the catalog)."""
    return "s3://" + uri.removeprefix("s3a://") if uri.startswith("s3a://") else uri


class DeltaLakehouse(ConfigurableResource):
    """Locations of the Delta tables under `s3a://<bucket>/<prefix>/`, and how they are written."""

    bucket: str = "iot-lakehouse"
    prefix: str = "lake"
    max_records_per_file: int = 1_000_000

    def uri(self, table: Table | str) -> str:
        name = table if isinstance(table, str) else table.name
        if not _TABLE_RE.match(name):
            raise ValueError(f"not a valid table name: {name!r}")
        return f"s3a://{settings.validate_bucket(self.bucket)}/{settings.validate_prefix(self.prefix)}/{name}"

    def exists(self, spark: SparkSession, table: Table | str) -> bool:
        return table_schema(spark, self.uri(table)) is not None

    def _write(
        self,
        df: DataFrame,
        table: Table,
        mode: str,
        predicate: str | None,
        partition_by: str | None,
        start=None,
        end=None,
    ) -> WriteResult:
        began = time.monotonic()
        uri = self.uri(table)
        spark = df.sparkSession
        existing = table_schema(spark, uri)
        if existing is not None:
            changes = type_changes(existing, df.schema)
            if changes:
                raise SchemaChangeRefused(uri, changes)
        # Columns only ever come from the pandera models (schemas.conform), so a column added to a
        # model is added to an existing table; nothing else can reach it. A column the model no
        # longer has stays in the table: Delta writes null for it.
        writer = (
            df.write.format("delta")
            .mode(mode)
            .option("maxRecordsPerFile", self.max_records_per_file)
            .option("mergeSchema", "true")
        )
        if table.stats_columns:
            wanted = ",".join(table.stats_columns)
            if existing is None:  # set on the table the write creates
                writer = writer.option(STATS_COLUMNS, wanted)
            elif _table_property(spark, uri, STATS_COLUMNS) is None:
                # A table written before the property was declared gets it once; a value someone
                # set on the table is theirs, and kept.
                spark.sql(f"ALTER TABLE delta.`{uri}` SET TBLPROPERTIES ('{STATS_COLUMNS}' = '{wanted}')")
        if predicate:
            writer = writer.option("replaceWhere", predicate)
        if partition_by:
            writer = writer.partitionBy(partition_by)
        writer.save(uri)
        # SQL, not DeltaTable.history: the same over Spark Connect. The URI is validated (`uri`).
        last = spark.sql(f"DESCRIBE HISTORY delta.`{uri}` LIMIT 1").select("version", "operationMetrics").first()
        metrics = last["operationMetrics"] or {}
        return WriteResult(
            table=table.name,
            uri=uri,
            version=int(last["version"]),
            rows=int(metrics.get("numOutputRows", 0)),
            files=int(metrics.get("numFiles", 0)),
            start=start,
            end=end,
            seconds=time.monotonic() - began,
        )

    def write_window(self, df: DataFrame, table: Table, window: TimeWindow, parallel: bool = False) -> WriteResult:
        """Replace the rows of `table` whose partition column lies in the window with `df`.

        A window of several hours (a range backfill) is written one file per hour, not one per
        task. `parallel` (the large tables, bronze and silver): a window of one hour is written by
        all of `df`'s tasks at once instead of being gathered into one; maxRecordsPerFile still
        bounds the files."""
        column = table.partition_column
        single_hour = window.end - window.start <= timedelta(hours=1)
        out = df if parallel and single_hour else df.repartition(column)
        return self._write(
            out,
            table,
            "overwrite",
            window_predicate(column, window.start, window.end),
            column,
            window.start,
            window.end,
        )

    def overwrite(self, df: DataFrame, table: Table) -> WriteResult:
        """Replace a whole (unpartitioned) table."""
        return self._write(df.coalesce(1), table, "overwrite", None, None)

    def read(self, spark: SparkSession, table: Table | str) -> DataFrame:
        return spark.read.format("delta").load(self.uri(table))

    def read_window(self, spark: SparkSession, table: Table, start: datetime, end: datetime) -> DataFrame:
        """The rows of `table` whose partition column lies in [start, end)."""
        return self.read(spark, table).where(window_predicate(table.partition_column, start, end))

    def read_upstream(self, spark: SparkSession, edge: Upstream, window: TimeWindow) -> DataFrame:
        """What a step materialising `window` reads over a declared edge (its partition mapping)."""
        return self.read_window(spark, edge.table, *edge.window(window))


def _table_property(spark: SparkSession, uri: str, key: str) -> str | None:
    """A property of the Delta table at `uri`, or None when it is not set."""
    rows = spark.sql(f"SHOW TBLPROPERTIES delta.`{uri}`").where(f"key = '{key}'").collect()
    return rows[0]["value"] if rows else None


def table_schema(spark: SparkSession, uri: str) -> StructType | None:
    """The schema of the Delta table at `uri`, or None if there is none. It reads through the
    DataFrame API (not `DeltaTable`), so it works the same over Spark Connect; any other failure,
    such as S3 being unreachable, is raised."""
    try:
        return spark.read.format("delta").load(uri).schema
    except AnalysisException as e:
        if e.getCondition() in NO_TABLE_CONDITIONS:
            return None
        raise


def computed_once(df: DataFrame) -> DataFrame:
    """`df` computed now and held in executor storage (an eager local checkpoint), cut from its plan.

    For a frame that a step writes and then summarises, where the frame reads a table the step
    writes (the anomaly log reads its trailing day, incidents the hour before): after a Delta
    write, Spark drops and re-plans every `persist()`ed plan that reads that table, so the summary
    after the write computed the whole frame again (in the anomaly log, 22 of 49 s at 50 devices).
    A checkpoint has no plan left to re-plan. Like a cache, its blocks live on the executors: a lost
    executor fails the query, and the step's retry policy runs it again. Over Spark Connect the
    server releases them when the client drops the frame."""
    return df.localCheckpoint(eager=True)


def window_predicate(column: str, start: datetime, end: datetime) -> str:
    if not _TABLE_RE.match(column):
        raise ValueError(f"not a valid column name: {column!r}")
    if column.endswith("_date"):
        return f"{column} >= DATE'{start:%Y-%m-%d}' AND {column} < DATE'{end:%Y-%m-%d}'"
    return f"{column} >= TIMESTAMP'{spark_ts(start)}' AND {column} < TIMESTAMP'{spark_ts(end)}'"


def count_by(df: DataFrame, column: str) -> dict[str, int]:
    """Row counts per value of a (low-cardinality) column, as plain Python types."""
    return {str(r[0]): int(r[1]) for r in df.groupBy(column).count().orderBy(column).collect()}
