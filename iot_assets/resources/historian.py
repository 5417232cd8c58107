"""The SQL historian source: a plant's PostgreSQL tag history, read over JDBC into raw records.

Historians such as Ignition's store long rows, one per tag per sample, in monthly tables
`<prefix>_YYYY_MM` (`tagid`, `intvalue`, `floatvalue`, `stringvalue`, `dataintegrity`, `t_stamp`
in epoch milliseconds), with a tag table mapping each `id` to a `tagpath`. Our tagpaths are
`site/line/device/field`, where `field` is a field of the record bronze parses.

An hour becomes the records the rest of the pipeline already parses: the samples of one device
that lie within the scan tolerance of each other are one scan, pivoted into one record. A field
with no sample in the scan is null, never filled in (bronze quarantines the record as
`missing_field`). Every row read for the hour is accounted for: a record's arrival id names each
row in it, and a row that cannot be part of a reading is a record of its own with a reason
(`bad_quality`, `unknown_tag`), which bronze quarantines.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

import psycopg2
from dagster import ConfigurableResource
from pydantic import PrivateAttr
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from iot_assets.lib import catalogue, reasons
from iot_assets.lib.partitions import HOUR
from iot_assets.resources.aws import AwsResource

GOOD_QUALITY = 192  # OPC / Ignition "Good"; every other code is a kind of bad or uncertain
# A tag's field is a catalogue channel (a number) or the record's status (text).
NUMERIC_FIELDS = catalogue.active().names
TEXT_FIELDS = (catalogue.active().record.status,)
FIELDS = (*NUMERIC_FIELDS, *TEXT_FIELDS)
TAGPATH = "site/line/device/field"
ARRIVAL_PREFIX = "historian:"
JDBC_DRIVER = "org.postgresql.Driver"
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,50}$")


def validate_identifier(name: str) -> str:
    """A table name or prefix that is spliced into SQL: lower-case letters, digits and underscores only."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a plain SQL identifier (a-z, 0-9, _): {name!r}")
    return name


def validate_jdbc_url(url: str) -> str:
    """A PostgreSQL JDBC URL with no credentials in it (they would show wherever the URL does)."""
    if not url.startswith("jdbc:postgresql://"):
        raise ValueError("IOT_HISTORIAN_JDBC_URL must start with jdbc:postgresql://")
    parsed = urlparse(url.removeprefix("jdbc:"))
    if parsed.username or parsed.password or re.search(r"(?i)(user|password)=", parsed.query):
        raise ValueError(
            "IOT_HISTORIAN_JDBC_URL must not hold credentials; use IOT_HISTORIAN_USER and the password settings"
        )
    return url


def connection_params(url: str) -> dict:
    """host, port and dbname of a PostgreSQL JDBC URL, for libpq clients (the seed command)."""
    parsed = urlparse(validate_jdbc_url(url).removeprefix("jdbc:"))
    return {"host": parsed.hostname or "127.0.0.1", "port": parsed.port or 5432, "dbname": parsed.path.lstrip("/")}


def epoch_ms(moment: datetime) -> int:
    return round(moment.astimezone(UTC).timestamp() * 1000)


def month_table(prefix: str, moment: datetime) -> str:
    return f"{validate_identifier(prefix)}_{moment.astimezone(UTC):%Y_%m}"


def month_tables(prefix: str, start: datetime, end: datetime) -> list[str]:
    """The monthly tables holding samples stamped in [start, end), by name, oldest first."""
    out, moment = [], start.astimezone(UTC)
    while moment < end:
        out.append(month_table(prefix, moment))
        moment = (moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0) + timedelta(days=32)).replace(day=1)
    return out


def arrival(table: str, tagid, t_stamp) -> str:
    return f"{table}/{tagid}/{t_stamp}"


def rows_in(arrival_id: str) -> list[str]:
    """The historian rows (`<table>/<tagid>/<t_stamp>`) a raw record was built from."""
    return arrival_id.removeprefix(ARRIVAL_PREFIX).split(",") if arrival_id.startswith(ARRIVAL_PREFIX) else []


def classify(rows: DataFrame, tags: DataFrame, tag_table: str) -> DataFrame:
    """Rows (`table`, `tagid`, values, `dataintegrity`, `t_stamp`) with their tag's device and field,
    and `problem` ("<reason>: <detail>") for a row that cannot be part of a reading."""
    parts = F.split("tagpath", "/")
    mapped = (F.size(parts) == 4) & F.element_at(parts, 4).isin(*FIELDS) & (F.element_at(parts, 3) != "")
    ts = F.col("t_stamp").cast("string")
    problem = (
        F.when(
            F.col("tagpath").isNull(),
            F.concat(
                F.lit(f"{reasons.UNKNOWN_TAG}: tagid="),
                F.col("tagid").cast("string"),
                F.lit(f" is not in {tag_table} (t_stamp="),
                ts,
                F.lit(")"),
            ),
        )
        .when(
            ~mapped,
            F.concat(
                F.lit(f"{reasons.UNKNOWN_TAG}: tagpath "),
                F.col("tagpath"),
                F.lit(f" does not name {TAGPATH} with a field in {','.join(FIELDS)}"),
            ),
        )
        .when(
            F.col("dataintegrity").isNull() | (F.col("dataintegrity") != GOOD_QUALITY),
            F.concat(
                F.lit(f"{reasons.BAD_QUALITY}: dataintegrity="),
                F.coalesce(F.col("dataintegrity").cast("string"), F.lit("null")),
                F.lit(" for "),
                F.col("tagpath"),
                F.lit(" at t_stamp="),
                ts,
            ),
        )
    )
    return (
        rows.join(F.broadcast(tags.withColumnRenamed("id", "tagid")), "tagid", "left")
        .withColumn("device_id", F.when(mapped, F.element_at(parts, 3)))
        .withColumn("field", F.when(mapped, F.element_at(parts, 4)))
        .withColumn("arrival", F.concat_ws("/", "table", F.col("tagid").cast("string"), ts))
        .withColumn("problem", problem)
    )


