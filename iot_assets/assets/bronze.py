"""Bronze: every raw record parsed against an explicit schema; what fails goes to quarantine.

`raw records = bronze rows + quarantine rows` holds for every batch hour: a record either
becomes a typed reading whose event time lies in its batch hour, or a quarantine row that keeps
its text (up to 8 KiB) and says why.
"""

from functools import reduce

import pandera.pyspark as pa
import pyspark.sql.types as T
from dagster import AssetExecutionContext, AssetOut, BackfillPolicy, MaterializeResult, multi_asset
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from iot_assets.lib import catalogue, quality, reasons
from iot_assets.lib.framing import MAX_RECORD_BYTES
from iot_assets.lib.metadata import table_metadata
from iot_assets.lib.partitions import hourly_partitions
from iot_assets.lib.schemas import conform, model
from iot_assets.lib.tables import Table
from iot_assets.resources.io_managers import RawObject
from iot_assets.resources.lakehouse import LAKE_WRITER_POOL, DeltaLakehouse, count_by
from iot_assets.resources.quality_config import DataQualityConfig
from iot_assets.resources.spark import SPARK_RETRY_POLICY, SparkResource, parallelism

CATALOGUE = catalogue.active()
RECORD = CATALOGUE.record
NUMERIC_FIELDS = CATALOGUE.names
# The payload key each channel arrives under (its `source` in the catalogue, else its name).
CHANNEL_KEYS = {c.name: c.key for c in CATALOGUE.channels}
# The payload's keys: its own fields and the catalogue's channels.
PAYLOAD_FIELDS = (RECORD.device_id, RECORD.timestamp, *CHANNEL_KEYS.values(), RECORD.status)
REQUIRED_FIELDS = (RECORD.device_id, RECORD.timestamp, *(CHANNEL_KEYS[c] for c in CATALOGUE.required), RECORD.status)
# `(?![\s\S])` is the end of the text in Java and Python alike: `$` also matches before a final
# line break, so "dev-0003\n" would pass.
DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}(?![\s\S])"
KEPT_PAYLOAD_CHARS = 8 * 1024

# One line of a raw batch object, as the raw IO manager writes it: the record exactly as it
# arrived, plus where it came from.
ENVELOPE = T.StructType(
    [
        T.StructField("arrival_id", T.StringType()),  # the record's identity where it arrived
        T.StructField("batch_hour", T.StringType()),
        T.StructField("record_index", T.LongType()),
        T.StructField("payload", T.StringType()),
        T.StructField("payload_b64", T.StringType()),  # set instead of payload when not UTF-8
        T.StructField("source", T.StringType()),
        T.StructField("kinesis_shard_id", T.StringType()),
        T.StructField("kinesis_sequence_number", T.StringType()),
        T.StructField("kinesis_partition_key", T.StringType()),
        T.StructField("kinesis_arrival_time", T.StringType()),
        T.StructField("object_problem", T.StringType()),  # "<reason>: <detail>" for a landed file without records
    ]
)

# Every field is read as text, so a wrong type yields a precise reason instead of a null.
_PAYLOAD_TEXT = T.StructType([T.StructField(f, T.StringType()) for f in PAYLOAD_FIELDS])
# The payload is parsed inside a wrapper that ends with a sentinel key: Jackson stops after the
# first JSON value, so text after it (`{..} garbage`, `{..}{..}`) is seen only as a wrapper that
# does not parse or lacks its sentinel. One parse serves both. (The sentinel is a number read as
# one: a number read as text is rendered back through a JSON generator, per record.)
_END = "__iot_assets_end__"
_WRAPPED = T.StructType(
    [
        T.StructField("v", _PAYLOAD_TEXT),
        T.StructField(_END, T.IntegerType()),
        T.StructField("_corrupt_record", T.StringType()),
    ]
)
# The same payload with each channel read as its catalogue type, for the common case (see
# `first_pass`): a JSON number becomes the channel's value directly. Read into a text field, Spark
# renders each number back to text through a JSON generator of its own, per value.
_CHANNEL_TYPES = {c.key: c.spark_type for c in CATALOGUE.channels}
_WRAPPED_TYPED = T.StructType(
    [
        T.StructField(
            "v", T.StructType([T.StructField(f, _CHANNEL_TYPES.get(f, T.StringType())) for f in PAYLOAD_FIELDS])
        ),
        T.StructField(_END, T.IntegerType()),
        T.StructField("_corrupt_record", T.StringType()),
    ]
)
_STRICT = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt_record", "allowSingleQuotes": "false"}
_CORRUPT_ONLY = T.StructType([T.StructField("_corrupt_record", T.StringType())])
_EXTRA = T.MapType(T.StringType(), T.StringType())


