"""The device registry: each device's attributes (the catalogue's `registry`), for enrichment in silver."""

from dataclasses import asdict

import pandera.pyspark as pa
import pyspark.sql.types as T
from botocore.exceptions import ClientError
from dagster import AssetExecutionContext, MaterializeResult, asset
from pyspark.sql import DataFrame

from iot_assets.automation.conditions import BUILD_WHEN_MISSING
from iot_assets.lib import catalogue, quality
from iot_assets.lib.metadata import table_metadata
from iot_assets.lib.schemas import model, struct_type
from iot_assets.lib.tables import Table
from iot_assets.resources.aws import AwsResource
from iot_assets.resources.lakehouse import LAKE_WRITER_POOL, DeltaLakehouse
from iot_assets.resources.raw_source import RawSource
from iot_assets.resources.spark import SPARK_RETRY_POLICY, SparkResource
from iot_assets.tools.simulator import device_registry as fleet_registry

REFERENCE_KEY = "reference/devices.jsonl"


CATALOGUE = catalogue.active()


def _attribute_field(a: catalogue.Attribute) -> tuple[T.DataType, object]:
    bounds = {} if a.range is None else {"ge": a.range[0], "le": a.range[1]}
    return a.spark_type, pa.Field(nullable=not a.required, **bounds)


DeviceRecord = model(
    "DeviceRecord",
    "A registered device and its attributes, as the sensor catalogue's `registry` declares them.",
    {
        "device_id": (T.StringType(), pa.Field(nullable=False)),
        **{a.name: _attribute_field(a) for a in CATALOGUE.registry},
    },
    __name__,
)


REGISTRY = Table("device_registry", DeviceRecord, partition_column=None)


def registered_devices(spark, aws: AwsResource, bucket: str, simulated: list[dict]) -> DataFrame:
    """The simulated fleet plus the devices listed in `s3://<bucket>/reference/devices.jsonl`.

    A listed device replaces a simulated one with the same id.
    """
    fleet = spark.createDataFrame(simulated, struct_type(DeviceRecord))
    try:
        aws.s3.head_object(Bucket=bucket, Key=REFERENCE_KEY)
    except ClientError:
        return fleet
    listed = (
        spark.read.schema(struct_type(DeviceRecord)).option("mode", "FAILFAST").json(f"s3a://{bucket}/{REFERENCE_KEY}")
    )
    return fleet.join(listed.select("device_id"), "device_id", "left_anti").unionByName(listed)


@asset(
    key=REGISTRY.key,
    group_name="reference",
    kinds={"spark", "delta", "s3"},
    automation_condition=BUILD_WHEN_MISSING,
    pool=LAKE_WRITER_POOL,
    retry_policy=SPARK_RETRY_POLICY,
    metadata=REGISTRY.metadata(),
    check_specs=[
        REGISTRY.check(
            "check_registry_schema",
            "Every device has its required attributes, each of its type and in its range (DeviceRecord pandera model).",
        ),
        REGISTRY.check(
            "check_registry_unique_devices",
            "Each device_id is listed once; a repeated id would duplicate its readings in silver.",
        ),
    ],
)
def device_registry(
    context: AssetExecutionContext, spark: SparkResource, lake: DeltaLakehouse, raw_source: RawSource, aws: AwsResource
):
    """Every known device with its attributes (the sensor catalogue's `registry`); silver joins readings to it.

    The simulated fleet, plus any devices listed as JSON lines in `s3://<bucket>/reference/devices.jsonl`.
    The fleet is simulated when every channel of the catalogue declares its signal (`simulate`), as
    the shipped catalogue's do; with another catalogue (`IOT_SENSOR_CATALOGUE`) only the listed
    devices are registered.
    """
    # A simulated device gives the attributes the simulator knows; the catalogue's defaults fill the rest.
    fleet = fleet_registry(raw_source.fleet) if CATALOGUE.simulated else []
    simulated = [CATALOGUE.device_entry(d.device_id, asdict(d)) for d in fleet]
    df = registered_devices(spark.session, aws, lake.bucket, simulated)
    written = lake.overwrite(df, REGISTRY)
    yield MaterializeResult(metadata=table_metadata(written, DeviceRecord, simulated_devices=len(simulated)))
    table = lake.read(spark.session, REGISTRY)
    yield from quality.report(
        context,
        spark.session,
        lake,
        [
            quality.check_schema(table, DeviceRecord, REGISTRY.name, "check_registry_schema", None, ["device_id"]),
            quality.check_unique(table, ["device_id"], REGISTRY.name, "check_registry_unique_devices", None),
        ],
    )
