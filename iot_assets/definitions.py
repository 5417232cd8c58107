"""The one place that assembles the iot_assets code location."""

from dagster import Definitions, in_process_executor, load_assets_from_modules

from iot_assets.assets import anomalies, bronze, gold, models, raw, registry, silver
from iot_assets.conditions import automation_condition_sensor
from iot_assets.jobs import anomaly_detection_job, hourly_pipeline_job
from iot_assets.resources.config import build_resources
from iot_assets.schedules import hourly_pipeline_schedule
from iot_assets.sensors.kinesis_arrivals import kinesis_arrival_sensor
from iot_assets.sensors.s3_arrivals import s3_landing_sensor

defs = Definitions(
    assets=load_assets_from_modules([raw, registry, bronze, silver, gold, models, anomalies]),
    jobs=[hourly_pipeline_job, anomaly_detection_job],
    sensors=[kinesis_arrival_sensor, s3_landing_sensor, automation_condition_sensor],
    schedules=[hourly_pipeline_schedule],
    resources=build_resources(),
    # Every step of a run shares one process, so one SparkSession (one JVM) serves the whole run.
    executor=in_process_executor,
)