def channel_columns(
    in_range: bool = False, cat: catalogue.Catalogue = CATALOGUE
) -> dict[str, tuple[T.DataType, object]]:
    """One column per catalogue channel, described by its unit and nullable when the channel is
    optional; with `in_range`, checked against the channel's valid range."""
    return {
        c.name: (
            c.spark_type,
            pa.Field(
                nullable=not c.required,
                description=c.unit,
                **(dict(ge=c.valid_range[0], le=c.valid_range[1]) if in_range else {}),
            ),
        )
        for c in cat.channels
    }


def reading_model(cat: catalogue.Catalogue) -> type[pa.DataFrameModel]:
    """Bronze's model for a catalogue: its channels between the record's own fields (a catalogue
    other than the active one gives the model a lake of that catalogue would have)."""
    return model(
        "BronzeReading",
        "A reading that parsed: typed, with a valid device id and an event time in its batch hour.",
        {
            "device_id": (T.StringType(), pa.Field(nullable=False, str_matches=DEVICE_ID_PATTERN)),
            "event_time": (T.TimestampType(), pa.Field(nullable=False)),
            **channel_columns(cat=cat),
            "status": (T.StringType(), pa.Field(nullable=False)),
            "extra_fields": (
                T.StringType(),
                pa.Field(nullable=True, description="unexpected fields (schema drift), as JSON"),
            ),
            "source": (
                T.StringType(),
                pa.Field(nullable=False, isin=["simulator", "kinesis", "s3_landing", "replay", "historian"]),
            ),
            "source_object": (
                T.StringType(),
                pa.Field(nullable=False, description="raw batch object it was read from"),
            ),
            "record_index": (T.LongType(), pa.Field(nullable=False, ge=0, description="position in the raw batch")),
            "kinesis_shard_id": (T.StringType(), pa.Field(nullable=True)),
            "kinesis_sequence_number": (T.StringType(), pa.Field(nullable=True)),
            "kinesis_partition_key": (T.StringType(), pa.Field(nullable=True)),
            "kinesis_arrival_time": (T.TimestampType(), pa.Field(nullable=True)),
            "ingest_time": (T.TimestampType(), pa.Field(nullable=False)),
            "event_hour": (
                T.TimestampType(),
                pa.Field(nullable=False, description="partition: event time truncated to the hour"),
            ),
        },
        __name__,
    )


BronzeReading = reading_model(CATALOGUE)


class QuarantinedRecord(pa.DataFrameModel):
    """A raw record that did not parse, with the reason and its text."""

    batch_hour: T.TimestampType() = pa.Field(nullable=False, description="partition: the raw batch's hour")
    reason: T.StringType() = pa.Field(nullable=False, isin=list(reasons.QUARANTINE_REASONS))
    reason_detail: T.StringType() = pa.Field(nullable=True)
    payload: T.StringType() = pa.Field(nullable=True, description=f"record text, first {KEPT_PAYLOAD_CHARS} characters")
    payload_bytes: T.LongType() = pa.Field(nullable=False, ge=0)
    source: T.StringType() = pa.Field(nullable=False)
    source_object: T.StringType() = pa.Field(nullable=False)
    record_index: T.LongType() = pa.Field(nullable=False, ge=0)
    arrival_id: T.StringType() = pa.Field(
        nullable=True, description="Kinesis stream/shard/sequence or landed key@ETag#offset"
    )
    kinesis_shard_id: T.StringType() = pa.Field(nullable=True)
    kinesis_sequence_number: T.StringType() = pa.Field(nullable=True)
    kinesis_partition_key: T.StringType() = pa.Field(nullable=True)
    ingest_time: T.TimestampType() = pa.Field(nullable=False)


