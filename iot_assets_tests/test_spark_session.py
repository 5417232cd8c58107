"""The test process's own Spark session (local, started by the Spark resource): what spark-submit
gives a PySpark application that the project takes back."""

from __future__ import annotations

import os
import sys

import pytest

from iot_assets.resources.spark import package_jars_off_python_path


def test_package_jars_are_off_the_python_path_of_driver_and_workers(spark):
    sc = spark.sparkContext
    # The packages were resolved, and are on the JVM's classpath (Delta reads and writes need them).
    listed = [f for f in sc.getConf().get("spark.submit.pyFiles", "").split(",") if f.lower().endswith(".jar")]
    packages = {os.path.basename(f) for f in listed}
    assert any(name.startswith("io.delta_delta-spark") for name in packages)

    def on_path(entries):
        return sorted(os.path.basename(p) for p in entries if os.path.basename(p) in packages)

    assert on_path(sys.path) == []
    assert not packages & set(sc._python_includes)

    def worker_path(rows):
        import sys

        for _ in rows:
            pass
        yield list(sys.path)

    # A fresh Python worker: its path comes from the driver's list of Python includes.
    assert [on_path(p) for p in sc.parallelize(range(2), 2).mapPartitions(worker_path).collect()] == [[], []]


def test_taking_jars_off_keeps_other_entries(monkeypatch, tmp_path):
    class Context:
        _python_includes = ["io.delta_delta-spark_4.2_2.13-4.4.0.jar", "iot_assets.zip", "theirs.EGG", "x.JAR"]

    root = tmp_path / "userFiles"
    monkeypatch.setattr("pyspark.SparkFiles.getRootDirectory", lambda: str(root))
    elsewhere = str(tmp_path / "elsewhere.jar")
    monkeypatch.setattr(sys, "path", [str(root / "x.JAR"), str(root / "iot_assets.zip"), elsewhere, "/lib"])
    sc = Context()

    assert package_jars_off_python_path(sc) == ["io.delta_delta-spark_4.2_2.13-4.4.0.jar", "x.JAR"]
    assert sc._python_includes == ["iot_assets.zip", "theirs.EGG"]
    # Only the includes' own copies go: a jar a user put on the path themselves stays.
    assert sys.path == [str(root / "iot_assets.zip"), elsewhere, "/lib"]


@pytest.mark.parametrize("includes", [None, []])
def test_nothing_to_take_off(includes):
    class Context:
        _python_includes = includes

    assert package_jars_off_python_path(Context()) == []
