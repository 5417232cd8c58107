"""Per-device KMeans anomaly models, trained on each device's trailing 24 hours of silver, or on a
pinned known-good range (`IOT_TRAINING_POLICY=pinned`, see `train_models`).

The model of hour H is trained on hours H-24 .. H-1 and scores hour H, so no reading is
scored by a model that saw it. Training uses normal readings only: those the anomaly log of earlier
hours confirmed, or that fall inside an incident, are left out, so a fault that lasts longer than
an hour does not become the model's normal. Verdicts are the ones on record when the model is
trained: a range run trains every hour of the range before scoring any, so inside the range only
the verdicts of hours before the range count (the hourly schedule sees every earlier hour's).

Training is one grouped Spark job (`applyInPandas` per device), not a loop of Spark jobs; each
device's KMeans is a few milliseconds of numpy.
"""

import hashlib
import json
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pandera.pyspark as pa
import pyspark.sql.types as T
from dagster import (
    AssetExecutionContext,
    BackfillPolicy,
    MaterializeResult,
    asset,
)
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from iot_assets.assets.bronze import CATALOGUE
from iot_assets.assets.registry import REGISTRY
from iot_assets.assets.silver import SILVER_READINGS
from iot_assets.assets.verdicts import recorded_abnormal_spans
from iot_assets.automation.conditions import follow_upstream_despite_gaps_in
from iot_assets.lib import catalogue, plots, quality
from iot_assets.lib.metadata import table_metadata
from iot_assets.lib.partitions import HOUR, hourly_partitions, hours_in, spark_ts
from iot_assets.lib.schemas import conform
from iot_assets.lib.tables import TRAILING_DAY, TRAILING_HOURS, Table, Upstream, deps, trailing_day
from iot_assets.resources.aws import AwsResource
from iot_assets.resources.detection import AnomalyModelConfig
from iot_assets.resources.lakehouse import LAKE_WRITER_POOL, DeltaLakehouse, computed_once, count_by
from iot_assets.resources.spark import SPARK_RETRY_POLICY, SparkResource

FEATURE_METRICS = CATALOGUE.with_role(catalogue.MODEL_FEATURE)
ROLLING_READINGS = 5
# Per reading: the feature channels, and the log of each one's spread over its last five
# readings, which collapses when a sensor freezes (a stuck sensor reads normal values).
SPREAD_FEATURES = tuple(f"{m}_log_spread" for m in FEATURE_METRICS)
FEATURES = FEATURE_METRICS + SPREAD_FEATURES
N_VALUE_FEATURES = len(FEATURE_METRICS)


def model_version(cfg: AnomalyModelConfig) -> str:
    """The models' version: a digest of the KMeans settings, the features they are trained on and,
    under the pinned policy, the pinned range (so changing the range is a new version)."""
    params = [
        cfg.k,
        cfg.min_training_rows,
        cfg.distance_percentile,
        cfg.threshold_margin,
        cfg.max_iterations,
        cfg.seed,
        FEATURES,
    ]
    if cfg.pinned_range is not None:
        params += [PINNED_POLICY, *(t.isoformat() for t in cfg.pinned_range)]
    return "kmeans-" + hashlib.sha1(json.dumps(params).encode()).hexdigest()[:8]


DISTANCE_QUANTILES = 101
# Which readings a model is trained on (recorded on every model row): the device's trailing day, or
# the pinned range (the row's training_start .. training_end), normal readings only in both.
TRAINING_POLICY = "trailing-24h-normal-only"
PINNED_POLICY = "pinned"


def training_policy(cfg: AnomalyModelConfig) -> str:
    return TRAINING_POLICY if cfg.pinned_range is None else PINNED_POLICY


MODEL_STATUSES = ("trained", "learning", "insufficient_data")


