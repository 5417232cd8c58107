"""Resources for the current environment, built from settings (EnvVar when set, else defaults)."""

from iot_assets.settings import dagster_value as v


def build_resources() -> dict:
    from iot_assets.assets.raw import RawSource
    from iot_assets.resources.aws import AwsResource
    from iot_assets.resources.io_managers import S3KinesisRawIOManager
    from iot_assets.resources.lakehouse import DeltaLakehouse
    from iot_assets.resources.spark import SparkResource

    aws = AwsResource(endpoint_url=v("IOT_AWS_ENDPOINT_URL"), region=v("IOT_AWS_REGION"))
    return {
        "aws": aws,
        "spark": SparkResource(
            master=v("IOT_SPARK_MASTER"), endpoint_url=v("IOT_AWS_ENDPOINT_URL"), region=v("IOT_AWS_REGION"),
            shuffle_partitions=int(v_plain("IOT_SPARK_SHUFFLE_PARTITIONS")),
            driver_memory=v("IOT_SPARK_DRIVER_MEMORY"), extra_packages=v("IOT_SPARK_PACKAGES_EXTRA")),
        "lake": DeltaLakehouse(bucket=v("IOT_BUCKET"), prefix=v("IOT_LAKE_PREFIX"),
                               max_records_per_file=int(v_plain("IOT_DELTA_MAX_RECORDS_PER_FILE"))),
        "raw_io_manager": S3KinesisRawIOManager(aws=aws, bucket=v("IOT_BUCKET"), stream=v("IOT_KINESIS_STREAM")),
        "raw_source": RawSource(
            source=v("IOT_RAW_SOURCE"), device_count=int(v_plain("IOT_DEVICE_COUNT")),
            readings_per_hour=int(v_plain("IOT_READINGS_PER_HOUR")), seed=int(v_plain("IOT_SIMULATOR_SEED")),
            allowed_lateness_minutes=int(v_plain("IOT_ALLOWED_LATENESS_MINUTES")),
            stream=v("IOT_KINESIS_STREAM")),
    }


def v_plain(env: str) -> str:
    from iot_assets.settings import get

    return get(env)


def resolved(name: str):
    """A resource outside a run (CLI, tests), with its EnvVars resolved; Spark's session is shared."""
    from iot_assets.definitions import defs

    return defs.resources[name].process_config_and_initialize()
