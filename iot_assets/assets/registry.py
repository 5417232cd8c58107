"""The device registry: each device's name, site, location and type, for enrichment in silver."""


from dataclasses import asdict

import pandera.pyspark as pa
import pyspark.sql.types as T
from dagster import MaterializeResult, asset

from iot_assets.assets.raw import RawSource
from iot_assets.resources.lakehouse import DeltaLakehouse
from iot_assets.resources.spark import SparkResource
from iot_assets.schemas import struct_type, table_schema
from iot_assets.simulator import device_registry as fleet_registry

TABLE = "device_registry"


class DeviceRecord(pa.DataFrameModel):
    device_id: T.StringType() = pa.Field(nullable=False)
    device_name: T.StringType() = pa.Field(nullable=False)
    site: T.StringType() = pa.Field(nullable=False)
    device_type: T.StringType() = pa.Field(nullable=False)
    latitude: T.DoubleType() = pa.Field(nullable=False, ge=-90, le=90)
    longitude: T.DoubleType() = pa.Field(nullable=False, ge=-180, le=180)


@asset(group_name="reference", kinds={"spark", "delta", "s3"},
       metadata={"dagster/column_schema": table_schema(DeviceRecord)})
def device_registry(spark: SparkResource, lake: DeltaLakehouse, raw_source: RawSource) -> MaterializeResult:
    """Every known device with its name, site, type and location; silver joins readings to it."""
    rows = [asdict(d) for d in fleet_registry(raw_source.fleet)]
    df = spark.session.createDataFrame(rows, struct_type(DeviceRecord))
    return MaterializeResult(metadata=lake.overwrite(df, TABLE).metadata())
