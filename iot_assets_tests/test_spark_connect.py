"""Spark Connect without a server: the pipeline uses no classic-only API, and the Connect settings
are checked. The end-to-end run through a real Connect server is in test_spark_cluster.py."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from iot_assets.resources.spark import REQUIRED_SESSION_CONF, SESSION_CONF, get_or_create_remote_session, redact_remote
from iot_assets.tools.connect_server import server_conf

PACKAGE = Path(__file__).resolve().parents[1] / "iot_assets"
# What Spark Connect does not have: the SparkContext, RDDs, the JVM gateway, and DeltaTable's
# classic implementation.
CLASSIC_ATTRIBUTES = {"sparkContext", "rdd", "_jvm", "_jsc", "_jdf", "_jsparkSession"}
CLASSIC_MODULES = {"delta.tables", "pyspark.rdd", "pyspark.context", "pyspark.core.context"}
# The one module that may touch them, each use behind `is_connect` (its docstrings say which).
GUARDED = PACKAGE / "resources" / "spark.py"


def classic_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in CLASSIC_ATTRIBUTES:
            found.append(f"{path.name}:{node.lineno} .{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module in CLASSIC_MODULES:
            found.append(f"{path.name}:{node.lineno} from {node.module}")
        elif isinstance(node, ast.Import):
            found += [f"{path.name}:{node.lineno} import {a.name}" for a in node.names if a.name in CLASSIC_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module == "pyspark":
            found += [f"{path.name}:{node.lineno} SparkContext" for a in node.names if a.name == "SparkContext"]
    return found


def test_the_pipeline_uses_no_api_spark_connect_lacks():
    uses = [u for p in sorted(PACKAGE.rglob("*.py")) if p != GUARDED for u in classic_uses(p)]
    assert uses == []


def test_the_guarded_module_checks_for_connect_before_each_classic_use():
    source = GUARDED.read_text()
    assert classic_uses(GUARDED), "the scan finds nothing: it is broken"
    for name in ("parallelism", "ship_package", "_ship"):
        body = ast.get_source_segment(source, next(n for n in ast.parse(source).body if getattr(n, "name", "") == name))
        assert "is_connect(session)" in body, name


def test_the_scan_finds_a_classic_use(tmp_path):
    sample = tmp_path / "bronze.py"
    sample.write_text("from delta.tables import DeltaTable\nn = df.rdd.getNumPartitions()\n")
    assert classic_uses(sample) == ["bronze.py:1 from delta.tables", "bronze.py:2 .rdd"]


def test_a_remote_that_is_not_a_connect_url_is_refused_without_its_secret():
    with pytest.raises(ValueError, match="sc://") as refused:
        get_or_create_remote_session("https://example.cloud.databricks.com/;token=dapi-secret", {})
    assert "dapi-secret" not in str(refused.value)
    assert redact_remote("sc://host:443/;token=dapi-secret;x-databricks-cluster-id=1") == "sc://host:443/;..."
    assert redact_remote("sc://127.0.0.1:15002") == "sc://127.0.0.1:15002"


def test_the_session_settings_are_runtime_sql_settings_and_the_time_zone_is_required():
    # A Connect client can set only session (SQL) settings; static ones belong to the server.
    assert all(k.startswith(("spark.sql.", "spark.databricks.delta.")) for k in SESSION_CONF)
    assert set(REQUIRED_SESSION_CONF) <= set(SESSION_CONF)


def test_the_local_server_is_configured_like_a_run_and_listens_on_loopback_only():
    from iot_assets.resources.spark import spark_conf

    conf = server_conf(spark_conf("local[*]", "http://127.0.0.1:4566", "us-east-1", 8, "1g"), 15123)
    assert conf["spark.connect.grpc.binding.address"] == "127.0.0.1"
    assert conf["spark.connect.grpc.binding.port"] == "15123"
    assert conf["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:4566"
    assert not any("secret" in k or "access.key" in k for k in conf), "credentials go through the environment"