class DeviceAnomalyModel(pa.DataFrameModel):
    """One device's KMeans model for one hour, or why it has none."""

    device_id: T.StringType() = pa.Field(nullable=False)
    event_hour: T.TimestampType() = pa.Field(nullable=False, description="partition: the hour this model scores")
    model_version: T.StringType() = pa.Field(nullable=False)
    status: T.StringType() = pa.Field(
        nullable=False,
        isin=list(MODEL_STATUSES),
        description="trained; learning (less history than IOT_LEARNING_HOURS); insufficient_data",
    )
    k: T.IntegerType() = pa.Field(nullable=False, ge=0)
    centroids: T.ArrayType(T.ArrayType(T.DoubleType())) = pa.Field(nullable=True, description="in standardised space")
    feature_means: T.ArrayType(T.DoubleType()) = pa.Field(nullable=True)
    feature_stds: T.ArrayType(T.DoubleType()) = pa.Field(nullable=True)
    distance_threshold: T.DoubleType() = pa.Field(nullable=True, ge=0)
    training_rows: T.LongType() = pa.Field(nullable=False, ge=0)
    training_start: T.TimestampType() = pa.Field(nullable=False)
    training_end: T.TimestampType() = pa.Field(nullable=False)
    trained_at: T.TimestampType() = pa.Field(nullable=False)
    artifact_uri: T.StringType() = pa.Field(nullable=True)
    training_policy: T.StringType() = pa.Field(nullable=True, description="which readings it was trained on")
    excluded_rows: T.LongType() = pa.Field(
        nullable=True, ge=0, description="readings of its window left out as anomalous"
    )
    incomplete_rows: T.LongType() = pa.Field(
        nullable=True, ge=0, description="readings of its window left out for lacking a feature (a channel added since)"
    )


MODELS = Table("device_anomaly_models", DeviceAnomalyModel, "event_hour")
# A model for hour H is trained on the 24 hours of silver before H.
TRAINING_WINDOW = Upstream(SILVER_READINGS, TRAILING_DAY)


def with_features(silver: DataFrame) -> DataFrame:
    """Silver readings with the feature columns; rows without five readings of history get null spreads."""
    w = Window.partitionBy("device_id").orderBy("event_time").rowsBetween(-(ROLLING_READINGS - 1), 0)
    df = silver.withColumn("_n", F.count("*").over(w))
    for m in FEATURE_METRICS:
        spread = F.log10(F.stddev_samp(m).over(w) + F.lit(1e-3))
        df = df.withColumn(f"{m}_log_spread", F.when(F.col("_n") >= ROLLING_READINGS, spread))
    return df.drop("_n")


def with_normal_flag(featured: DataFrame, spans: DataFrame) -> DataFrame:
    """Add `normal`: false for readings inside an abnormal span of their device."""
    hit = (
        featured.select("device_id", "event_time")
        .join(
            spans,
            (featured["device_id"] == spans["device_id"])
            & (featured["event_time"] >= spans["span_start"])
            & (featured["event_time"] <= spans["span_end"]),
        )
        .select(featured["device_id"], featured["event_time"])
        .distinct()
        .withColumn("_abnormal", F.lit(True))
    )
    return (
        featured.join(hit, ["device_id", "event_time"], "left")
        .withColumn("normal", F.col("_abnormal").isNull())
        .drop("_abnormal")
    )


