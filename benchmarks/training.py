"""Model training: grouped (one `applyInPandas` job for every device) against the naive loop that
fits one `pyspark.ml` KMeans per device, on the same simulated 24 hours of silver readings."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

HOURS = 24


def simulated_silver(spark, devices: int, progress=print):
    """24 hours of the fleet's readings as a silver-shaped DataFrame (well-formed records only)."""
    from iot_assets.tools.simulator import FleetConfig, simulate_hour

    fleet = FleetConfig(device_count=devices, malformed_rate=0.0)
    model_hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    rows = []
    began = time.monotonic()
    for i in range(HOURS, 0, -1):
        for text in simulate_hour(model_hour - timedelta(hours=i), fleet).records:
            r = json.loads(text)
            rows.append(
                (r["device_id"], r["timestamp"], r["temperature"], r["humidity"], r["pressure"], r["vibration"])
            )
    pdf = pd.DataFrame(rows, columns=["device_id", "ts", "temperature", "humidity", "pressure", "vibration"])
    pdf["event_time"] = pd.to_datetime(pdf.pop("ts"), utc=True).dt.tz_localize(None)
    progress(
        f"   simulated {len(pdf):,} readings of {devices} devices over {HOURS} hours ({time.monotonic() - began:.0f} s)"
    )
    return spark.createDataFrame(pdf), model_hour


def grouped(silver, model_hour: datetime) -> float:
    from iot_assets.assets.models import train_models, with_features
    from iot_assets.resources.detection import AnomalyModelConfig

    began = time.monotonic()
    models = train_models(
        with_features(silver), silver.select("device_id").distinct(), [model_hour], AnomalyModelConfig()
    )
    models.write.format("noop").mode("overwrite").save()
    return time.monotonic() - began


def loop(featured, device_ids: list[str]) -> float:
    """The naive way: per device, filter, assemble, standardise, fit, and score the training rows
    for a distance threshold; several Spark jobs per device."""
    from pyspark.ml import Pipeline
    from pyspark.ml.clustering import KMeans
    from pyspark.ml.feature import StandardScaler, VectorAssembler
    from pyspark.sql import functions as F

    from iot_assets.assets.models import FEATURES

    began = time.monotonic()
    for d in device_ids:
        rows = featured.where(F.col("device_id") == d).where(F.col("temperature_log_spread").isNotNull())
        model = Pipeline(
            stages=[
                VectorAssembler(inputCols=list(FEATURES), outputCol="raw"),
                StandardScaler(inputCol="raw", outputCol="features", withMean=True),
                KMeans(k=3, seed=11, maxIter=25),
            ]
        ).fit(rows)
        centres = np.array(model.stages[-1].clusterCenters())
        feats = np.array([r["features"].toArray() for r in model.transform(rows).select("features").collect()])
        dist = np.sqrt(((feats[:, None, :] - centres[None]) ** 2).sum(-1)).min(1)
        float(np.percentile(dist, 99.5))
    return time.monotonic() - began


def compare(devices: int, loop_sample: int, progress=print) -> dict:
    from iot_assets.assets.models import with_features
    from iot_assets.resources.config import resolved

    spark = resolved("spark").session
    silver, model_hour = simulated_silver(spark, devices, progress)
    silver = silver.persist()
    silver.count()
    grouped(silver.limit(1000), model_hour)  # warm up the Python workers and code paths
    grouped_s = grouped(silver, model_hour)
    progress(f"   grouped: {devices} device models in {grouped_s:.1f} s")
    featured = with_features(silver).persist()
    featured.count()
    sample = sorted(r["device_id"] for r in silver.select("device_id").distinct().limit(loop_sample).collect())
    loop_s = loop(featured, sample)
    progress(f"   loop: {len(sample)} device models in {loop_s:.1f} s")
    featured.unpersist()
    silver.unpersist()
    return {
        "devices": devices,
        "training_rows": devices * HOURS * 60,
        "grouped_seconds": round(grouped_s, 1),
        "loop_devices": len(sample),
        "loop_seconds_sample": round(loop_s, 1),
        "loop_seconds_scaled": round(loop_s / len(sample) * devices, 1),
    }
