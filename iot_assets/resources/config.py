"""Resources for the current environment, built from settings (EnvVar when set, else defaults)."""

import json

from iot_assets.settings import dagster_value as v
from iot_assets.settings import get


def build_resources() -> dict:
    from iot_assets.alerts.sinks import AlertSinks
    from iot_assets.resources.aws import AwsResource
    from iot_assets.resources.detection import DEFAULT_RULES, AnomalyModelConfig, ThresholdRule, ThresholdRules
    from iot_assets.resources.io_managers import S3KinesisRawIOManager
    from iot_assets.resources.lakehouse import DeltaLakehouse
    from iot_assets.resources.landing import LandingZone
    from iot_assets.resources.quality_config import DataQualityConfig
    from iot_assets.resources.raw_source import RawSource
    from iot_assets.resources.spark import SparkResource

    aws = AwsResource(endpoint_url=v("IOT_AWS_ENDPOINT_URL"), region=v("IOT_AWS_REGION"))
    rules_json = get("IOT_THRESHOLD_RULES").strip()
    rules = [ThresholdRule(**r) for r in (json.loads(rules_json) if rules_json else DEFAULT_RULES)]
    return {
        "aws": aws,
        "spark": SparkResource(
            master=v("IOT_SPARK_MASTER"),
            remote=v("IOT_SPARK_REMOTE"),
            endpoint_url=v("IOT_AWS_ENDPOINT_URL"),
            region=v("IOT_AWS_REGION"),
            shuffle_partitions=int(get("IOT_SPARK_SHUFFLE_PARTITIONS")),
            driver_memory=v("IOT_SPARK_DRIVER_MEMORY"),
            extra_packages=v("IOT_SPARK_PACKAGES_EXTRA"),
            python=v("IOT_SPARK_PYTHON"),
            log_store=v("IOT_DELTA_LOG_STORE"),
            dynamodb_table=v("IOT_DELTA_DYNAMODB_TABLE"),
        ),
        "lake": DeltaLakehouse(
            bucket=v("IOT_BUCKET"),
            prefix=v("IOT_LAKE_PREFIX"),
            max_records_per_file=int(get("IOT_DELTA_MAX_RECORDS_PER_FILE")),
        ),
        "raw_io_manager": S3KinesisRawIOManager(
            aws=aws,
            bucket=v("IOT_BUCKET"),
            stream=v("IOT_KINESIS_STREAM"),
            part_records=int(get("IOT_RAW_PART_RECORDS")),
        ),
        "raw_source": RawSource(
            source=v("IOT_RAW_SOURCE"),
            device_count=int(get("IOT_DEVICE_COUNT")),
            readings_per_hour=int(get("IOT_READINGS_PER_HOUR")),
            seed=int(get("IOT_SIMULATOR_SEED")),
            anomaly_rate=float(get("IOT_SIMULATOR_ANOMALY_RATE")),
            malformed_rate=float(get("IOT_SIMULATOR_MALFORMED_RATE")),
            allowed_lateness_minutes=float(get("IOT_ALLOWED_LATENESS_MINUTES")),
            stream=v("IOT_KINESIS_STREAM"),
        ),
        "landing": LandingZone(
            aws=aws,
            bucket=v("IOT_BUCKET"),
            prefix=v("IOT_LANDING_PREFIX"),
            max_object_expanded_bytes=int(get("IOT_MAX_OBJECT_EXPANDED_BYTES")),
        ),
        "historian": historian_source(aws),
        "threshold_rules": ThresholdRules(rules=rules),
        "quality_config": DataQualityConfig(
            max_quarantine_rate=float(get("IOT_MAX_QUARANTINE_RATE")),
            anomaly_spike_factor=float(get("IOT_ANOMALY_SPIKE_FACTOR")),
            anomaly_spike_floor=float(get("IOT_ANOMALY_SPIKE_FLOOR")),
        ),
        "anomaly_config": AnomalyModelConfig(
            k=int(get("IOT_KMEANS_K")),
            learning_hours=int(get("IOT_LEARNING_HOURS")),
            zscore_limit=float(get("IOT_ZSCORE_LIMIT")),
            distance_percentile=float(get("IOT_KMEANS_DISTANCE_PERCENTILE")),
            threshold_margin=float(get("IOT_KMEANS_THRESHOLD_MARGIN")),
            training_policy=get("IOT_TRAINING_POLICY").strip(),
            pinned_start=get("IOT_PINNED_START").strip(),
            pinned_end=get("IOT_PINNED_END").strip(),
        ),
        "alert_sinks": AlertSinks(
            aws=aws,
            sns_topic=v("IOT_ALERT_SNS_TOPIC"),
            metrics_namespace=v("IOT_ALERT_METRICS_NAMESPACE"),
            slack_webhook_url=v("IOT_ALERT_SLACK_WEBHOOK_URL"),
            ui_url=v("IOT_DAGSTER_UI_URL"),
        ),
    }


def historian_source(aws=None):
    """The SQL historian source (IOT_RAW_SOURCE=historian) from the settings as they are now."""
    from iot_assets.resources.aws import AwsResource
    from iot_assets.resources.historian import HistorianSource

    return HistorianSource(
        aws=aws or AwsResource(endpoint_url=v("IOT_AWS_ENDPOINT_URL"), region=v("IOT_AWS_REGION")),
        jdbc_url=v("IOT_HISTORIAN_JDBC_URL"),
        user=v("IOT_HISTORIAN_USER"),
        password=v("IOT_HISTORIAN_PASSWORD"),
        secret_name=v("IOT_HISTORIAN_SECRET_NAME"),
        table_prefix=v("IOT_HISTORIAN_TABLE_PREFIX"),
        tag_table=v("IOT_HISTORIAN_TAG_TABLE"),
        read_partitions=int(get("IOT_HISTORIAN_READ_PARTITIONS")),
        scan_tolerance_ms=int(get("IOT_HISTORIAN_SCAN_TOLERANCE_MS")),
    )


def resolved(name: str):
    """A resource outside a run (CLI, tests), with its EnvVars resolved; Spark's session is shared.

    Built from the settings alone: fetching one resource loads no asset, sensor or definitions.

    Initialised inside a context that is closed before returning: Dagster's plain
    `process_config_and_initialize()` keeps an ephemeral instance open for as long as the resource
    lives, and closing it later, from the garbage collector, makes whichever instance was current when
    the resource was made the current one again, even if the caller has closed it since. None of these
    resources tears anything down, so the value stays usable."""
    with build_resources()[name].process_config_and_initialize_cm() as value:
        return value