# Statistics on the columns readers filter on within an hour (a device, a time): Delta's default
# (the first 32 columns) computed a minimum and maximum of every column, strings too, for every
# row written.
READING_STATS = ("device_id", "event_time")
BRONZE_READINGS = Table("bronze_sensor_readings", BronzeReading, "event_hour", READING_STATS)
QUARANTINE = Table("bronze_quarantine", QuarantinedRecord, "batch_hour")


def _first(conds: list[tuple[Column, str | Column]]) -> Column:
    """The label of the first true condition, else null."""
    out = F.lit(None).cast("string")
    for cond, label in reversed(conds):
        out = F.when(cond, label if isinstance(label, Column) else F.lit(label)).otherwise(out)
    return out


# RFC 2822 / HTTP dates ("Tue, 10 Nov 2026 12:21:00 +0000" or "... GMT"), sent by some gateways;
# the weekday is dropped because Spark parses no day-of-week names.
_RFC2822 = [
    rf"try_to_timestamp(regexp_replace(ts_text, '^[A-Za-z]{{3}},\\s*', ''), 'd MMM yyyy HH:mm:ss {z}')"
    for z in ("Z", "z")
]


# A JSON number (as Jackson renders it: "48.5", "1.79431320025E9") or plain decimal text. Java's
# parser, behind Spark's cast, also takes "21.5d", "2.2f", "0x1.2p1", " 1 " and "Infinity".
_NUMBER = r"^-?\d+(\.\d*)?([eE][+-]?\d+)?$"
# ISO text must carry a date and a time of day: Spark's cast completes "2026-11-12T10" to 10:00:00
# and gives a time alone today's date.
_ISO_DATE_AND_TIME = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}"
# A zone abbreviation at the end (CST: Chicago, Shanghai or Havana? IST, BST, ...) is refused, not
# guessed; UTC, GMT, UT, Z, offsets and region ids (Europe/Paris) are exact.
_ZONE_ABBREVIATION = r"(^|[^A-Za-z/_])(?!(UTC|GMT|UT)$)[A-Za-z]{2,}$"


def _parse_timestamp(text: Column) -> Column:
    """ISO-8601 with a date and a time of day (any offset, `+0100` or a region id; none means UTC),
    RFC 2822, or epoch seconds (with a fraction) / milliseconds; null otherwise, and null for a
    zone abbreviation. Needs the column `ts_text`."""
    # A JSON number reaches us as text, a fractional one in Jackson's notation ("1.79431320025E9").
    # Only text that is a number is tried as one: the decimal cast is not free, and ISO text is
    # by far the common case.
    number = F.expr("try_cast(ts_text as decimal(20,6))")
    epoch = F.when(text.rlike(r"^\d{13}$"), F.timestamp_millis(F.expr("try_cast(ts_text as bigint)"))).when(
        (number >= 1e9) & (number < 1e10), F.timestamp_seconds(number)
    )
    iso = F.when(text.rlike(_ISO_DATE_AND_TIME), F.expr("try_cast(ts_text as timestamp)"))
    # The abbreviation search runs only on text ending in a letter other than the usual "Z".
    abbreviated = F.substring(text, -1, 1).rlike("[A-Ya-z]") & text.rlike(_ZONE_ABBREVIATION)
    return F.when(text.rlike(_NUMBER), epoch).when(~abbreviated, F.coalesce(iso, *[F.expr(e) for e in _RFC2822]))


def _number(text: Column, type_: str) -> Column:
    """The value a channel's text stands for, when it is a JSON number or decimal text; else null.

    A `long` channel takes a whole number in the long range only ("3", "3.0", "1.5E3"): "3.5" is
    null, and so quarantined as invalid_type, not truncated. The text is read as an exact decimal
    first, so a large whole number is not rounded through a double."""
    number = F.when(text.rlike(_NUMBER), text)
    if type_ == "long":
        exact = number.try_cast("decimal(38,18)")
        return F.when(exact == F.floor(exact), exact.try_cast("long"))
    return number.try_cast("double")


