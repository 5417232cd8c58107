"""The one place that assembles the iot_assets code location."""

from dagster import Definitions, in_process_executor, load_assets_from_modules

from iot_assets.alerts.sensors import alert_sensors
from iot_assets.assets import anomalies, bronze, gold, models, raw, registry, silver
from iot_assets.jobs import anomaly_detection_job, hourly_pipeline_job
from iot_assets.resources.config import build_resources

defs = Definitions(
    assets=load_assets_from_modules([raw, registry, bronze, silver, gold, models, anomalies]),
    jobs=[hourly_pipeline_job, anomaly_detection_job],
    sensors=[*alert_sensors],
    resources=build_resources(),
    # Every step of a run shares one process, so one SparkSession (one JVM) serves the whole run.
    executor=in_process_executor,
)