def to_readings(samples: DataFrame, tolerance_ms: int) -> DataFrame:
    """Good samples (`device_id`, `field`, `t_stamp`, values, `arrival`) pivoted into one record per
    device scan: `scan_ms` (its first sample), `device_id`, `arrival_id`, `payload` (record JSON).

    A sample more than `tolerance_ms` after the device's previous one starts a new scan. A field
    sampled twice in one scan gives a second record rather than losing a sample.
    """
    by_time = Window.partitionBy("device_id").orderBy("t_stamp", "field", "arrival")
    gap = F.col("t_stamp") - F.lag("t_stamp").over(by_time)
    scans = samples.withColumn(
        "scan",
        F.sum(F.when(gap.isNull() | (gap > tolerance_ms), 1).otherwise(0)).over(
            by_time.rowsBetween(Window.unboundedPreceding, Window.currentRow)
        ),
    ).withColumn(
        "nth", F.row_number().over(Window.partitionBy("device_id", "scan", "field").orderBy("t_stamp", "arrival"))
    )
    number = F.coalesce(F.col("floatvalue").cast("double"), F.col("intvalue").cast("double"))
    wide = scans.groupBy("device_id", "scan", "nth").agg(
        F.min("t_stamp").alias("scan_ms"),
        *[F.max(F.when(F.col("field") == f, number)).alias(f) for f in NUMERIC_FIELDS],
        *[F.max(F.when(F.col("field") == f, F.col("stringvalue"))).alias(f) for f in TEXT_FIELDS],
        F.concat(F.lit(ARRIVAL_PREFIX), F.concat_ws(",", F.array_sort(F.collect_list("arrival")))).alias("arrival_id"),
    )
    timestamp = F.date_format(F.timestamp_millis("scan_ms"), "yyyy-MM-dd'T'HH:mm:ss.SSSXXX")
    keys = catalogue.active().record
    record = F.struct(F.col("device_id").alias(keys.device_id), timestamp.alias(keys.timestamp), *FIELDS)
    return wide.select(
        "scan_ms", "device_id", "arrival_id", F.to_json(record, {"ignoreNullFields": "false"}).alias("payload")
    )


def problem_records(classified: DataFrame) -> DataFrame:
    """Rows with a problem, each one record: the row as JSON, and its reason."""
    row = F.struct("table", "tagid", "tagpath", "intvalue", "floatvalue", "stringvalue", "dataintegrity", "t_stamp")
    return classified.where(F.col("problem").isNotNull()).select(
        F.col("t_stamp").alias("scan_ms"),
        F.lit("").alias("device_id"),
        F.concat(F.lit(ARRIVAL_PREFIX), F.col("arrival")).alias("arrival_id"),
        F.to_json(row).alias("payload"),
        "problem",
    )


@dataclass(frozen=True)
class HistorianRecord:
    payload: bytes
    device_id: str
    arrival_id: str
    problem: str | None


@dataclass(frozen=True)
class HistorianHour:
    records: list[HistorianRecord]
    rows_by_table: dict[str, int]  # historian rows in the hour's records, per monthly table read


def hour_of_records(classified: DataFrame, hour: datetime, tolerance_ms: int) -> list[HistorianRecord]:
    """The hour's records: scans that start in it, and problem rows stamped in it, in time order."""
    lo, hi = epoch_ms(hour), epoch_ms(hour + HOUR)
    readings = to_readings(classified.where(F.col("problem").isNull()), tolerance_ms).withColumn(
        "problem", F.lit(None).cast("string")
    )
    both = readings.unionByName(problem_records(classified)).where((F.col("scan_ms") >= lo) & (F.col("scan_ms") < hi))
    return [
        HistorianRecord(r["payload"].encode(), r["device_id"], r["arrival_id"], r["problem"])
        for r in both.orderBy("scan_ms", "device_id", "arrival_id").collect()
    ]