def _payload(key: str) -> Column:
    """The payload's field `key` (as text); a key may hold spaces or dots, so it is not parsed as a path."""
    return F.col("p").getField(key)


def _not_a_number(channel: str) -> Column:
    """The channel's text is not a finite number; an optional channel may also be absent (null).
    (Only a double can be infinite; the absolute value of a long's minimum overflows.)"""
    value = F.col(f"_num_{channel}")
    bad = (
        value.isNull() | (F.abs(value) == float("inf"))
        if CATALOGUE.channel(channel).type == "double"
        else value.isNull()
    )
    key = CHANNEL_KEYS[channel]
    return bad if key in REQUIRED_FIELDS else _payload(key).isNotNull() & bad


def _reason() -> Column:
    """The first reason a parsed record fails, in order of precedence; null for a valid reading."""
    is_object = F.col("payload").rlike(r"^\s*\{")
    other_json_value = F.col("payload").rlike(r'^\s*(\[|"|-?\d|true|false|null)')
    keys = F.col("_keys")
    return _first(
        [
            (F.col("object_problem").isNotNull(), F.substring_index("object_problem", ":", 1)),
            (F.col("payload_b64").isNotNull(), reasons.NOT_UTF8),
            (F.col("payload_bytes") > MAX_RECORD_BYTES, reasons.RECORD_TOO_LARGE),
            (~is_object & other_json_value, reasons.NOT_AN_OBJECT),
            (F.col("payload").isNull() | ~is_object | F.col("_bad_json"), reasons.MALFORMED_JSON),
            (~F.col("_whole"), reasons.TRAILING_TEXT),
            (F.coalesce(F.size(keys) > F.size(F.array_distinct(keys)), F.lit(False)), reasons.DUPLICATE_KEY),
            (F.col("_missing") != "", reasons.MISSING_FIELD),
            (F.col("_bad_type") != "", reasons.INVALID_TYPE),
            (~F.col(f"p.{RECORD.device_id}").rlike(DEVICE_ID_PATTERN), reasons.INVALID_DEVICE_ID),
            (F.col("_event_time").isNull(), reasons.INVALID_TIMESTAMP),
            (F.col("_event_hour") < F.col("batch_hour"), reasons.LATE_EVENT),
            (F.col("_event_hour") > F.col("batch_hour"), reasons.FUTURE_EVENT),
        ]
    )


def _wrap(payload: str) -> Column:
    return F.concat(F.lit('{"v":'), payload, F.lit(f',"{_END}":1}}'))


def _payload_bytes() -> Column:
    return F.coalesce(F.octet_length("payload"), F.length("payload_b64") * 3 / 4).cast("long")


# What bronze keeps of a record besides its parsed fields: where it came from.
_PROVENANCE = (
    "source",
    "source_object",
    "record_index",
    "arrival_id",
    "kinesis_shard_id",
    "kinesis_sequence_number",
    "kinesis_partition_key",
    "kinesis_arrival_time",
)


def parse_raw(envelopes: DataFrame) -> DataFrame:
    """Parse raw envelopes into typed columns plus `reason`/`reason_detail` (null when valid).

    Needs the envelope columns and `source_object`. The same as `first_pass` then `second_pass`.
    """
    return second_pass(first_pass(envelopes))


