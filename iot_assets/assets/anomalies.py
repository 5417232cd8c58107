"""The anomaly log: one row per anomalous reading, metric and method.

Three methods, each configurable and versioned:
- `threshold`: fixed limits from configuration (defaults from the seed pipelines);
- `zscore`: |z| above 3 (by default) and beyond the range of readings in the device's *trailing*
  24-hour baseline from gold,
  never the hour's own statistics, so a large anomaly cannot hide itself, and without the hours
  found abnormal (incidents, confirmed readings), so a long fault does not become the baseline;
- `kmeans`: distance to the nearest centroid of the device's model trained on the previous 24 hours;
- `shift`: the median of a metric over the last 10 minutes of readings more than 3 within-hour
  sigmas beyond the range of the same trailing baseline's hourly means: a sustained level shift or
  drift, flagged for as long as it lasts, since the baseline leaves out the hours already found
  abnormal.

Under the pinned policy (`IOT_TRAINING_POLICY=pinned`) the models and the z-score/shift baseline
come from the pinned known-good range instead of the trailing day (`trailing_baseline`'s `pinned`).
"""

from datetime import datetime, timedelta
from functools import reduce

import pandas as pd
import pyspark.sql.types as T
from dagster import (
    AssetExecutionContext,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from iot_assets.assets.bronze import CATALOGUE
from iot_assets.assets.gold import HOURLY_STATS, hourly_levels, level_columns
from iot_assets.assets.models import FEATURES, MODELS, N_VALUE_FEATURES, SPREAD_FEATURES, with_features
from iot_assets.assets.silver import SILVER_READINGS
from iot_assets.assets.verdicts import ANOMALY_LOG, METHODS, SEVERITIES, AnomalyRecord, recorded_abnormal_spans
from iot_assets.automation.conditions import follow_upstream_despite_gaps_in
from iot_assets.lib import catalogue, plots, quality
from iot_assets.lib.metadata import table_metadata
from iot_assets.lib.partitions import HOUR, hourly_partitions, hours_in
from iot_assets.lib.schemas import conform
from iot_assets.lib.tables import TRAILING_DAY, TRAILING_HOURS, Upstream, deps, trailing_day
from iot_assets.resources.detection import AnomalyModelConfig, ThresholdRule, ThresholdRules
from iot_assets.resources.lakehouse import LAKE_WRITER_POOL, DeltaLakehouse, computed_once
from iot_assets.resources.quality_config import DataQualityConfig
from iot_assets.resources.spark import SPARK_RETRY_POLICY, SparkResource

# Severity from how far past its limit a score goes, as a fraction of the limit.
SEVERITY_BANDS = (0.25, 1.0, 3.0)
ZSCORE_METRICS = CATALOGUE.with_role(catalogue.ZSCORE)


def severity(excess: Column) -> Column:
    low, medium, high = SEVERITY_BANDS
    return F.when(excess < low, "low").when(excess < medium, "medium").when(excess < high, "high").otherwise("critical")


def _hits(readings: DataFrame, found: list[tuple[Column, dict[str, Column]]]) -> DataFrame:
    """One row per (reading, true condition), with that condition's columns, in one pass over the
    readings: a union of one filter per condition would read them once per condition."""
    if not found:  # e.g. no threshold rules for this channel
        return readings.where(F.lit(False)).select(
            "device_id",
            "event_time",
            "event_hour",
            F.lit(None).cast("string").alias("metric"),
            *[F.lit(None).cast("double").alias(c) for c in ("value", "score", "limit")],
            F.lit(None).cast("string").alias("severity"),
        )
    hits = [F.when(cond, F.struct(*[c.alias(name) for name, c in cols.items()])) for cond, cols in found]
    return readings.select(
        "device_id", "event_time", "event_hour", F.explode(F.array_compact(F.array(*hits))).alias("_hit")
    ).select("device_id", "event_time", "event_hour", "_hit.*")


def threshold_anomalies(readings: DataFrame, rules: list[ThresholdRule], version: str) -> DataFrame:
    found = []
    for r in rules:
        crossed = F.col(r.metric) > r.limit if r.op == ">" else F.col(r.metric) < r.limit
        excess = F.abs(F.col(r.metric) - F.lit(r.limit)) / F.lit(max(abs(r.limit), 1.0))
        found.append(
            (
                crossed,
                {
                    "metric": F.lit(r.metric),
                    "value": F.col(r.metric).cast("double"),
                    "score": F.col(r.metric).cast("double"),
                    "limit": F.lit(float(r.limit)),
                    "severity": severity(excess),
                },
            )
        )
    return _hits(readings, found).withColumn("method", F.lit("threshold")).withColumn("model_version", F.lit(version))


# An hour whose within-hour variance exceeds this multiple of the day's median is left out.
BASELINE_OUTLIER_VARIANCE = 4.0


# A device-hour of which at least this share was abnormal (inside an incident, or confirmed
# readings) is left out of the z-score baseline.
ABNORMAL_HOUR_SHARE = 0.2


def abnormal_hours(spans: DataFrame, hourly_stats: DataFrame, share: float = ABNORMAL_HOUR_SHARE) -> DataFrame:
    """(device_id, event_hour) of the hours at least `share` abnormal: by time inside incidents, or
    by confirmed readings out of the hour's readings (see models.abnormal_spans)."""
    hour = F.col("event_hour")
    parts = spans.withColumn(
        "event_hour",
        F.explode(
            F.sequence(F.date_trunc("hour", "span_start"), F.date_trunc("hour", "span_end"), F.expr("INTERVAL 1 HOUR"))
        ),
    ).withColumn(
        "_s",
        F.unix_seconds(F.least("span_end", hour + F.expr("INTERVAL 1 HOUR")))
        - F.unix_seconds(F.greatest("span_start", hour)),
    )
    per = parts.groupBy("device_id", "event_hour").agg(
        F.sum(F.when(F.col("kind") == "incident", F.col("_s")).otherwise(0)).alias("_covered"),
        F.sum(F.when(F.col("kind") == "reading", 1).otherwise(0)).alias("_points"),
    )
    return (
        per.join(hourly_stats.select("device_id", "event_hour", "reading_count"), ["device_id", "event_hour"], "left")
        .where(
            (F.col("_covered") >= share * 3600)
            | (F.col("_points") >= share * F.coalesce(F.col("reading_count"), F.lit(0)))
        )
        .select("device_id", "event_hour")
    )


def with_levels(stats: DataFrame, silver: DataFrame) -> DataFrame:
    """Gold's hourly stats with each hour's levels (`median_`, `spread_`): gold's own, computed as
    gold wrote the hour, or, for a device-hour gold wrote before it kept them (every level null),
    from that hour's silver readings; only those hours of `silver` are read."""
    columns = level_columns()
    stats = stats.select("*", *[F.lit(None).cast("double").alias(c) for c in columns if c not in stats.columns])
    lacking = reduce(lambda a, b: a & b, [F.col(c).isNull() for c in columns])
    # As epoch seconds: no round trip through the driver's local time.
    hour = F.unix_seconds("event_hour")
    hours = [r[0] for r in stats.where(lacking).select(hour).distinct().collect()]
    if not hours:
        return stats
    keys = ["device_id", "event_hour"]
    again = hourly_levels(silver.where(hour.isin(hours))).select(
        *keys, *[F.col(c).alias(f"_again_{c}") for c in columns]
    )
    return (
        stats.join(again, keys, "left")
        .withColumns({c: F.coalesce(c, f"_again_{c}") for c in columns})
        .drop(*[f"_again_{c}" for c in columns])
    )


def trailing_baseline(
    hourly_stats: DataFrame,
    hours: list,
    excluded: DataFrame | None = None,
    pinned: tuple[datetime, datetime] | None = None,
) -> DataFrame:
    """Per device and target hour H, a trimmed baseline of each metric over the gold hours [H-24h, H),
    or with `pinned` (start, end) over the pinned range's hours for every H >= end (an H before the
    end gets no baseline, as a learning device).

    For each metric, hours whose within-hour variance exceeds BASELINE_OUTLIER_VARIANCE times the
    median hour's are left out (a spike, level shift, drift or dropout inflates it far more); the
    rest give the mean, and the variance as mean within-hour variance + variance of the hourly
    means. `lo_`/`hi_` are the lowest and highest readings of all those hours: the range the
    device's normal day reached. `lo_level_`/`hi_level_` are the lowest and highest hourly medians
    of the kept hours, and `noise_` the root mean square of their robust within-hour sigmas (the
    `median_`/`spread_` columns of `hourly_levels`): the shift test's band, the level the normal
    day moved through and the noise around it, robust to a busy signal's bursts. Earlier anomalies
    therefore cannot inflate the baseline and hide the next one, while the daily cycle and load
    swings still count in full (trimming hours by their mean would cut off each day's warmest
    hours and flag them the next day). The hour itself never contributes to its own baseline, nor
    do the `excluded` (device_id, event_hour) hours: those found abnormal (`abnormal_hours`), so a
    sustained fault does not become the baseline.

    `history_hours`: how far back the device's reporting hours reach in the window (abnormal hours
    included) from its end (H, or the pinned end), for the learning gate (`mature`).
    """
    targets = hourly_stats.sparkSession.createDataFrame([(h.replace(tzinfo=None),) for h in hours], "target timestamp")
    keys = ["device_id", "baseline_hour"]
    if pinned is None:
        window_end = F.col("target")
        in_window = (F.col("event_hour") >= F.col("target") - F.expr("INTERVAL 24 HOURS")) & (
            F.col("event_hour") < F.col("target")
        )
    else:
        start, end = (F.lit(t.replace(tzinfo=None)).cast("timestamp") for t in pinned)
        window_end = end
        in_window = (F.col("event_hour") >= start) & (F.col("event_hour") < end) & (F.col("target") >= end)
    history = (
        hourly_stats.join(F.broadcast(targets), in_window)
        .groupBy("device_id", F.col("target").alias("baseline_hour"))
        .agg(
            ((F.unix_seconds(F.first(window_end)) - F.unix_seconds(F.min("event_hour"))) / 3600)
            .cast("int")
            .alias("history_hours")
        )
    )
    if excluded is not None:
        hourly_stats = hourly_stats.join(excluded, ["device_id", "event_hour"], "left_anti")
    rows = hourly_stats.join(F.broadcast(targets), in_window).withColumnRenamed("target", "baseline_hour")
    # Per metric, each hour's within-hour variance, and the median of those over the baseline's
    # hours. An hour without the metric (a channel added to the catalogue since) is no evidence:
    # with its variance counted as 0 it would shrink the baseline's sigma.
    by_baseline = Window.partitionBy(*keys)
    has = {m: F.col(f"avg_{m}").isNotNull() for m in ZSCORE_METRICS}
    rows = rows.select(
        "*",
        *[F.when(has[m], F.coalesce(F.col(f"stddev_{m}"), F.lit(0.0)) ** 2).alias(f"_v_{m}") for m in ZSCORE_METRICS],
    ).select("*", *[F.percentile_approx(f"_v_{m}", 0.5).over(by_baseline).alias(f"_mv_{m}") for m in ZSCORE_METRICS])
    # The hours kept for a metric's mean, sigma, levels and noise; one aggregation for every metric
    # (a join per metric cost a shuffle each).
    kept = {m: has[m] & (F.col(f"_v_{m}") <= F.col(f"_mv_{m}") * BASELINE_OUTLIER_VARIANCE) for m in ZSCORE_METRICS}

    def of_kept(m: str, column: str) -> Column:
        return F.when(kept[m], F.col(column))

    out = rows.groupBy(*keys).agg(
        F.sum("reading_count").alias("baseline_n"),
        *[F.min(f"min_{m}").alias(f"lo_{m}") for m in ZSCORE_METRICS],
        *[F.max(f"max_{m}").alias(f"hi_{m}") for m in ZSCORE_METRICS],
        *[
            agg
            for m in ZSCORE_METRICS
            for agg in (
                F.avg(of_kept(m, f"avg_{m}")).alias(f"mean_{m}"),
                F.sqrt(F.avg(of_kept(m, f"_v_{m}")) + F.coalesce(F.var_pop(of_kept(m, f"avg_{m}")), F.lit(0.0))).alias(
                    f"std_{m}"
                ),
                F.min(of_kept(m, f"median_{m}")).alias(f"lo_level_{m}"),
                F.max(of_kept(m, f"median_{m}")).alias(f"hi_level_{m}"),
                F.sqrt(F.avg(of_kept(m, f"spread_{m}") ** 2)).alias(f"noise_{m}"),
            )
        ],
    )
    return out.join(history, keys, "left").select(
        F.col("device_id"),
        F.col("baseline_hour").alias("event_hour"),
        "baseline_n",
        F.coalesce("history_hours", F.lit(0)).alias("history_hours"),
        *[c for m in ZSCORE_METRICS for c in (f"mean_{m}", f"std_{m}", f"lo_{m}", f"hi_{m}")],
        *[c for m in ZSCORE_METRICS for c in (f"lo_level_{m}", f"hi_level_{m}", f"noise_{m}")],
    )


def zscore_anomalies(
    readings: DataFrame, baseline: DataFrame, limit: float, min_readings: int, basis: str = "24h"
) -> DataFrame:
    """`basis` names the baseline in the rows' model_version (`baseline_basis`)."""
    usable = baseline.where(F.col("baseline_n") >= min_readings)
    joined = readings.join(F.broadcast(usable), ["device_id", "event_hour"])
    found = []
    for m in ZSCORE_METRICS:
        std = F.col(f"std_{m}")
        z = (F.col(m) - F.col(f"mean_{m}")) / std
        # Past `limit` sigma and beyond the trailing normal range: on a bursty signal the normal day
        # itself reaches far past 3 sigma, and a reading it already reached is no news.
        side = F.when(z > 0, F.greatest(F.col(f"mean_{m}") + std * limit, F.col(f"hi_{m}"))).otherwise(
            F.least(F.col(f"mean_{m}") - std * limit, F.col(f"lo_{m}"))
        )
        found.append(
            (
                (std > 1e-9) & (F.abs(z) > limit) & F.when(z > 0, F.col(m) > side).otherwise(F.col(m) < side),
                {
                    "metric": F.lit(m),
                    "value": F.col(m).cast("double"),
                    "score": F.abs(z).cast("double"),
                    "limit": side.cast("double"),
                    "severity": severity(F.abs(z) / limit - 1),
                },
            )
        )
    version = f"zscore-{limit:g}sigma-beyond-{basis}-range"
    return _hits(joined, found).withColumn("method", F.lit("zscore")).withColumn("model_version", F.lit(version))


# The shift test: a metric's median over this trailing window of a device's readings (at least
# SHIFT_MIN_READINGS of them) more than SHIFT_LIMIT within-hour sigmas beyond the range of the
# trailing normal day's hourly means.
SHIFT_WINDOW = timedelta(minutes=10)
SHIFT_MIN_READINGS = 5
SHIFT_LIMIT = 3.0
# ... and the reading itself at least SHIFT_LIMIT - SHIFT_READING_MARGIN sigmas beyond that range.
SHIFT_READING_MARGIN = 1.0


_ROLLED = T.StructType(
    [
        T.StructField("device_id", T.StringType()),
        T.StructField("event_time", T.TimestampType()),
        T.StructField("event_hour", T.TimestampType()),
        *[T.StructField(m, T.DoubleType()) for m in ZSCORE_METRICS],
        *[T.StructField(f"roll_{m}", T.DoubleType()) for m in ZSCORE_METRICS],
        *[T.StructField(f"n_{m}", T.LongType()) for m in ZSCORE_METRICS],
    ]
)


def rolling_medians(readings: DataFrame, window: timedelta) -> DataFrame:
    """Each reading with the median (`roll_`) and count (`n_`) of each z-score metric's values over
    the device's trailing `window`, (t - window, t] at millisecond resolution; a null value is left
    out, and the median is null when none is left.

    Per device in pandas (`applyInPandas`), whose rolling median keeps the window in a skip list:
    O(log w) a reading. Spark has no median over a window frame, and a sorted `collect_list` over a
    moving range frame collects and sorts the whole frame again for every reading: at 1 reading/s a
    10-minute frame is 600 values, and 20 devices' 84,000 readings took 190 s."""
    metrics = list(ZSCORE_METRICS)

    def roll(pdf: pd.DataFrame) -> pd.DataFrame:
        pdf = pdf.sort_values("event_time", kind="stable").reset_index(drop=True)
        values = pdf[metrics].astype("float64")
        values.index = pd.DatetimeIndex(pdf["event_time"]).floor("ms")
        frames = values.rolling(pd.Timedelta(window), closed="right", min_periods=1)
        medians, counts = frames.median(), frames.count()
        for m in metrics:
            pdf[m] = values[m].to_numpy()
            pdf[f"roll_{m}"] = medians[m].to_numpy()
            pdf[f"n_{m}"] = counts[m].to_numpy().astype("int64")
        return pdf[_ROLLED.names]

    columns = ["device_id", "event_time", "event_hour", *[F.col(m).cast("double").alias(m) for m in metrics]]
    return readings.select(*columns).groupBy("device_id").applyInPandas(roll, schema=_ROLLED)


def shift_anomalies(
    readings: DataFrame,
    baseline: DataFrame,
    min_readings: int,
    scored_from=None,
    limit: float = SHIFT_LIMIT,
    window: timedelta = SHIFT_WINDOW,
    min_window_readings: int = SHIFT_MIN_READINGS,
    basis: str = "24h",
) -> DataFrame:
    """Sustained shifts: per device and metric, the trailing `window` median of the readings against
    the band the trailing normal day's level moved through: from its lowest to its highest hourly
    median, widened by `limit` robust within-hour sigmas (`noise_`). The row's value is that window
    median, its limit the band's edge, and its score how many robust sigmas the median lies beyond
    the range of hourly medians. The reading itself must lie at least `limit` -
    SHIFT_READING_MARGIN sigmas beyond that range as well, or the half window after a shift ends
    would still be flagged.

    A level the normal day already reached is no shift, whatever the hour: a daily cycle or a slow
    load swing moves the hourly level through its range, so a test against the day's mean and
    overall sigma fires on every warm afternoon (it did, at 1.5 sigma: 96 % of its flags on the
    simulated fleet were normal readings). Medians and interquartile spreads, not means and
    standard deviations, describe the normal day, so a busy server's bursts to 100 % neither lift
    its level nor widen its noise. The window's median moves only once more than half of the
    window has shifted, so a spike or a short burst is no shift either.
    `readings` may start up to `window` before `scored_from`, so the first minutes of an hour see
    the end of the previous one."""
    usable = baseline.where(F.col("baseline_n") >= min_readings)
    # Only the devices with a usable baseline are rolled: the others cannot be tested.
    rolled = rolling_medians(readings.join(F.broadcast(usable.select("device_id").distinct()), "device_id"), window)
    if scored_from is not None:
        rolled = rolled.where(F.col("event_time") >= F.lit(scored_from))
    joined = rolled.join(F.broadcast(usable), ["device_id", "event_hour"])
    found = []
    for m in ZSCORE_METRICS:
        roll, noise = F.col(f"roll_{m}"), F.col(f"noise_{m}")
        lo, hi = F.col(f"lo_level_{m}"), F.col(f"hi_level_{m}")
        above = roll > hi
        beyond = F.when(above, roll - hi).otherwise(lo - roll) / noise
        edge = F.when(above, hi + noise * limit).otherwise(lo - noise * limit)
        # The reading itself sits at the shifted level too: when a shift ends, the window's median
        # stays shifted for half a window, over readings that are back to normal.
        here = F.when(above, F.col(m) - hi).otherwise(lo - F.col(m)) / noise
        found.append(
            (
                (noise > 1e-9)
                & (F.col(f"n_{m}") >= min_window_readings)
                & (beyond > limit)
                & (here > limit - SHIFT_READING_MARGIN),
                {
                    "metric": F.lit(m),
                    "value": roll.cast("double"),
                    "score": beyond.cast("double"),
                    "limit": edge.cast("double"),
                    "severity": severity(beyond / limit - 1),
                },
            )
        )
    version = f"shift-{limit:g}sigma-beyond-{basis}-hourly-median-range-{int(window.total_seconds() // 60)}min-median"
    return _hits(joined, found).withColumn("method", F.lit("shift")).withColumn("model_version", F.lit(version))


def kmeans_anomalies(featured: DataFrame, models: DataFrame) -> DataFrame:
    """Score each reading against its device's model; native Spark expressions, no Python UDF."""
    names = F.array(*[F.lit(f) for f in FEATURES])
    trained = models.where("status = 'trained'").select(
        "device_id", "event_hour", "centroids", "feature_means", "feature_stds", "distance_threshold", "model_version"
    )
    df = (
        featured.where(F.col(SPREAD_FEATURES[0]).isNotNull())
        .join(F.broadcast(trained), ["device_id", "event_hour"])
        .withColumn("_x", F.array(*[F.col(f) for f in FEATURES]))
        .withColumn(
            "_z",
            F.expr(
                f"transform(_x, (x, i) -> CASE WHEN i >= {N_VALUE_FEATURES} "
                "THEN least((x - feature_means[i]) / feature_stds[i], 0D) "
                "ELSE (x - feature_means[i]) / feature_stds[i] END)"
            ),
        )
        .withColumn(
            "_d",
            F.expr(
                "transform(centroids, c -> sqrt(aggregate(zip_with(_z, c, (a, b) -> (a - b) * (a - b)), 0D, "
                "(acc, v) -> acc + v)))"
            ),
        )
        .withColumn("_dist", F.array_min("_d"))
        .where(F.col("_dist") > F.col("distance_threshold"))
        .withColumn("_c", F.element_at("centroids", F.array_position("_d", F.col("_dist")).cast("int")))
        .withColumn("_gap", F.expr("transform(zip_with(_z, _c, (a, b) -> abs(a - b)), v -> v)"))
        .withColumn("_top", F.array_position("_gap", F.array_max("_gap")).cast("int"))
    )
    return df.select(
        "device_id",
        "event_time",
        "event_hour",
        F.concat(F.lit("multivariate:"), F.element_at(names, F.col("_top"))).alias("metric"),
        F.element_at("_x", F.col("_top")).alias("value"),
        F.col("_dist").alias("score"),
        F.col("distance_threshold").alias("limit"),
        severity(F.col("_dist") / F.col("distance_threshold") - 1).alias("severity"),
        F.lit("kmeans").alias("method"),
        "model_version",
    )


# A z-score flag just past the limit confirms a reading only when it persists: at least this many
# z-score flags on the same device and metric within the trailing window.
PERSISTENT_FLAGS = 5
PERSISTENCE_WINDOW = timedelta(minutes=10)


def with_verdict(found: DataFrame) -> DataFrame:
    """Add `confirmed`: the combined verdict on each reading, shared by all of its rows.

    A reading is confirmed when a threshold rule, its device's KMeans model or the shift test flags
    it, when a z-score on it is at least of medium severity (1.25x the limit: 3.75 sigma by default), or when
    its z-score flag persists (PERSISTENT_FLAGS flags of that metric within PERSISTENCE_WINDOW).
    A lone z-score just past 3 sigma stays in the log, unconfirmed: on a signal whose load swings,
    that is where the normal signal's own tails lie (about 3 readings in 1,000 per metric for a
    Gaussian), while a real fault that is only just past the limit lasts.
    """
    is_z = F.col("method") == "zscore"
    trailing = (
        Window.partitionBy("device_id", "metric")
        .orderBy(F.unix_millis("event_time"))
        .rangeBetween(-int(PERSISTENCE_WINDOW.total_seconds() * 1000) + 1, 0)
    )
    persistent = F.sum(F.when(is_z, 1).otherwise(0)).over(trailing) >= PERSISTENT_FLAGS
    strong = ~is_z | (F.col("severity") != "low") | persistent
    reading = Window.partitionBy("device_id", "event_time")
    return found.withColumn("_strong", strong).withColumn("confirmed", F.max("_strong").over(reading)).drop("_strong")


def mature(baseline: DataFrame, cfg: AnomalyModelConfig) -> DataFrame:
    """The baselines the z-score and shift tests may use: enough readings, and a device that has
    reported for at least `learning_hours` (until then it is learning, and not scored by them).
    Under the pinned policy `history_hours` counts back from the pinned range's end, so a device is
    mature when the range holds at least `learning_hours` of its history."""
    return baseline.where(
        (F.col("baseline_n") >= cfg.min_baseline_readings) & (F.col("history_hours") >= cfg.learning_hours)
    )


def baseline_basis(cfg: AnomalyModelConfig) -> str:
    """What the z-score and shift baselines are taken from, for their model_version: `24h` (trailing),
    or `pinned-<start>-<end>`."""
    if cfg.pinned_range is None:
        return "24h"
    start, end = cfg.pinned_range
    return f"pinned-{start:%Y%m%dT%H}-{end:%Y%m%dT%H}"


def detect(
    readings: DataFrame,
    featured: DataFrame,
    baseline: DataFrame,
    models: DataFrame,
    rules: ThresholdRules,
    cfg: AnomalyModelConfig,
    history: DataFrame | None = None,
    scored_from=None,
) -> DataFrame:
    """Every method's anomalies for the readings, with the combined verdict, conformed to the log schema.
    `history`: the readings with the minutes before `scored_from`, for the shift test's trailing window."""
    baseline = mature(baseline, cfg)
    found = (
        threshold_anomalies(readings, rules.parsed, rules.version)
        .unionByName(
            zscore_anomalies(readings, baseline, cfg.zscore_limit, cfg.min_baseline_readings, baseline_basis(cfg))
        )
        .unionByName(kmeans_anomalies(featured, models))
        .unionByName(
            shift_anomalies(
                readings if history is None else history,
                baseline,
                cfg.min_baseline_readings,
                scored_from,
                basis=baseline_basis(cfg),
            )
        )
    )
    return conform(with_verdict(found), AnomalyRecord)


def summary(log: DataFrame, top: int = 5) -> dict:
    """Counts by method and severity, confirmed readings, and the most anomalous devices, as plain
    Python types. Devices rank by their worst confirmed severity, then by confirmed readings."""
    rows = log.groupBy("method", "severity").count().collect()
    by_method = {m: 0 for m in METHODS}
    by_severity = {s: 0 for s in SEVERITIES}
    for r in rows:
        by_method[r["method"]] += int(r["count"])
        by_severity[r["severity"]] += int(r["count"])
    confirmed = log.where("confirmed")
    readings = confirmed.select("device_id", "event_time").distinct().count()
    rank = (
        F.when(F.col("severity") == "critical", 4)
        .when(F.col("severity") == "high", 3)
        .when(F.col("severity") == "medium", 2)
        .otherwise(1)
    )
    devices = (
        confirmed.groupBy("device_id")
        .agg(
            F.countDistinct("event_time").alias("anomalies"),
            F.max(rank).alias("_r"),
            F.collect_set("method").alias("methods"),
        )
        .orderBy(F.desc("_r"), F.desc("anomalies"), "device_id")
        .limit(top)
        .collect()
    )
    return {
        "by_method": by_method,
        "by_severity": by_severity,
        "confirmed_readings": readings,
        "top_devices": [
            {
                "device_id": d["device_id"],
                "anomalies": int(d["anomalies"]),
                "max_severity": SEVERITIES[int(d["_r"]) - 1],
                "methods": sorted(d["methods"]),
            }
            for d in devices
        ],
    }


# An hour is scored against the z-score baseline of the 24 hours before it.
BASELINE_WINDOW = Upstream(HOURLY_STATS, TRAILING_DAY)


@asset(
    partitions_def=hourly_partitions,
    deps=deps(Upstream(SILVER_READINGS), Upstream(MODELS), BASELINE_WINDOW),
    backfill_policy=BackfillPolicy.single_run(),
    retry_policy=SPARK_RETRY_POLICY,
    automation_condition=follow_upstream_despite_gaps_in(HOURLY_STATS.key),
    group_name="anomalies",
    kinds={"spark", "delta", "s3"},
    pool=LAKE_WRITER_POOL,
    key=ANOMALY_LOG.key,
    metadata=ANOMALY_LOG.metadata(),
    check_specs=[
        ANOMALY_LOG.check(
            "check_anomaly_log_schema",
            "Columns, types, methods and severities agree with the AnomalyRecord pandera model.",
        ),
        ANOMALY_LOG.check(
            "check_anomaly_rate_spike",
            "The share of readings confirmed anomalous stays under IOT_ANOMALY_SPIKE_FACTOR times the "
            "trailing 24 hours' share (at least IOT_ANOMALY_SPIKE_FLOOR) (WARN).",
        ),
    ],
)
def anomaly_log(
    context: AssetExecutionContext,
    spark: SparkResource,
    lake: DeltaLakehouse,
    threshold_rules: ThresholdRules,
    anomaly_config: AnomalyModelConfig,
    quality_config: DataQualityConfig,
):
    """One row per anomalous reading, metric and method (threshold, z-score, KMeans), with score,
    the limit it crossed, severity and model version. Re-materialising an hour replaces its rows.
    """
    w = context.partition_time_window
    session = spark.session
    # Silver from the trailing day on: the hours of gold's baseline (the declared edge) give the
    # shift test's robust levels, and the 10 minutes before the window its first median.
    day_on = lake.read_window(session, SILVER_READINGS, trailing_day(w)[0], w.end)
    silver = day_on.where(F.col("event_time") >= F.lit(w.start - HOUR / 6))
    featured = with_features(silver).where(F.col("event_time") >= F.lit(w.start))
    readings = silver.where(F.col("event_time") >= F.lit(w.start))
    models = lake.read_window(session, MODELS, w.start, w.end)
    stats = lake.read_upstream(session, BASELINE_WINDOW, w)
    pinned = anomaly_config.pinned_range
    # Under pinned, the baseline comes from the pinned range's gold and silver hours (outside the
    # declared edge); the trailing day's stats still serve the rate check below.
    if pinned is None:
        base_stats, base_silver = stats, day_on.where(F.col("event_time") < F.lit(w.end - HOUR))
    else:
        base_stats = lake.read_window(session, HOURLY_STATS, *pinned)
        base_silver = lake.read_window(session, SILVER_READINGS, *pinned)
    spans = recorded_abnormal_spans(session, lake, *(pinned or trailing_day(w)))
    excluded = None if spans is None else abnormal_hours(spans, base_stats)
    levelled = with_levels(base_stats, base_silver)
    # Computed once each: the log is written to the table its spans read, and then summarised.
    baseline = computed_once(trailing_baseline(levelled, hours_in(w), excluded, pinned))
    log = computed_once(
        detect(
            readings, featured, baseline, models, threshold_rules, anomaly_config, history=silver, scored_from=w.start
        )
    )
    written = lake.write_window(log, ANOMALY_LOG, w)
    info = summary(log)
    chart = top_devices_chart(
        readings,
        log,
        [d["device_id"] for d in info["top_devices"][:CHART_DEVICES]],
        threshold_rules,
        f"{w.start:%Y-%m-%d %H:%M}-{w.end:%H:%M} UTC",
    )
    scored = mature(baseline, anomaly_config)
    # Readings per device and hour, from one pass over silver: the devices without a z-score
    # baseline, and the hour's readings for the rate check below.
    per_device = [
        (r["device_id"], quality.partition_value(r["event_hour"]), int(r["count"]), r["scored"] is not None)
        for r in readings.groupBy("device_id", "event_hour")
        .count()
        .join(
            scored.select("device_id", "event_hour", F.lit(True).alias("scored")),
            ["device_id", "event_hour"],
            "left",
        )
        .collect()
    ]
    no_baseline = sorted({d for d, _, _, has in per_device if not has})
    readings_by_hour = {}
    for _, hour, n, _ in per_device:
        readings_by_hour[hour] = readings_by_hour.get(hour, 0) + n
    yield MaterializeResult(
        metadata=table_metadata(
            written,
            AnomalyRecord,
            **{
                "top_devices_chart": plots.markdown_image(chart, "most anomalous devices, anomalies marked by method"),
                "anomaly_summary": MetadataValue.json(info),
                "anomalies_by_method": MetadataValue.json(info["by_method"]),
                "anomalies_by_severity": MetadataValue.json(info["by_severity"]),
                "critical_anomalies": info["by_severity"]["critical"],
                "confirmed_anomalous_readings": info["confirmed_readings"],
                # Still learning (less than learning_hours of history) or too few baseline readings:
                # not scored by the z-score and shift tests this hour.
                "devices_learning": MetadataValue.json(no_baseline),
                "learning_hours": anomaly_config.learning_hours,
                "baseline_basis": baseline_basis(anomaly_config),
                "threshold_rules_version": threshold_rules.version,
            },
        )
    )
    trailing = (lake.read_window(session, ANOMALY_LOG, *trailing_day(w)), stats)
    # The checks judge the frame that was written, held to the row count of its commit.
    schema, spike = anomaly_checks(log, readings_by_hour, *trailing, quality_config)
    yield from quality.report(context, session, lake, [quality.as_committed(schema, written.rows), spike])


# The chart shows the readings of this many of the most anomalous devices.
CHART_DEVICES = 3


def top_devices_chart(
    readings: DataFrame, log: DataFrame, devices: list[str], rules: ThresholdRules, when: str
) -> bytes:
    """The devices' readings of the window with every flag on them marked by method (see plots)."""
    pick = F.col("device_id").isin(devices)
    metrics = [m for m in dict.fromkeys([*ZSCORE_METRICS, *(r.metric for r in rules.parsed)]) if m in readings.columns]
    return plots.anomaly_chart(
        readings.where(pick).select("device_id", "event_time", *metrics).toPandas(),
        log.where(pick).select("device_id", "event_time", "metric", "method").toPandas(),
        devices,
        f"anomaly_log {when}: most anomalous devices",
    )


def confirmed_readings(log: DataFrame) -> DataFrame:
    return log.where("confirmed").select("device_id", "event_time", "event_hour").distinct()


def rate_spike_by_hour(
    confirmed: dict,
    readings: dict,
    hours: list,
    cfg: DataQualityConfig,
    trailing: timedelta = HOUR * TRAILING_HOURS,
) -> quality.Evaluation:
    """Each hour's confirmed-anomaly rate against its own trailing 24 hours' rate, as its own run
    would judge it: `confirmed` (confirmed readings) and `readings` (all readings) per hour must
    cover the 24 hours before the first hour through the last."""
    evals, limits, trailing_rates = [], {}, {}
    for h in hours:
        past = sum(n for k, n in confirmed.items() if h - trailing <= k < h)
        seen = sum(n for k, n in readings.items() if h - trailing <= k < h)
        base = past / seen if seen else 0.0
        limit = max(cfg.anomaly_spike_factor * base, cfg.anomaly_spike_floor)
        key = h.strftime("%Y-%m-%d-%H:%M")
        limits[key], trailing_rates[key] = round(limit, 5), round(base, 5)
        evals.append(
            quality.check_rate(
                {h: confirmed.get(h, 0)},
                {h: readings.get(h, 0)},
                limit,
                ANOMALY_LOG.name,
                "check_anomaly_rate_spike",
                "confirmed anomalous readings",
            )
        )
    num = sum(confirmed.get(h, 0) for h in hours)
    den = sum(readings.get(h, 0) for h in hours)
    over = [e for e in evals if not e.passed]
    text = (
        f"confirmed anomalous readings rate {num / den if den else 0:.2%}, every hour under its own limit"
        if not over
        else f"confirmed anomalous readings rate above its hour's limit in {len(over)} partition(s)"
    )
    by_partition = {k: v for e in evals for k, v in e.by_partition.items()}
    return quality.Evaluation(
        ANOMALY_LOG.name,
        "check_anomaly_rate_spike",
        evals[0].severity if evals else quality.WARN,
        not over,
        by_partition,
        text,
        {
            "rate": round(num / den, 4) if den else 0.0,
            "limit_by_hour": limits,
            "trailing_rate_by_hour": trailing_rates,
            "examples": [x for e in over for x in e.detail["examples"]][: quality.EXAMPLES],
        },
    )


def anomaly_checks(
    log: DataFrame,
    readings_by_hour: dict,
    trailing_log: DataFrame,
    trailing_stats: DataFrame,
    cfg: DataQualityConfig,
) -> list[quality.Evaluation]:
    """Schema conformance, and each hour's confirmed-anomaly rate against its own trailing 24 hours'
    rate (in a range run too: `trailing_log` and `trailing_stats` cover the 24 hours before the
    range's first hour through its last)."""
    # The table's columns and the frame's may differ (a column retired from the model stays in it).
    cols = ["device_id", "event_time", "event_hour", "confirmed"]
    confirmed = quality.counts_by(
        confirmed_readings(trailing_log.select(*cols).unionByName(log.select(*cols))), "event_hour"
    )
    seen = {
        quality.partition_value(r["event_hour"]): int(r["n"] or 0)
        for r in trailing_stats.groupBy("event_hour").agg(F.sum("reading_count").alias("n")).collect()
    }
    hours = sorted(readings_by_hour)
    spike = rate_spike_by_hour(confirmed, {**seen, **readings_by_hour}, hours, cfg)
    return [
        quality.check_schema(
            log,
            AnomalyRecord,
            ANOMALY_LOG.name,
            "check_anomaly_log_schema",
            "event_hour",
            ["device_id", "event_time", "metric", "method"],
        ),
        spike,
    ]
