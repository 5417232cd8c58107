"""The one place that assembles the iot_assets code location."""

import warnings

from dagster import (
    BetaWarning,
    Definitions,
    PreviewWarning,
    in_process_executor,
    load_assets_from_modules,
)

# This location uses beta and preview APIs on purpose (single-run backfill policies, source-code
# references); Dagster would warn once per use at every start. Known and chosen, so not repeated.
warnings.filterwarnings("ignore", category=BetaWarning)
warnings.filterwarnings("ignore", category=PreviewWarning)

from iot_assets.alerts.sensors import alert_sensors  # noqa: E402  (after the filters: asset modules warn on import)
from iot_assets.assets import anomalies, bronze, gold, incidents, models, raw, registry, silver  # noqa: E402
from iot_assets.assets.catalog import catalogued  # noqa: E402
from iot_assets.assets.external import SOURCES, data_quality_log  # noqa: E402
from iot_assets.automation.conditions import automation_condition_sensor  # noqa: E402
from iot_assets.automation.historian_arrivals import historian_arrival_sensor  # noqa: E402
from iot_assets.automation.jobs import anomaly_detection_job, hour_end_job, hourly_pipeline_job  # noqa: E402
from iot_assets.automation.kinesis_arrivals import kinesis_arrival_sensor  # noqa: E402
from iot_assets.automation.s3_arrivals import s3_landing_sensor  # noqa: E402
from iot_assets.automation.schedules import hourly_pipeline_schedule  # noqa: E402
from iot_assets.resources.config import build_resources  # noqa: E402

# The assets Dagster materialises (the external ones are only shown): what materialize() needs.
executable_assets = catalogued(
    load_assets_from_modules([raw, registry, bronze, silver, gold, models, anomalies, incidents])
)

defs = Definitions(
    assets=[
        *executable_assets,
        *SOURCES,
        data_quality_log({key.asset_key for a in executable_assets for key in a.check_keys}),
    ],
    jobs=[hourly_pipeline_job, hour_end_job, anomaly_detection_job],
    sensors=[
        *alert_sensors,
        kinesis_arrival_sensor,
        s3_landing_sensor,
        historian_arrival_sensor,
        automation_condition_sensor,
    ],
    schedules=[hourly_pipeline_schedule],
    resources=build_resources(),
    # Every step of a run shares one process, so one SparkSession (one JVM) serves the whole run.
    executor=in_process_executor,
)