def first_pass(envelopes: DataFrame) -> DataFrame:
    """Every record parsed once with its channels typed, and `_fast`: true when the record is a
    valid reading as parsed (a record the full parse would give the same values and no reason).

    Most records are valid readings with plain JSON numbers, and for them this parse is all the
    work: its typed channels need no number tests, its keys no listing (a count of its commas
    proves them), and there is no reason to find. A record it does not accept (text or a
    fraction where a channel wants a number, a duplicate or unknown key, a missing field,
    anything wrong) keeps its envelope, and `second_pass` parses it in full. The bronze step
    keeps this frame between its two writes.
    """
    t = F.col("_t.v")
    df = envelopes.select(
        "*",
        _payload_bytes().alias("payload_bytes"),
        F.from_json(_wrap("payload"), _WRAPPED_TYPED, _STRICT).alias("_t"),
        F.to_timestamp("batch_hour").alias("_batch_hour"),
        F.trim(t.getField(RECORD.timestamp)).alias("ts_text"),
    )
    df = df.select("*", _parse_timestamp(F.col("ts_text")).alias("_event_time"))
    whole = F.col("_t._corrupt_record").isNull() & F.col(f"_t.{_END}").isNotNull()
    # Every key is a known one, each once, without listing the keys (a second parse of the text):
    # an object has one comma fewer than keys, plus any inside its values, and each known field
    # with a value is a key of its own. So commas = known fields with a value - 1 leaves no room
    # for another key or a repeated one; a comma inside a value, or a key whose value is null,
    # only sends the record to the full parse.
    commas = F.length("payload") - F.length(F.replace(F.col("payload"), F.lit(","), F.lit("")))
    with_value = reduce(lambda a, b: a + b, [t.getField(f).isNotNull().cast("int") for f in PAYLOAD_FIELDS])
    finite = [
        t.getField(c.key).isNull() | ~(F.isnan(t.getField(c.key)) | (F.abs(t.getField(c.key)) == float("inf")))
        for c in CATALOGUE.channels
        if c.type == "double"
    ]
    fast = reduce(
        lambda a, b: a & b,
        [
            F.col("object_problem").isNull(),
            F.col("payload_b64").isNull(),
            F.col("payload_bytes") <= MAX_RECORD_BYTES,
            whole,
            commas == with_value - 1,
            *[t.getField(f).isNotNull() for f in REQUIRED_FIELDS],
            *finite,
            t.getField(RECORD.device_id).rlike(DEVICE_ID_PATTERN),
            F.date_trunc("hour", "_event_time") == F.col("_batch_hour"),
        ],
    )
    fast = F.coalesce(fast, F.lit(False))
    # A record the second pass parses keeps its envelope and its arrival id (quarantine's); an
    # accepted one only what bronze keeps.
    again = ~F.col("_fast")
    envelope_only = ("payload", "payload_b64", "object_problem", "batch_hour", "arrival_id")
    return df.select(
        "*",
        fast.alias("_fast"),
        F.current_timestamp().alias("ingest_time"),
    ).select(
        "_fast",
        *[F.when(again, F.col(c)).alias(c) for c in envelope_only],
        F.col("_batch_hour"),
        "payload_bytes",
        t.getField(RECORD.device_id).alias("device_id"),
        F.col("_event_time").alias("event_time"),
        *[t.getField(CHANNEL_KEYS[f]).alias(f) for f in NUMERIC_FIELDS],
        t.getField(RECORD.status).alias("status"),
        *[c for c in _PROVENANCE if c not in envelope_only],
        "ingest_time",
    )


def second_pass(first: DataFrame) -> DataFrame:
    """The records `first_pass` accepted as they are, and every other record parsed in full."""
    accepted = first.where("_fast").select(
        F.lit(None).cast("string").alias("reason"),
        F.lit(None).cast("string").alias("reason_detail"),
        F.col("_batch_hour").alias("batch_hour"),
        F.lit(None).cast("string").alias("payload"),
        "payload_bytes",
        "device_id",
        "event_time",
        *NUMERIC_FIELDS,
        "status",
        F.lit(None).cast("string").alias("extra_fields"),
        *_PROVENANCE,
        "ingest_time",
    )
    rest = first.where(~F.col("_fast")).select(
        *[F.col(f.name) for f in ENVELOPE.fields if f.name not in _PROVENANCE], *_PROVENANCE, "ingest_time"
    )
    return accepted.unionByName(_parse_each(rest))


