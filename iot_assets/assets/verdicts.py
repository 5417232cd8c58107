"""What the anomaly group decides, as tables: the anomaly log's rows and the incidents' states.

Declared apart from the assets that write them because they are read back upstream: the models
and the z-score baseline of an hour leave out the abnormal spans on record for the hours before it
(`recorded_abnormal_spans`), so a sustained fault is never learned as the new normal.
"""

from datetime import datetime

import pandera.pyspark as pa
import pyspark.sql.types as T
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from iot_assets.lib.tables import Table
from iot_assets.resources.lakehouse import DeltaLakehouse

METHODS = ("threshold", "zscore", "kmeans", "shift")
SEVERITIES = ("low", "medium", "high", "critical")


class AnomalyRecord(pa.DataFrameModel):
    """One anomalous reading, metric and method."""

    device_id: T.StringType() = pa.Field(nullable=False)
    event_time: T.TimestampType() = pa.Field(nullable=False)
    metric: T.StringType() = pa.Field(nullable=False)
    value: T.DoubleType() = pa.Field(nullable=True)
    method: T.StringType() = pa.Field(nullable=False, isin=list(METHODS))
    score: T.DoubleType() = pa.Field(nullable=False, description="value, |z|, or centroid distance")
    limit: T.DoubleType() = pa.Field(nullable=False, description="the limit the score crossed")
    severity: T.StringType() = pa.Field(nullable=False, isin=list(SEVERITIES))
    model_version: T.StringType() = pa.Field(nullable=False)
    confirmed: T.BooleanType() = pa.Field(nullable=False, description="the combined verdict on this reading")
    event_hour: T.TimestampType() = pa.Field(nullable=False, description="partition")


class IncidentRecord(pa.DataFrameModel):
    """The state of one incident at the end of an hour in which it was active."""

    incident_id: T.StringType() = pa.Field(nullable=False, description="device and opening time")
    device_id: T.StringType() = pa.Field(nullable=False)
    opened_at: T.TimestampType() = pa.Field(
        nullable=False, description="the confirmed reading at which its evidence persisted (it opened)"
    )
    closed_at: T.TimestampType() = pa.Field(nullable=True, description="its last confirmed reading; null while open")
    last_flag_at: T.TimestampType() = pa.Field(nullable=False, description="its latest confirmed reading so far")
    peak_severity: T.StringType() = pa.Field(nullable=False, isin=list(SEVERITIES))
    methods: T.StringType() = pa.Field(nullable=False, description="methods that flagged it, comma-separated")
    metrics: T.StringType() = pa.Field(nullable=False, description="metrics flagged, comma-separated")
    first_detected_by: T.StringType() = pa.Field(nullable=False, description="methods flagging its first reading")
    readings: T.LongType() = pa.Field(nullable=False, ge=1, description="confirmed readings so far")
    opened_in_hour: T.TimestampType() = pa.Field(nullable=False, description="the hour whose run first reported it")
    event_hour: T.TimestampType() = pa.Field(nullable=False, description="partition: the hour this state is for")


ANOMALY_LOG = Table("anomaly_log", AnomalyRecord, "event_hour")
INCIDENTS = Table("anomaly_incidents", IncidentRecord, "event_hour")


def abnormal_spans(confirmed: DataFrame, incident_rows: DataFrame) -> DataFrame:
    """(device_id, span_start, span_end): each confirmed reading, and each incident from its opening
    to its latest confirmed reading."""
    points = confirmed.select(
        "device_id",
        F.col("event_time").alias("span_start"),
        F.col("event_time").alias("span_end"),
        F.lit("reading").alias("kind"),
    )
    spans = (
        incident_rows.groupBy("device_id", "incident_id")
        .agg(F.min("opened_at").alias("span_start"), F.max("last_flag_at").alias("span_end"))
        .drop("incident_id")
        .withColumn("kind", F.lit("incident"))
    )
    return points.unionByName(spans)


def recorded_abnormal_spans(session, lake: DeltaLakehouse, start: datetime, end: datetime) -> DataFrame | None:
    """The abnormal spans on record for [start, end): confirmed readings of the anomaly log and the
    incidents; None before either table exists."""
    if not lake.exists(session, ANOMALY_LOG):
        return None
    confirmed = (
        lake.read_window(session, ANOMALY_LOG, start, end)
        .where("confirmed")
        .select("device_id", "event_time")
        .distinct()
    )
    if lake.exists(session, INCIDENTS):
        incidents = lake.read_window(session, INCIDENTS, start, end)
    else:
        incidents = session.createDataFrame(
            [], "device_id string, incident_id string, opened_at timestamp, last_flag_at timestamp"
        )
    return abnormal_spans(confirmed, incidents)