class HistorianSource(ConfigurableResource):
    """A PostgreSQL SQL historian read over JDBC (`IOT_RAW_SOURCE=historian`).

    The password comes from AWS Secrets Manager (`secret_name`) or an `EnvVar`; it is passed to
    the JDBC reader only, never to run config, logs or metadata.
    """

    aws: AwsResource
    jdbc_url: str = "jdbc:postgresql://127.0.0.1:5433/historian"
    user: str = "historian"
    password: str = ""
    secret_name: str = ""
    table_prefix: str = "sqlt_data_1"
    tag_table: str = "sqlth_te"
    read_partitions: int = 2
    scan_tolerance_ms: int = 500

    _secret: str | None = PrivateAttr(default=None)

    def credentials(self) -> tuple[str, str]:
        """(user, password), the password read from Secrets Manager once per resource."""
        if self._secret is None:
            if self.secret_name:
                value = self.aws.client("secretsmanager").get_secret_value(SecretId=self.secret_name)["SecretString"]
                self._secret = json.loads(value)["password"] if value.lstrip().startswith("{") else value
            else:
                self._secret = self.password
        if not self._secret:
            raise ValueError("no historian password: set IOT_HISTORIAN_SECRET_NAME or IOT_HISTORIAN_PASSWORD")
        return self.user, self._secret

    def connect(self):
        """A libpq connection (closed on leaving `with`) for what needs no Spark: the metadata
        queries of the driver and the sensor, and the seed command."""
        user, password = self.credentials()
        return closing(
            psycopg2.connect(user=user, password=password, connect_timeout=10, **connection_params(self.jdbc_url))
        )

    def _monthly_tables(self, cur) -> list[str]:
        """The monthly tables that exist, found by name (`<prefix>_YYYY_MM`), oldest first."""
        prefix = validate_identifier(self.table_prefix)
        cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_name LIKE %s",
            (prefix.replace("_", "\\_") + "\\_%",),
        )
        return sorted(t for (t,) in cur.fetchall() if re.fullmatch(rf"{prefix}_\d{{4}}_\d{{2}}", t))

    def existing_tables(self) -> set[str]:
        with self.connect() as conn, conn.cursor() as cur:
            return set(self._monthly_tables(cur))

    def stamp_range(self) -> tuple[datetime, datetime] | None:
        """The oldest and newest `t_stamp` in the monthly tables; None when no table holds a row."""
        with self.connect() as conn, conn.cursor() as cur:
            tables = self._monthly_tables(cur)

            def first(agg: str, order) -> int | None:
                for table in order:
                    cur.execute(f"SELECT {agg}(t_stamp) FROM {table}")
                    if (value := cur.fetchone()[0]) is not None:
                        return value
                return None

            oldest, newest = first("min", tables), first("max", reversed(tables))
        if oldest is None:
            return None
        return tuple(datetime.fromtimestamp(v / 1000, tz=UTC) for v in (oldest, newest))

    def _reader(self, spark: SparkSession, dbtable: str):
        user, password = self.credentials()
        return (
            spark.read.format("jdbc")
            .option("url", validate_jdbc_url(self.jdbc_url))
            .option("driver", JDBC_DRIVER)
            .option("user", user)
            .option("password", password)
            .option("dbtable", dbtable)
            .option("fetchsize", "10000")
        )

    def tags(self, spark: SparkSession) -> DataFrame:
        return self._reader(spark, f"(SELECT id, tagpath FROM {validate_identifier(self.tag_table)}) AS tags").load()

    def rows(self, spark: SparkSession, table: str, start: datetime, end: datetime) -> DataFrame:
        """One monthly table's rows stamped in [start, end), read by `read_partitions` parallel
        queries over ranges of `t_stamp`."""
        lo, hi = epoch_ms(start), epoch_ms(end)
        query = (
            f"(SELECT tagid, intvalue, floatvalue, stringvalue, dataintegrity, t_stamp FROM "
            f"{validate_identifier(table)} WHERE t_stamp >= {lo} AND t_stamp < {hi}) AS samples"
        )
        return (
            self._reader(spark, query)
            .option("partitionColumn", "t_stamp")
            .option("lowerBound", str(lo))
            .option("upperBound", str(hi))
            .option("numPartitions", str(self.read_partitions))
            .load()
            .withColumn("table", F.lit(table))
        )

    def read_hour(self, spark: SparkSession, hour: datetime) -> HistorianHour:
        """The hour's records. Rows up to one scan tolerance either side are read too, so a scan
        that crosses the hour's start or end (or a month's) is whole in the hour it starts in."""
        margin = timedelta(milliseconds=self.scan_tolerance_ms)
        start, end = hour - margin, hour + HOUR + margin
        existing = self.existing_tables()
        tables = [t for t in month_tables(self.table_prefix, start, end) if t in existing]
        if not tables:
            return HistorianHour([], {})
        frames = [self.rows(spark, t, start, end) for t in tables]
        rows = frames[0]
        for frame in frames[1:]:
            rows = rows.unionByName(frame)
        # Kept between its two uses (readings and problem rows), so the tables are read once.
        classified = classify(rows, self.tags(spark), self.tag_table).persist()
        try:
            records = hour_of_records(classified, hour, self.scan_tolerance_ms)
        finally:
            classified.unpersist()
        counted = Counter(row.split("/", 1)[0] for r in records for row in rows_in(r.arrival_id))
        return HistorianHour(records, {t: counted.get(t, 0) for t in tables})