def _parse_each(envelopes: DataFrame) -> DataFrame:
    """The full parse of envelopes (with `source_object` and `ingest_time`): every test, the reason
    and its detail.

    Built in stages (parse, per-field tests, reason, detail): each stage's columns are computed
    once and referenced by name. As one expression, the reason was evaluated again inside each
    branch of the detail.
    """
    wrapped = F.from_json(_wrap("payload"), _WRAPPED, _STRICT)
    df = (
        envelopes.withColumn("payload_bytes", _payload_bytes())
        .withColumn("w", wrapped)
        .withColumn("_keys", F.json_object_keys("payload"))
        .withColumn("batch_hour", F.to_timestamp("batch_hour"))
    )
    whole = F.coalesce(F.col("w._corrupt_record").isNull() & F.col(f"w.{_END}").isNotNull(), F.lit(False))
    # Only a record whose wrapper failed is parsed again, alone, to tell bad JSON from trailing text.
    bad_json = F.when(~whole, F.from_json("payload", _CORRUPT_ONLY, _STRICT)["_corrupt_record"].isNotNull())
    df = df.select(
        "*", F.col("w.v").alias("p"), whole.alias("_whole"), F.coalesce(bad_json, F.lit(False)).alias("_bad_json")
    )
    df = df.withColumn("ts_text", F.trim(F.col(f"p.{RECORD.timestamp}")))
    df = df.select(
        "*",
        *[_number(_payload(CHANNEL_KEYS[f]), CATALOGUE.channel(f).type).alias(f"_num_{f}") for f in NUMERIC_FIELDS],
        _parse_timestamp(F.col("ts_text")).alias("_event_time"),
    )
    missing = F.concat_ws(",", *[F.when(_payload(f).isNull(), F.lit(f)) for f in REQUIRED_FIELDS])
    bad_type = F.concat_ws(
        ",",
        *[
            F.when(
                _not_a_number(f), F.concat(F.lit(CHANNEL_KEYS[f] + "="), F.substring(_payload(CHANNEL_KEYS[f]), 1, 40))
            )
            for f in NUMERIC_FIELDS
        ],
    )
    df = df.select(
        "*",
        missing.alias("_missing"),
        bad_type.alias("_bad_type"),
        F.date_trunc("hour", F.col("_event_time")).alias("_event_hour"),
    )
    df = df.select("*", _reason().alias("reason"))
    keys = F.col("_keys")
    reason = F.col("reason")
    detail = (
        F.when(reason.isNull(), F.lit(None).cast("string"))
        .when(F.col("object_problem").isNotNull(), F.col("object_problem"))
        .when(reason == reasons.MISSING_FIELD, F.col("_missing"))
        .when(reason == reasons.INVALID_TYPE, F.col("_bad_type"))
        .when(reason == reasons.INVALID_DEVICE_ID, F.substring(F.col(f"p.{RECORD.device_id}"), 1, 80))
        .when(
            reason.isin(reasons.INVALID_TIMESTAMP, reasons.LATE_EVENT, reasons.FUTURE_EVENT),
            F.concat(F.lit("timestamp="), F.substring("ts_text", 1, 60)),
        )
        .when(reason == reasons.RECORD_TOO_LARGE, F.concat(F.lit("bytes="), F.col("payload_bytes").cast("string")))
        .when(
            reason == reasons.DUPLICATE_KEY,
            F.concat(
                F.lit("keys="),
                F.array_join(
                    F.array_distinct(F.filter(keys, lambda k: F.size(F.filter(keys, lambda x: x == k)) > 1)), ","
                ),
            ),
        )
        .when(reason == reasons.TRAILING_TEXT, F.lit("text after the JSON object"))
    )
    # Unexpected fields (schema drift) are kept as JSON. Listing the keys is cheaper than parsing
    # the payload into a map, so the map is built only for records that have an unknown key.
    known = F.array(*[F.lit(f) for f in PAYLOAD_FIELDS])
    has_extra = F.size(F.array_except(F.coalesce(keys, F.array().cast("array<string>")), known)) > 0
    extra = F.map_filter(F.from_json("payload", _EXTRA), lambda k, v: ~F.array_contains(known, k))
    # Only what bronze and quarantine need is kept: the full payload text only for a record that
    # goes to quarantine (the frame is cached between the two writes).
    reason = F.col("reason")
    return df.select(
        reason,
        detail.alias("reason_detail"),
        "batch_hour",
        F.when(reason.isNotNull(), F.substring(F.coalesce("payload", "payload_b64"), 1, KEPT_PAYLOAD_CHARS)).alias(
            "payload"
        ),
        "payload_bytes",
        F.col(f"p.{RECORD.device_id}").alias("device_id"),
        F.col("_event_time").alias("event_time"),
        *[F.col(f"_num_{f}").alias(f) for f in NUMERIC_FIELDS],
        F.col(f"p.{RECORD.status}").alias("status"),
        F.when(reason.isNull() & has_extra & (F.size(extra) > 0), F.to_json(extra)).alias("extra_fields"),
        *_PROVENANCE,
        "ingest_time",
    )


