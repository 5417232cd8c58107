"""The table registry: each Delta table is declared once, and the graph is derived from the declarations."""

import ast
from datetime import UTC, datetime
from pathlib import Path

from dagster import AssetKey, TimeWindow

import iot_assets
from iot_assets.assets import bronze, gold, models, registry, silver, verdicts
from iot_assets.definitions import defs
from iot_assets.lib.quality import DATA_QUALITY_LOG
from iot_assets.lib.tables import TRAILING_DAY, Table, Upstream, trailing_day
from iot_assets_tests.source import parse

PACKAGE = Path(next(iter(iot_assets.__path__)))
TABLES = list(
    {
        v.name: v
        for m in (registry, bronze, silver, gold, models, verdicts)
        for v in vars(m).values()
        if isinstance(v, Table)
    }.values()
) + [DATA_QUALITY_LOG]


def _string_constants(path: Path) -> list[str]:
    """String literals of a module, docstrings left out."""
    tree = parse(path)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
    ]


def test_every_delta_table_is_declared_once():
    names = [t.name for t in TABLES]
    assert len(names) == len(set(names)) == 12
    literals = [s for p in sorted(PACKAGE.rglob("*.py")) for s in _string_constants(p)]
    written = {name: literals.count(name) for name in names}
    assert written == dict.fromkeys(names, 1), "a table name is written outside its Table declaration"


def test_every_declared_table_is_an_asset_with_its_schema_and_name():
    graph = defs.resolve_asset_graph()
    specs = {k: graph.get(k) for k in graph.get_all_asset_keys()}
    for table in TABLES:
        spec = specs[table.key]
        assert spec.metadata["dagster/table_name"] == table.name
        assert spec.metadata["dagster/column_schema"] == table.metadata()["dagster/column_schema"]


def test_dependencies_come_from_the_declared_edges():
    graph = defs.resolve_asset_graph()
    parents = {k: graph.get(k).parent_keys for k in (t.key for t in TABLES) if graph.has(k)}
    assert parents[silver.SILVER_READINGS.key] == {bronze.BRONZE_READINGS.key, registry.REGISTRY.key}
    assert parents[models.MODELS.key] == {silver.SILVER_READINGS.key, registry.REGISTRY.key}
    assert parents[verdicts.ANOMALY_LOG.key] == {silver.SILVER_READINGS.key, models.MODELS.key, gold.HOURLY_STATS.key}
    assert parents[verdicts.INCIDENTS.key] == {verdicts.ANOMALY_LOG.key}
    dep = next(
        d
        for d in models.device_anomaly_models.specs_by_key[models.MODELS.key].deps
        if d.asset_key == silver.SILVER_READINGS.key
    )
    assert dep.partition_mapping == TRAILING_DAY
    assert AssetKey("raw_sensor_batches") in parents[bronze.BRONZE_READINGS.key]


def test_the_window_read_over_an_edge_is_its_partition_mappings():
    h = datetime(2026, 11, 20, 10, tzinfo=UTC)
    one = TimeWindow(h, h.replace(hour=11))
    three = TimeWindow(h, h.replace(hour=13))
    assert models.TRAINING_WINDOW.window(one) == (h.replace(day=19), h)
    assert models.TRAINING_WINDOW.window(three) == (h.replace(day=19), h.replace(hour=12))
    assert trailing_day(three) == (h.replace(day=19), h)
    assert Upstream(silver.SILVER_READINGS).window(three) == (three.start, three.end)
    # The mapping Dagster uses gives the same hours.
    from iot_assets.lib.partitions import hourly_partitions

    upstream = TRAILING_DAY.get_upstream_mapped_partitions_result_for_partitions(
        hourly_partitions.get_partition_subset_in_time_window(one), hourly_partitions, hourly_partitions
    ).partitions_subset
    keys = sorted(upstream.get_partition_keys())
    assert (keys[0], keys[-1], len(keys)) == ("2026-11-19-10:00", "2026-11-20-09:00", 24)
