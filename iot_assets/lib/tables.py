"""The lake's tables, each declared once, and the edges between them.

A layer file declares its tables beside their pandera models (`SILVER_READINGS = Table(...)` in
`assets/silver.py`), and each asset's upstream edges beside the asset (`Upstream(SILVER_READINGS,
TRAILING_DAY)`). Everything else is derived from those two declarations: the asset key, the asset's
dependencies and their partition mappings, the window a step reads over each edge, the Delta
location and partition column of reads and writes, and the catalog metadata. A table's name is
therefore written once in the package (`test_tables.py` holds us to it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import pandera.pyspark as pa
from dagster import AssetCheckSpec, AssetDep, AssetKey, TimeWindow, TimeWindowPartitionMapping

from iot_assets.lib.partitions import HOUR
from iot_assets.lib.schemas import table_schema

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_DECLARED: dict[str, Table] = {}

# The 24 hours before an hour: a model for hour H is trained on them, and H is scored against
# their baseline. Every trailing-day read derives its bounds from this one mapping.
TRAILING_DAY = TimeWindowPartitionMapping(start_offset=-24, end_offset=-1)
TRAILING_HOURS = -TRAILING_DAY.start_offset


def trailing_day(window: TimeWindow) -> tuple[datetime, datetime]:
    """The bounds of the trailing day before `window` (the upstream window of TRAILING_DAY)."""
    return window.start + HOUR * TRAILING_DAY.start_offset, window.start + HOUR * (TRAILING_DAY.end_offset + 1)


@dataclass(frozen=True)
class Table:
    """A Delta table of the lake, and the asset that materialises it."""

    name: str
    model: type[pa.DataFrameModel]
    # The typed column a partition window selects (`event_hour`, `batch_hour`, `event_date`);
    # None for a table replaced whole.
    partition_column: str | None
    # The columns Delta keeps file statistics (min, max, nulls) on, for data skipping; empty:
    # Delta's default, the first 32. Each kept statistic is computed for every row written.
    stats_columns: tuple[str, ...] = ()

    def __post_init__(self):
        if not _NAME.match(self.name):
            raise ValueError(f"not a valid table name: {self.name!r}")
        missing = [c for c in self.stats_columns if c not in self.model.to_schema().columns]
        if missing:
            raise ValueError(f"table {self.name!r}: statistics columns {missing} are not in {self.model.__name__}")
        if _DECLARED.setdefault(self.name, self) != self:
            raise ValueError(f"table {self.name!r} is declared twice")

    @property
    def key(self) -> AssetKey:
        return AssetKey(self.name)

    def metadata(self) -> dict:
        """Definition metadata for the catalog: the column schema and the table's name."""
        return {"dagster/column_schema": table_schema(self.model), "dagster/table_name": self.name}

    def check(self, name: str, description: str, blocking: bool = False) -> AssetCheckSpec:
        return AssetCheckSpec(name, asset=self.key, description=description, blocking=blocking)


@dataclass(frozen=True)
class Upstream:
    """An edge of the graph: a table read by another, and which of its partitions are read."""

    table: Table | AssetKey
    mapping: TimeWindowPartitionMapping | None = None  # None: the same window

    def dep(self) -> AssetDep:
        key = self.table.key if isinstance(self.table, Table) else self.table
        return AssetDep(key, partition_mapping=self.mapping)

    def window(self, window: TimeWindow) -> tuple[datetime, datetime]:
        """The bounds read from the upstream table when materialising `window`."""
        if self.mapping is None:
            return window.start, window.end
        return window.start + HOUR * self.mapping.start_offset, window.end + HOUR * self.mapping.end_offset


def deps(*edges: Upstream) -> list[AssetDep]:
    """An asset's dependencies, with their partition mappings, from its upstream edges."""
    return [e.dep() for e in edges]


def named(name: str) -> Table:
    """A declared table by its name (for notebooks and tests; the package refers to the objects)."""
    try:
        return _DECLARED[name]
    except KeyError:
        raise KeyError(f"no table named {name!r} is declared (import iot_assets.definitions first)") from None
