"""What every Delta asset reports on each materialisation, in one place, so all asset pages read alike.

Row count, Delta table version, S3 location, partition bounds and Spark seconds come from the
write (`WriteResult`); this adds the table schema from the layer's pandera model, rows per reason
for tables of set-aside rows, and column lineage where a column is a plain function of upstream
columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dagster import MetadataValue, TableColumnDep, TableColumnLineage

from iot_assets.lib.schemas import table_schema
from iot_assets.lib.tables import Table
from iot_assets.resources.lakehouse import WriteResult

Sources = Sequence[tuple[Table, str]]  # (upstream table, column)


def table_metadata(
    written: WriteResult,
    model: type,
    *,
    rows_by_reason: Mapping[str, int] | None = None,
    lineage: TableColumnLineage | None = None,
    **extra,
) -> dict:
    """The standard materialisation metadata of a Delta table, plus `extra` entries."""
    meta = {**written.metadata(), "dagster/column_schema": table_schema(model)}
    if rows_by_reason is not None:
        meta["rows_by_reason"] = MetadataValue.json(dict(rows_by_reason))
    if lineage is not None:
        meta["dagster/column_lineage"] = lineage
    return {**meta, **extra}


def column_lineage(
    model: type,
    upstream: Sequence[Table],
    derived: Mapping[str, Sources] | None = None,
) -> TableColumnLineage:
    """Each column of `model` comes from the same-named column of the first upstream table that has
    it, unless `derived` names its sources."""
    derived = derived or {}
    deps = {}
    for column in model.to_schema().columns:
        sources = derived.get(column) or next(
            ([(table, column)] for table in upstream if column in table.model.to_schema().columns), []
        )
        if sources:
            deps[column] = [TableColumnDep(asset_key=table.key, column_name=c) for table, c in sources]
    return TableColumnLineage(deps_by_column=deps)
