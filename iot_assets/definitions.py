"""The one place that assembles the iot_assets code location."""

from dagster import Definitions, in_process_executor, load_assets_from_modules

from iot_assets import assets as _assets  # noqa: F401
from iot_assets.assets import bronze, gold, raw, registry, silver
from iot_assets.jobs import hourly_pipeline_job
from iot_assets.resources.config import build_resources

defs = Definitions(
    assets=load_assets_from_modules([raw, registry, bronze, silver, gold]),
    jobs=[hourly_pipeline_job],
    resources=build_resources(),
    # Every step of a run shares one process, so one SparkSession (one JVM) serves the whole run.
    executor=in_process_executor,
)
