"""Incidents: what an operator acts on, one per stretch of a device's confirmed anomalous readings.

Confirmed readings of a device closer than `gap` to each other form one stretch. The stretch opens
an incident only once its evidence persists (its third confirmed reading, or one of high severity):
lone confirmed readings are where a noisy signal's false alarms come from, and a page for each
costs operators more than the minutes of latency the rule adds. The incident closes at its last
reading once `gap` has passed with no other; until then it stays open (`closed_at` null), also
across hours: hour H+1 continues the incidents open at the end of H. Each hourly partition holds
the state, at the end of that hour, of every incident active in it (opened, continued or closed
there), so the newest row of an incident is its current state.

A range run reads the incidents open at the end of the hour before the range, and the anomaly log
from an hour before it (a stretch's first evidence may lie there), and sessionises the whole range
in one Spark job, so each hour gets exactly the rows its own run would give it.
"""

from datetime import timedelta

from dagster import (
    AssetExecutionContext,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from iot_assets.assets.verdicts import ANOMALY_LOG, INCIDENTS, SEVERITIES, IncidentRecord
from iot_assets.automation.conditions import FOLLOW_UPSTREAM
from iot_assets.lib import quality
from iot_assets.lib.metadata import table_metadata
from iot_assets.lib.partitions import HOUR, hourly_partitions, hours_in
from iot_assets.lib.schemas import conform, struct_type
from iot_assets.lib.tables import Upstream, deps
from iot_assets.resources.lakehouse import LAKE_WRITER_POOL, DeltaLakehouse, computed_once
from iot_assets.resources.spark import SPARK_RETRY_POLICY, SparkResource

# Confirmed readings of a device further apart than this belong to different incidents.
INCIDENT_GAP = timedelta(minutes=10)
# An incident opens once its evidence persists: at its OPEN_READINGS-th confirmed reading, or at
# its first confirmed reading of OPEN_SEVERITY or worse. A lone confirmed reading of lower
# severity opens none: on a noisy signal that is where false alarms come from.
OPEN_READINGS = 3
OPEN_SEVERITY = "high"
# The evidence before an opening spans at most (OPEN_READINGS - 1) gaps; a run reads it from the
# anomaly log this far back.
LOOKBACK = HOUR
assert (OPEN_READINGS - 1) * INCIDENT_GAP <= LOOKBACK
# At most this many opened incidents are listed in a materialisation's metadata (for the alerts).
MAX_LISTED = 200


def _rank(col):
    return F.array_position(F.array(*[F.lit(s) for s in SEVERITIES]), col).cast("int")


def _sorted_set(col):
    return F.array_join(F.array_sort(F.array_distinct(col)), ",")


def incidents(
    log: DataFrame,
    carried: DataFrame,
    first_hour,
    last_hour,
    gap: timedelta = INCIDENT_GAP,
    open_readings: int = OPEN_READINGS,
    open_severity: str = OPEN_SEVERITY,
) -> DataFrame:
    """The incidents' states for each hour in [first_hour, last_hour].

    `log`: anomaly-log rows of those hours (only `confirmed` ones count), and of the `lookback`
    before `first_hour`, whose readings may be the first evidence of an incident that opens in it;
    `carried`: incident rows of the hour before `first_hour` (those still open continue, and the
    readings up to each device's latest incident belong to that incident already).

    A stretch of confirmed readings (gaps up to `gap`) opens an incident at the reading where its
    evidence persists: its `open_readings`-th reading, or its first reading of `open_severity` or
    worse. A stretch that never gets there opens none. The readings before the opening count in it.
    """
    gap_s = int(gap.total_seconds())
    start = F.lit(first_hour.replace(tzinfo=None)).cast("timestamp")
    seen = carried.groupBy("device_id").agg(F.max("last_flag_at").alias("_seen"))
    readings = (
        log.where("confirmed")
        .groupBy("device_id", "event_time")
        .agg(
            F.max(_rank(F.col("severity"))).alias("sev"),
            F.collect_set("method").alias("m"),
            F.collect_set("metric").alias("x"),
        )
        .join(seen, "device_id", "left")
        .where((F.col("event_time") >= start) | F.col("_seen").isNull() | (F.col("event_time") > F.col("_seen")))
        .select(
            "device_id",
            "event_time",
            "sev",
            "m",
            "x",
            F.col("m").alias("first_by"),
            F.lit(1).cast("long").alias("n"),
            F.lit(None).cast("string").alias("incident_id"),
            F.lit(None).cast("timestamp").alias("opened_at"),
            F.lit(None).cast("timestamp").alias("opened_in_hour"),
        )
    )
    seeds = carried.where(F.col("closed_at").isNull()).select(
        "device_id",
        F.col("last_flag_at").alias("event_time"),
        _rank(F.col("peak_severity")).alias("sev"),
        F.split("methods", ",").alias("m"),
        F.split("metrics", ",").alias("x"),
        F.split("first_detected_by", ",").alias("first_by"),
        F.col("readings").alias("n"),
        "incident_id",
        "opened_at",
        "opened_in_hour",
    )
    rows = seeds.unionByName(readings)
    order = Window.partitionBy("device_id").orderBy("event_time")
    prev = F.lag("event_time").over(order)
    rows = rows.withColumn(
        "_new", F.when(prev.isNull() | (F.unix_seconds("event_time") - F.unix_seconds(prev) > gap_s), 1).otherwise(0)
    ).withColumn("_session", F.sum("_new").over(order))
    run = Window.partitionBy("device_id", "_session").orderBy("event_time").rowsBetween(Window.unboundedPreceding, 0)
    whole = Window.partitionBy("device_id", "_session").orderBy("event_time")
    first = lambda c: F.first(c).over(whole)  # noqa: E731  (the session's first row: a carried incident if any)
    cum = rows.select(
        "device_id",
        "_session",
        "event_time",
        F.col("event_time").alias("last_flag_at"),
        F.date_trunc("hour", "event_time").alias("_hour"),
        first("opened_at").alias("_carried_at"),
        first("incident_id").alias("_carried_id"),
        first("first_by").alias("first_by"),
        first("opened_in_hour").alias("_carried_in_hour"),
        F.max("sev").over(run).alias("sev"),
        F.sum("n").over(run).alias("readings"),
        F.flatten(F.collect_list("m").over(run)).alias("m"),
        F.flatten(F.collect_list("x").over(run)).alias("x"),
    )
    # Where the evidence first persists: the session's opening reading (none: no incident).
    persists = (F.col("readings") >= open_readings) | (F.col("sev") >= _rank(F.lit(open_severity)))
    session = Window.partitionBy("device_id", "_session")
    cum = (
        cum.withColumn("_opens", F.min(F.when(persists, F.col("event_time"))).over(session))
        .withColumn("opened_at", F.coalesce("_carried_at", "_opens"))
        .withColumn("opened_in_hour", F.coalesce("_carried_in_hour", F.date_trunc("hour", "_opens")))
        .where(F.col("event_time") >= F.col("opened_at"))
    )
    # The state after the last reading of each (incident, hour), valid until its next reading's hour.
    last_in_hour = Window.partitionBy("device_id", "_session", "_hour").orderBy(F.desc("last_flag_at"))
    snaps = (
        cum.withColumn("_k", F.row_number().over(last_in_hour))
        .where("_k = 1")
        .withColumn("_next", F.lead("_hour").over(Window.partitionBy("device_id", "_session").orderBy("_hour")))
    )
    closes = F.col("last_flag_at") + F.expr(f"INTERVAL {gap_s} SECONDS")
    close_hour = F.date_trunc("hour", closes - F.expr("INTERVAL 1 MICROSECOND"))
    until = F.least(
        F.coalesce(F.col("_next") - F.expr("INTERVAL 1 HOUR"), close_hour),
        close_hour,
        F.lit(last_hour.replace(tzinfo=None)).cast("timestamp"),
    )
    since = F.greatest(F.col("_hour"), start)
    out = (
        snaps.where(since <= until)
        .withColumn("event_hour", F.explode(F.sequence(since, until, F.expr("INTERVAL 1 HOUR"))))
        .withColumn(
            "closed_at", F.when(closes <= F.col("event_hour") + F.expr("INTERVAL 1 HOUR"), F.col("last_flag_at"))
        )
        .withColumn(
            "incident_id",
            F.coalesce(
                "_carried_id", F.concat_ws("@", "device_id", F.date_format("opened_at", "yyyy-MM-dd'T'HH:mm:ss.SSSSSS"))
            ),
        )
        .withColumn("peak_severity", F.element_at(F.array(*[F.lit(s) for s in SEVERITIES]), F.col("sev")))
        .withColumn("methods", _sorted_set(F.col("m")))
        .withColumn("metrics", _sorted_set(F.col("x")))
        .withColumn("first_detected_by", _sorted_set(F.col("first_by")))
    )
    return conform(out, IncidentRecord)


def opened(incident_rows: DataFrame) -> DataFrame:
    """The incidents first reported in their row's hour: each incident once, in the hour it opened."""
    return incident_rows.where(F.col("opened_in_hour") == F.col("event_hour"))


def incident_summary(incident_rows: DataFrame) -> dict:
    """Opened, open and closed incidents in the window, and the opened ones (for one alert each)."""
    new = opened(incident_rows).orderBy("opened_at", "device_id").collect()
    counts = incident_rows.agg(
        F.countDistinct("incident_id").alias("active"),
        F.countDistinct(F.when(F.col("closed_at").isNotNull(), F.col("incident_id"))).alias("closed"),
    ).first()
    return {
        "incidents_opened": len(new),
        "incidents_active": int(counts["active"] or 0),
        "incidents_closed": int(counts["closed"] or 0),
        "opened": [
            {
                "incident_id": r["incident_id"],
                "device_id": r["device_id"],
                "opened_at": r["opened_at"].isoformat(),
                "peak_severity": r["peak_severity"],
                "methods": r["methods"],
                "metrics": r["metrics"],
                "first_detected_by": r["first_detected_by"],
                "readings": int(r["readings"]),
                "hour": r["event_hour"].isoformat(),
            }
            for r in new[:MAX_LISTED]
        ],
    }


def incident_checks(rows: DataFrame) -> list[quality.Evaluation]:
    return [
        quality.check_schema(
            rows,
            IncidentRecord,
            INCIDENTS.name,
            "check_anomaly_incidents_schema",
            "event_hour",
            ["incident_id", "device_id", "opened_at"],
        ),
        quality.check_unique(rows, ["incident_id"], INCIDENTS.name, "check_anomaly_incidents_unique", "event_hour"),
    ]


@asset(
    partitions_def=hourly_partitions,
    key=INCIDENTS.key,
    deps=deps(Upstream(ANOMALY_LOG)),
    backfill_policy=BackfillPolicy.single_run(),
    retry_policy=SPARK_RETRY_POLICY,
    automation_condition=FOLLOW_UPSTREAM,
    group_name="anomalies",
    kinds={"spark", "delta", "s3"},
    pool=LAKE_WRITER_POOL,
    metadata=INCIDENTS.metadata(),
    check_specs=[
        INCIDENTS.check(
            "check_anomaly_incidents_schema",
            "Columns, types and severities agree with the IncidentRecord pandera model.",
        ),
        INCIDENTS.check("check_anomaly_incidents_unique", "Each incident has one row per hour."),
    ],
)
def anomaly_incidents(context: AssetExecutionContext, spark: SparkResource, lake: DeltaLakehouse):
    """One row per incident and hour in which it was active: a stretch of a device's confirmed
    anomalous readings (gaps under 10 minutes) once it holds three of them or one of high severity,
    with when it opened (that reading) and closed (null while open),
    peak severity, methods and metrics involved, readings, and the methods that saw it first.
    Incidents open at the end of the previous hour continue. Alerts go out once per opened incident.
    """
    w = context.partition_time_window
    session = spark.session
    hours = hours_in(w)
    # The hour before holds the first evidence of an incident that opens early in this one.
    log = lake.read_window(session, ANOMALY_LOG, w.start - LOOKBACK, w.end)
    if lake.exists(session, INCIDENTS):
        carried = lake.read_window(session, INCIDENTS, w.start - HOUR, w.start)
    else:
        carried = session.createDataFrame([], struct_type(IncidentRecord))
    # Computed once: written to the table whose previous hour it reads, then summarised.
    rows = computed_once(incidents(log, carried, hours[0], hours[-1]))
    written = lake.write_window(rows, INCIDENTS, w)
    info = incident_summary(rows)
    yield MaterializeResult(
        metadata=table_metadata(
            written,
            IncidentRecord,
            **{
                "incidents_opened": info["incidents_opened"],
                "incidents_active": info["incidents_active"],
                "incidents_closed": info["incidents_closed"],
                "opened_incidents": MetadataValue.json(info["opened"]),
            },
        )
    )
    yield from quality.report(
        context,
        session,
        lake,
        incident_checks(lake.read_window(session, INCIDENTS, w.start, w.end)),
    )