def split_bronze(parsed: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(valid readings, quarantined records), each conformed to its layer schema."""
    good = (
        parsed.where(F.col("reason").isNull())
        .withColumn("status", F.lower(F.trim("status")))
        .withColumn("kinesis_arrival_time", F.to_timestamp("kinesis_arrival_time"))
        .withColumn("event_hour", F.date_trunc("hour", "event_time"))
    )
    bad = parsed.where(F.col("reason").isNotNull())
    return conform(good, BronzeReading), conform(bad, QuarantinedRecord)


def read_raw(spark, objects: list[RawObject]) -> DataFrame:
    """The envelopes of the given raw objects, read with the explicit envelope schema."""
    uris = [o.uri for o in objects]
    if not uris:
        return spark.createDataFrame([], ENVELOPE).withColumn("source_object", F.lit(None).cast("string"))
    df = (
        spark.read.schema(ENVELOPE)
        .option("mode", "FAILFAST")
        .json(uris)
        .withColumn("source_object", F.col("_metadata.file_path"))
    )
    # A gzip object is read by one task; parsing is the costly part, so fewer objects than cores
    # are spread over every core. (Spark packs more objects than cores into about one task per core.)
    cores = parallelism(spark)
    return df.repartition(cores) if len(uris) < cores else df


@multi_asset(
    outs={
        "readings": AssetOut(
            key=BRONZE_READINGS.key,
            description="Readings parsed from raw batches with an explicit schema, with their ingestion "
            "metadata (source object, ingest time, Kinesis shard, sequence number and key).",
            metadata=BRONZE_READINGS.metadata(),
            kinds={"spark", "delta", "s3"},
            group_name="bronze",
            is_required=True,
        ),
        "quarantine": AssetOut(
            key=QUARANTINE.key,
            description="Raw records that could not become readings, each with a reason and its text.",
            metadata=QUARANTINE.metadata(),
            kinds={"spark", "delta", "s3"},
            group_name="bronze",
            is_required=True,
        ),
    },
    partitions_def=hourly_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    pool=LAKE_WRITER_POOL,
    retry_policy=SPARK_RETRY_POLICY,
    check_specs=[
        BRONZE_READINGS.check(
            "check_bronze_schema",
            "Columns, types, ranges and nulls agree with the BronzeReading pandera model.",
        ),
        BRONZE_READINGS.check(
            "check_bronze_reconciles_raw",
            "Every raw record is a bronze row or a quarantine row: raw = bronze + quarantine, per hour.",
        ),
        QUARANTINE.check(
            "check_quarantine_schema",
            "Columns, types and reasons agree with the QuarantinedRecord pandera model.",
        ),
        QUARANTINE.check(
            "check_quarantine_rate",
            "The share of raw records quarantined stays under IOT_MAX_QUARANTINE_RATE (WARN).",
        ),
    ],
)
def bronze(
    context: AssetExecutionContext,
    spark: SparkResource,
    lake: DeltaLakehouse,
    quality_config: DataQualityConfig,
    raw_sensor_batches: list[RawObject],
):
    """Parse the hour's raw batch into bronze readings and quarantined records."""
    window = context.partition_time_window
    hours = quality.partitions_of(context.partition_keys)
    # Kept between the two writes: each record parsed once, and the few the first pass did not
    # accept parsed in full from it (again for the quarantine's write and counts; they are few).
    first = first_pass(read_raw(spark.session, raw_sensor_batches)).persist()
    try:
        good, bad = split_bronze(second_pass(first))
        if quality.WriteObservation.fits(hours):
            # The schema checks are counted as the writes write the rows (a pass over the cached
            # frames took 6-7 s an hour at 1,000 devices x 1/s), a failing one again on the table.
            on_good, on_bad = _observe_bronze(spark.session, lake, window, hours, good, bad)
            written = lake.write_window(on_good.on(good), BRONZE_READINGS, window, parallel=True)
            quarantined = lake.write_window(on_bad.on(bad), QUARANTINE, window)
            schemas = (*on_good.evaluations(), *on_bad.evaluations())
        else:  # a long range: the checks judge the frames written, still cached
            written = lake.write_window(good, BRONZE_READINGS, window, parallel=True)
            quarantined = lake.write_window(bad, QUARANTINE, window)
            schemas = (
                quality.check_schema(good, BronzeReading, *_READINGS_CHECK),
                quality.check_schema(bad, QuarantinedRecord, *_QUARANTINE_CHECK),
            )
        reasons_count = count_by(bad, "reason")
        # Each check is held to the row count of its table's commit.
        evaluations = bronze_checks(
            *schemas, raw_sensor_batches, quality_config.max_quarantine_rate, (written.rows, quarantined.rows)
        )
    finally:
        first.unpersist()
    raw_records = sum(o.records for o in raw_sensor_batches)
    yield MaterializeResult(
        asset_key=BRONZE_READINGS.key, metadata=table_metadata(written, BronzeReading, raw_records=raw_records)
    )
    yield MaterializeResult(
        asset_key=QUARANTINE.key,
        metadata=table_metadata(quarantined, QuarantinedRecord, rows_by_reason=reasons_count, raw_records=raw_records),
    )
    yield from quality.report(context, spark.session, lake, evaluations)


_READINGS_CHECK = (
    BRONZE_READINGS.name,
    "check_bronze_schema",
    BRONZE_READINGS.partition_column,
    ["device_id", "event_time", "source_object", "record_index"],
)
_QUARANTINE_CHECK = (
    QUARANTINE.name,
    "check_quarantine_schema",
    QUARANTINE.partition_column,
    ["source_object", "record_index", "reason"],
)


def _observe_bronze(session, lake: DeltaLakehouse, window, hours, good: DataFrame, bad: DataFrame):
    """The bronze schema checks as aggregates of the two writes (`quality.WriteObservation`)."""
    out = []
    for table, df, schema_model, (asset, check, partition_col, keys) in (
        (BRONZE_READINGS, good, BronzeReading, _READINGS_CHECK),
        (QUARANTINE, bad, QuarantinedRecord, _QUARANTINE_CHECK),
    ):
        observing = quality.WriteObservation(partition_col, hours)
        observing.schema(
            df, schema_model, asset, check, keys, lambda t=table: lake.read_window(session, t, window.start, window.end)
        )
        out.append(observing)
    return out


def bronze_checks(
    readings_schema: quality.Evaluation,
    quarantine_schema: quality.Evaluation,
    raw: list[RawObject],
    max_quarantine_rate: float,
    committed: tuple[int, int],
) -> list[quality.Evaluation]:
    """The bronze checks on the partition as written: the schema checks of the rows written, held
    to the row counts of their commits (readings, quarantine), and what follows from their counts."""
    raw_by_hour: dict = {}
    for o in raw:  # an hour holds one raw object per arrival batch
        raw_by_hour[o.hour] = raw_by_hour.get(o.hour, 0) + o.records
    quality.as_committed(readings_schema, committed[0])
    quality.as_committed(quarantine_schema, committed[1])
    # The schema checks see every row of the partition, so their counts are the table's.
    good, bad = readings_schema.rows_by_partition(), quarantine_schema.rows_by_partition()
    return [
        readings_schema,
        quality.check_reconciles(
            raw_by_hour,
            {"bronze": good, "quarantine": bad},
            BRONZE_READINGS.name,
            "check_bronze_reconciles_raw",
            "raw records = bronze rows + quarantine rows",
        ),
        quarantine_schema,
        quality.check_rate(
            bad, raw_by_hour, max_quarantine_rate, QUARANTINE.name, "check_quarantine_rate", "quarantined"
        ),
    ]
