"""Turn a layer's pandera model into the Spark schema and the Dagster `TableSchema`.

The pandera `DataFrameModel` in each layer file is the single statement of that layer's columns,
types, nullability and ranges; everything else is derived here.
"""

from __future__ import annotations

import pandera.pyspark as pa
import pyspark.sql.types as T
from dagster import TableColumn, TableColumnConstraints, TableSchema
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StructField, StructType


def struct_type(model: type[pa.DataFrameModel]) -> StructType:
    cols = model.to_schema().columns
    return StructType([StructField(name, col.dtype.type, col.nullable) for name, col in cols.items()])


def _constraints(col) -> list[str]:
    out = []
    for check in col.checks:
        stats = {k: v for k, v in check.statistics.items() if v is not None}
        out.append(f"{check.name}({', '.join(f'{k}={v}' for k, v in stats.items())})")
    return out


def table_schema(model: type[pa.DataFrameModel]) -> TableSchema:
    cols = model.to_schema().columns
    return TableSchema(
        columns=[
            TableColumn(
                name=name,
                type=col.dtype.type.simpleString(),
                description=col.description,
                constraints=TableColumnConstraints(nullable=col.nullable, other=_constraints(col)),
            )
            for name, col in cols.items()
        ]
    )


def conform(df: DataFrame, model: type[pa.DataFrameModel]) -> DataFrame:
    """Select exactly the model's columns, in order, cast to its types."""
    return df.select([F.col(f.name).cast(f.dataType).alias(f.name) for f in struct_type(model).fields])


def model(name: str, doc: str, columns: dict[str, tuple[T.DataType, object]], module: str) -> type[pa.DataFrameModel]:
    """A pandera model from its columns in order, each `(Spark type, pa.Field(...))`: for the tables
    whose columns are generated from the sensor catalogue."""
    annotations = {k: dtype for k, (dtype, _) in columns.items()}
    fields = {k: field for k, (_, field) in columns.items()}
    attrs = {"__annotations__": annotations, "__doc__": doc, "__module__": module, **fields}
    return type(name, (pa.DataFrameModel,), attrs)