def kmeans(x: np.ndarray, k: int, iterations: int, seed: int) -> np.ndarray:
    """Lloyd's algorithm with k-means++ seeding; deterministic for a seed."""
    rng = np.random.default_rng(seed)
    centroids = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d = np.min(((x[:, None, :] - np.array(centroids)[None]) ** 2).sum(-1), axis=1)
        centroids.append(x[rng.choice(len(x), p=d / d.sum())] if d.sum() > 0 else x[rng.integers(len(x))])
    c = np.array(centroids)
    for _ in range(iterations):
        labels = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
        new = np.array([x[labels == j].mean(0) if np.any(labels == j) else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    return c


def standardise(x: np.ndarray, means: np.ndarray, stds: np.ndarray) -> np.ndarray:
    """Per-feature z-scores. A spread feature counts only when it collapses (a frozen sensor):
    above-normal spread is clipped to 0, since the value features already see what caused it, and
    a spike would otherwise echo in the next readings' spread."""
    z = (x - means) / stds
    z[:, N_VALUE_FEATURES:] = np.minimum(z[:, N_VALUE_FEATURES:], 0.0)
    return z


def train_device(x: np.ndarray, cfg: dict, history_hours: float | None = None) -> dict:
    """Standardise, cluster, and set the distance threshold for one device's training rows.

    `history_hours`: how far back the device's readings in the window reach, in whole hours; below
    `learning_hours` the device is still learning and gets no model."""
    learning = history_hours is not None and history_hours < cfg.get("learning_hours", 0)
    if len(x) < cfg["min_training_rows"] or learning:
        return {
            "status": "learning" if learning and len(x) else "insufficient_data",
            "k": 0,
            "centroids": None,
            "feature_means": None,
            "feature_stds": None,
            "distance_threshold": None,
            "distance_quantiles": None,
        }
    means, stds = x.mean(0), x.std(0)
    stds = np.where(stds < 1e-9, 1.0, stds)
    z = standardise(x, means, stds)
    k = min(cfg["k"], len(x))
    c = kmeans(z, k, cfg["max_iterations"], cfg["seed"])
    dist = np.sqrt(np.min(((z[:, None, :] - c[None]) ** 2).sum(-1), axis=1))
    threshold = float(np.percentile(dist, cfg["distance_percentile"]) * cfg["threshold_margin"])
    return {
        "status": "trained",
        "k": int(k),
        "centroids": c.tolist(),
        "feature_means": means.tolist(),
        "feature_stds": stds.tolist(),
        "distance_threshold": threshold,
        # The distance distribution in DISTANCE_QUANTILES points, for the chart in the UI (not stored).
        "distance_quantiles": np.quantile(dist, np.linspace(0, 1, DISTANCE_QUANTILES)).tolist(),
    }


_TRAIN_OUT = T.StructType(
    [
        T.StructField("device_id", T.StringType()),
        T.StructField("event_hour", T.TimestampType()),
        T.StructField("status", T.StringType()),
        T.StructField("k", T.IntegerType()),
        T.StructField("centroids", T.ArrayType(T.ArrayType(T.DoubleType()))),
        T.StructField("feature_means", T.ArrayType(T.DoubleType())),
        T.StructField("feature_stds", T.ArrayType(T.DoubleType())),
        T.StructField("distance_threshold", T.DoubleType()),
        T.StructField("training_rows", T.LongType()),
        T.StructField("excluded_rows", T.LongType()),
        T.StructField("incomplete_rows", T.LongType()),
        T.StructField("distance_quantiles", T.ArrayType(T.DoubleType())),
    ]
)


def train_models(
    featured: DataFrame,
    devices: DataFrame,
    model_hours: list[datetime],
    cfg: AnomalyModelConfig,
    reuse: DataFrame | None = None,
) -> DataFrame:
    """One row per (device, model hour): each model hour H trains on featured rows in [H-24h, H)
    whose `normal` column is true (all rows when there is none) and that have every feature.

    Under the pinned policy every model hour H >= pinned_end gets the one model fitted on
    [pinned_start, pinned_end), or the device's row of `reuse` (trained pinned models of the same
    version, see `reusable_models`) without refitting; an hour before pinned_end is `learning`
    (its range is not over yet, and a model must not see the readings it scores).

    A channel added to the catalogue is null in the partitions written before: those rows are left
    out (`incomplete_rows`) rather than turning the device's means, and so its model, into NaN.

    Every device in `devices` gets a row, `insufficient_data` when it has too few normal readings.
    """
    params = {
        "k": cfg.k,
        "min_training_rows": cfg.min_training_rows,
        "max_iterations": cfg.max_iterations,
        "seed": cfg.seed,
        "distance_percentile": cfg.distance_percentile,
        "threshold_margin": cfg.threshold_margin,
        "learning_hours": cfg.learning_hours,
    }
    spark = featured.sparkSession
    pinned = cfg.pinned_range
    # The hours whose window is fitted: every model hour, or under pinned only pinned_end, whose
    # trailing `span` hours are the pinned range.
    if pinned is None:
        fit_hours, span = model_hours, TRAILING_HOURS
    else:
        fit_hours, span = [pinned[1]], int((pinned[1] - pinned[0]) / HOUR)
    hours = spark.createDataFrame([(h.replace(tzinfo=None),) for h in fit_hours], "model_hour timestamp")
    # Where each device's readings begin (before the spread's warm-up readings are dropped): how
    # much history a model hour has, for the learning gate.
    first = featured.groupBy("device_id").agg(F.min("event_time").alias("first_time"))
    rows = (
        featured.where(F.col(SPREAD_FEATURES[0]).isNotNull())
        .join(first, "device_id")
        .join(
            F.broadcast(hours),
            (F.col("event_time") >= F.col("model_hour") - F.expr(f"INTERVAL {span} HOURS"))
            & (F.col("event_time") < F.col("model_hour")),
        )
        .select(
            "device_id",
            "model_hour",
            "first_time",
            "event_time",
            *FEATURES,
            (F.col("normal") if "normal" in featured.columns else F.lit(True)).alias("normal"),
        )
    )
    if reuse is not None:
        rows = rows.join(reuse.select("device_id"), "device_id", "left_anti")
    devices = devices.select("device_id").distinct()

    def fit(pdf: pd.DataFrame) -> pd.DataFrame:
        # Spark hands a group's rows over in no set order; sorted, the seeded fit is reproducible.
        pdf = pdf.sort_values("event_time", kind="stable").reset_index(drop=True)
        normal = pdf["normal"].to_numpy(dtype=bool)
        complete = pdf[list(FEATURES)].notna().all(axis=1).to_numpy()
        x = pdf.loc[normal & complete, list(FEATURES)].to_numpy(dtype=float)
        model_hour = pd.Timestamp(pdf["model_hour"].iloc[0])
        first_hour = max(pd.Timestamp(pdf["first_time"].iloc[0]).floor("h"), model_hour - pd.Timedelta(hours=span))
        history = (model_hour - first_hour) / pd.Timedelta(hours=1)
        out = train_device(x, params, history)
        return pd.DataFrame(
            [
                {
                    "device_id": pdf["device_id"].iloc[0],
                    "event_hour": pdf["model_hour"].iloc[0],
                    **out,
                    "training_rows": len(x),
                    "excluded_rows": int((~normal).sum()),
                    "incomplete_rows": int((normal & ~complete).sum()),
                }
            ]
        )

    trained = rows.groupBy("device_id", "model_hour").applyInPandas(fit, schema=_TRAIN_OUT)
    # Devices with no training rows at all for an hour still get a row saying so. They are found
    # from the input rows, not from `trained`, which would run every fit a second time.
    missing = devices.crossJoin(F.broadcast(hours)).join(
        rows.select("device_id", "model_hour").distinct(), ["device_id", "model_hour"], "left_anti"
    )
    if reuse is not None:
        missing = missing.join(reuse.select("device_id"), "device_id", "left_anti")
    missing = missing.select("device_id", F.col("model_hour").alias("event_hour"), *_no_model("insufficient_data"))
    fitted = trained.unionByName(missing, allowMissingColumns=True)
    if pinned is not None:
        fitted = _pinned_hours(fitted, devices, model_hours, pinned, reuse)
    out = fitted.withColumn(
        "model_version", F.concat(F.lit(model_version(cfg) + "@"), F.date_format("event_hour", "yyyy-MM-dd'T'HH"))
    )
    if pinned is None:
        out = out.withColumn("training_start", F.col("event_hour") - F.expr(f"INTERVAL {TRAILING_HOURS} HOURS"))
        out = out.withColumn("training_end", F.col("event_hour"))
    else:
        out = out.withColumn("training_start", F.lit(pinned[0].replace(tzinfo=None)).cast("timestamp"))
        out = out.withColumn("training_end", F.lit(pinned[1].replace(tzinfo=None)).cast("timestamp"))
    if "trained_at" not in out.columns:
        out = out.withColumn("trained_at", F.lit(None).cast("timestamp"))
    # A reused model keeps the time it was trained at.
    return out.withColumn("training_policy", F.lit(training_policy(cfg))).withColumn(
        "trained_at", F.coalesce("trained_at", F.current_timestamp())
    )


def _no_model(status: str) -> list:
    """The columns of a row without a model."""
    return [
        F.lit(status).alias("status"),
        F.lit(0).alias("k"),
        F.lit(None).cast("array<array<double>>").alias("centroids"),
        F.lit(None).cast("array<double>").alias("feature_means"),
        F.lit(None).cast("array<double>").alias("feature_stds"),
        F.lit(None).cast("double").alias("distance_threshold"),
        F.lit(0).cast("long").alias("training_rows"),
        F.lit(0).cast("long").alias("excluded_rows"),
        F.lit(0).cast("long").alias("incomplete_rows"),
    ]


def _pinned_hours(
    fitted: DataFrame,
    devices: DataFrame,
    model_hours: list[datetime],
    pinned: tuple[datetime, datetime],
    reuse: DataFrame | None,
) -> DataFrame:
    """The pinned models (fitted, or reused) repeated for every model hour from pinned_end on, and
    `learning` rows for the hours before it."""
    spark = fitted.sparkSession
    hours, end = [h.replace(tzinfo=None) for h in model_hours], pinned[1].replace(tzinfo=None)
    after, before = [h for h in hours if h >= end], [h for h in hours if h < end]
    models = fitted.drop("event_hour")
    if reuse is not None:
        # Only the devices registered now: a stored model of a device since removed is not copied.
        models = models.unionByName(reuse.join(devices, "device_id", "left_semi"), allowMissingColumns=True)
    out = models.crossJoin(F.broadcast(spark.createDataFrame([(h,) for h in after], "event_hour timestamp")))
    if before:
        waiting = devices.crossJoin(F.broadcast(spark.createDataFrame([(h,) for h in before], "event_hour timestamp")))
        learning = waiting.select("device_id", "event_hour", *_no_model("learning"))
        out = out.unionByName(learning, allowMissingColumns=True)
    return out


def reusable_models(models: DataFrame, cfg: AnomalyModelConfig) -> DataFrame:
    """One stored trained model per device of the pinned range and version `cfg` gives (from the
    models table), with the columns `train_models` copies instead of refitting."""
    start, end = (t.replace(tzinfo=None) for t in cfg.pinned_range)
    stored = models.where(
        (F.col("status") == "trained")
        & (F.col("training_policy") == PINNED_POLICY)
        & F.col("model_version").startswith(model_version(cfg) + "@")
        & (F.col("training_start") == F.lit(start))
        & (F.col("training_end") == F.lit(end))
    )
    kept = [
        "status",
        "k",
        "centroids",
        "feature_means",
        "feature_stds",
        "distance_threshold",
        "training_rows",
        "excluded_rows",
        "incomplete_rows",
        "trained_at",
    ]
    first = stored.groupBy("device_id").agg(F.min_by(F.struct(*kept), F.col("event_hour")).alias("_m"))
    return first.select("device_id", *[F.col(f"_m.{c}").alias(c) for c in kept])


@asset(
    partitions_def=hourly_partitions,
    key=MODELS.key,
    deps=deps(TRAINING_WINDOW, Upstream(REGISTRY)),
    backfill_policy=BackfillPolicy.single_run(),
    retry_policy=SPARK_RETRY_POLICY,
    automation_condition=follow_upstream_despite_gaps_in(SILVER_READINGS.key, new_hour_waits=True),
    # In an hour's run (hour_end_job) the hour's gold is written before its models are trained.
    op_tags={"dagster/priority": "-1"},
    group_name="anomalies",
    kinds={"spark", "delta", "s3"},
    pool=LAKE_WRITER_POOL,
    metadata=MODELS.metadata(),
    check_specs=[
        MODELS.check(
            "check_models_schema",
            "Columns, types and statuses agree with the DeviceAnomalyModel pandera model.",
        ),
        MODELS.check(
            "check_models_cover_registry",
            "Every registered device has exactly one model row (trained, learning or insufficient_data) per hour.",
        ),
    ],
)
def device_anomaly_models(
    context: AssetExecutionContext,
    spark: SparkResource,
    lake: DeltaLakehouse,
    anomaly_config: AnomalyModelConfig,
    aws: AwsResource,
):
    """One KMeans model per device for each hour, trained on the device's previous 24 hours of silver,
    or under the pinned policy (IOT_TRAINING_POLICY=pinned) on its pinned known-good range, trained
    once and copied to every later hour.

    Devices with too little data are recorded as `insufficient_data`, and devices with less than
    `learning_hours` of history as `learning` (no model is used for them). Each hour's models are also
    written to S3 as a versioned JSON artefact.
    """
    began = time.monotonic()
    window = context.partition_time_window
    hours = hours_in(window)
    session = spark.session
    pinned = anomaly_config.pinned_range
    if pinned is None:
        silver = lake.read_upstream(session, TRAINING_WINDOW, window)
    else:  # the pinned range whatever the hour, outside the declared trailing-day edge
        silver = lake.read_window(session, SILVER_READINGS, *pinned)
    registry = lake.read(session, REGISTRY)
    spans = recorded_abnormal_spans(session, lake, *(pinned or trailing_day(window)))
    featured = with_features(silver) if spans is None else with_normal_flag(with_features(silver), spans)
    reuse = None
    if pinned and lake.exists(session, MODELS):
        reuse = reusable_models(lake.read(session, MODELS), anomaly_config)
    # Computed once: under the pinned policy it reads the models it is written over.
    models = computed_once(train_models(featured, registry, hours, anomaly_config, reuse))
    sums = models.agg(F.sum("excluded_rows"), F.sum("incomplete_rows")).first()
    excluded, incomplete = int(sums[0] or 0), int(sums[1] or 0)
    artifacts = _write_artifacts(models, hours, lake.bucket, model_version(anomaly_config), aws)
    with_uri = models.join(
        F.broadcast(session.createDataFrame(list(artifacts.items()), "event_hour timestamp, artifact_uri string")),
        "event_hour",
        "left",
    )
    written = lake.write_window(conform(with_uri, DeviceAnomalyModel), MODELS, window)
    status = count_by(models, "status")
    distances = distance_frame(models, hours[-1])
    chart = plots.distance_chart(distances, f"models for {hours[-1]:%Y-%m-%d %H:00} UTC: training distances")
    yield MaterializeResult(
        metadata=table_metadata(
            written,
            DeviceAnomalyModel,
            models_by_status=status,
            # Plain numbers (the UI shows them inline): devices with a model, and devices still learning.
            devices_trained=int(status.get("trained", 0)),
            devices_learning=int(status.get("learning", 0)),
            model_version=model_version(anomaly_config),
            training_policy=training_policy(anomaly_config),
            **({"pinned_start": pinned[0].isoformat(), "pinned_end": pinned[1].isoformat()} if pinned else {}),
            learning_hours=anomaly_config.learning_hours,
            readings_excluded_from_training=excluded,
            readings_lacking_features=incomplete,
            training_seconds=round(time.monotonic() - began, 2),
            training_distance_chart=plots.markdown_image(chart, "training distance distribution with threshold"),
        )
    )
    devices = registry.select("device_id").distinct().count()
    yield from quality.report(
        context,
        session,
        lake,
        model_checks(lake.read_window(session, MODELS, window.start, window.end), devices, hours),
    )


def distance_frame(models: DataFrame, hour: datetime) -> pd.DataFrame:
    """device_id, distance, threshold: the training-distance quantiles of the hour's trained models."""
    return (
        models.where(f"status = 'trained' AND event_hour = TIMESTAMP'{spark_ts(hour)}'")
        .select(
            "device_id",
            F.col("distance_threshold").alias("threshold"),
            F.explode("distance_quantiles").alias("distance"),
        )
        .toPandas()
    )


def model_checks(models: DataFrame, devices: int, hours: list[datetime]) -> list[quality.Evaluation]:
    schema = quality.check_schema(
        models,
        DeviceAnomalyModel,
        MODELS.name,
        "check_models_schema",
        "event_hour",
        ["device_id", "event_hour", "status"],
    )
    return [
        schema,
        quality.check_reconciles(
            {h: devices for h in hours},
            {"models": schema.rows_by_partition()},
            MODELS.name,
            "check_models_cover_registry",
            "registered devices = model rows, per hour",
        ),
    ]


def _write_artifacts(models: DataFrame, hours: list[datetime], bucket: str, tag: str, aws: AwsResource) -> dict:
    """Write each hour's trained models as one JSON artefact; returns {hour: s3 uri}."""
    by_hour: dict[datetime, list] = {h.replace(tzinfo=None): [] for h in hours}
    for r in models.where("status = 'trained'").toLocalIterator():
        by_hour.setdefault(r["event_hour"], []).append(
            {
                "device_id": r["device_id"],
                "k": r["k"],
                "centroids": r["centroids"],
                "feature_means": r["feature_means"],
                "feature_stds": r["feature_stds"],
                "distance_threshold": r["distance_threshold"],
                "features": list(FEATURES),
            }
        )
    out = {}
    for hour, items in by_hour.items():
        key = f"models/{tag}/dt={hour:%Y-%m-%d}/hour={hour:%H}/models.json"
        aws.s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=json.dumps({"version": tag, "hour": hour.replace(tzinfo=UTC).isoformat(), "models": items}).encode(),
        )
        out[hour] = f"s3://{bucket}/{key}"
    return out
