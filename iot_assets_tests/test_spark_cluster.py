"""Spark away from the run process, for real, from pyspark's own jars on 127.0.0.1: a standalone
master with two workers, and a Spark Connect server.

Each run happens in a fresh process (a process has one SparkSession, and the test session is
`local[*]`), configured only by settings: IOT_SPARK_MASTER=spark://... or IOT_SPARK_REMOTE=sc://...,
a distinct IOT_LAKE_PREFIX, the same local S3. The same hour is materialised once here in local
mode, and the rows of the lakes must be the same.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pyspark
import pytest

from iot_assets.automation.jobs import ANOMALY_DETECTION, HOURLY_PIPELINE
from iot_assets.lib.partitions import HOUR
from iot_assets.lib.tables import named
from iot_assets.resources.config import resolved
from iot_assets.resources.lakehouse import DeltaLakehouse
from iot_assets.tools.demo import materialize_hours

pytestmark = pytest.mark.e2e

SPARK_HOME = Path(pyspark.__file__).parent
H = datetime(2026, 11, 13, 5, tzinfo=UTC)
TABLES = (
    ("silver_sensor_readings", "event_hour"),
    ("silver_rejected_readings", "event_hour"),
    ("device_hourly_stats", "event_hour"),
    ("sensor_aggregates_10min", "event_hour"),
)
# Connect runs every step, so its comparison also covers bronze, the models and the anomaly log.
CONNECT_TABLES = (
    *TABLES,
    ("bronze_sensor_readings", "event_hour"),
    ("bronze_quarantine", "batch_hour"),
    ("device_anomaly_models", "event_hour"),
    ("anomaly_log", "event_hour"),
)
VOLATILE = ("ingest_time", "trained_at", "artifact_uri")
CLUSTER_RUN = """
import sys
from datetime import datetime
from iot_assets.tools.demo import materialize_hours
from iot_assets.resources.config import resolved
hour = datetime.fromisoformat(sys.argv[1])
result = materialize_hours(hour, hour)
sc = resolved("spark").session.sparkContext
print("MASTER", sc.master, "EXECUTORS", sc._jsc.sc().getExecutorMemoryStatus().size() - 1, flush=True)
resolved("spark").session.stop()  # the application finishes, and the JVM exits with this process
sys.exit(0 if result.success else 1)
"""
CONNECT_RUN = """
import sys
from datetime import datetime
from pyspark import SparkContext
from iot_assets.automation.jobs import ANOMALY_DETECTION, HOURLY_PIPELINE
from iot_assets.tools.demo import materialize_hours
from iot_assets.resources.config import resolved
from iot_assets.resources.spark import is_connect
hour = datetime.fromisoformat(sys.argv[1])
result = materialize_hours(hour, hour, selection=HOURLY_PIPELINE | ANOMALY_DETECTION)
print("CONNECT", is_connect(resolved("spark").session), "JVM", SparkContext._jvm is not None, flush=True)
sys.exit(0 if result.success else 1)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spark_class(log: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_DAEMON_MEMORY": "512m"}
    with open(log, "w") as out:
        return subprocess.Popen(
            [str(SPARK_HOME / "bin/spark-class"), *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _master_state(web_port: int) -> dict:
    """The master's state from its web UI's JSON endpoint; while the UI is still starting, that
    path can answer with the HTML page (seen once in CI), which counts as not ready."""
    with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/json/", timeout=5) as r:
        text = r.read().decode("utf-8", "replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return {"status": None, "workers": [], "aliveworkers": 0}


def _wait(what: str, ready, seconds: float = 120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(1)
    raise TimeoutError(f"{what} not ready after {seconds:.0f} s")


@pytest.fixture(scope="module")
def standalone_cluster(tmp_path_factory):
    logs = tmp_path_factory.mktemp("spark-standalone")
    port, web = _free_port(), _free_port()
    url = f"spark://127.0.0.1:{port}"
    procs = [
        _spark_class(
            logs / "master.log",
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--webui-port",
            str(web),
        )
    ]
    try:
        _wait("Spark master", lambda: _master_state(web)["status"] == "ALIVE")
        for i in range(2):
            procs.append(
                _spark_class(
                    logs / f"worker{i}.log",
                    "org.apache.spark.deploy.worker.Worker",
                    url,
                    "--host",
                    "127.0.0.1",
                    "--cores",
                    "1",
                    "--memory",
                    "1g",
                    "--webui-port",
                    str(_free_port()),
                    "--work-dir",
                    str(logs / f"work{i}"),
                )
            )
        _wait("two Spark workers", lambda: sum(w["state"] == "ALIVE" for w in _master_state(web)["workers"]) == 2)
        yield url, web
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def _plain(value):
    # Aggregates sum in the order shuffle blocks arrive, which differs between local mode and a
    # cluster; doubles then differ in their last bits, and nothing else may differ.
    return round(value, 9) if isinstance(value, float) else value


def rows(spark, lake, table, column):
    df = lake.read_window(spark, named(table), H, H + HOUR)
    keep = [c for c in df.columns if c not in VOLATILE]
    return sorted(tuple(_plain(v) for v in r) for r in df.select(keep).collect())


@pytest.fixture(scope="module")
def local_hour(resources):
    """The hour materialised here in local mode on a fresh lake, as the other side's is; both tests
    compare to it. (The default prefix may hold earlier hours from other tests in this process, and
    then the models would have history that the other side lacks.)"""
    from iot_assets.definitions import defs

    default = resolved("lake")
    lake = DeltaLakehouse(bucket=default.bucket, prefix=f"local{uuid.uuid4().hex[:8]}")
    assert materialize_hours(
        H, H, resources={**defs.resources, "lake": lake}, selection=HOURLY_PIPELINE | ANOMALY_DETECTION
    ).success
    return lake


def _run_elsewhere(script: str, env: dict, log: Path) -> str:
    # Output to a file, not a pipe: a pipe stays open while any child (the JVM) lives.
    with log.open("w") as out:
        run = subprocess.run(
            [sys.executable, "-c", script, H.isoformat()], env=env, stdout=out, stderr=subprocess.STDOUT, timeout=900
        )
    output = log.read_text()
    assert run.returncode == 0, output[-8000:]
    return output


def _assert_same_rows(spark, local, prefix, tables):
    there = DeltaLakehouse(bucket=local.bucket, prefix=prefix)
    assert local.prefix != prefix
    counts = {}
    for table, column in tables:
        mine, theirs = rows(spark, local, table, column), rows(spark, there, table, column)
        assert mine == theirs, f"{table}: local mode and {prefix} differ"
        counts[table] = len(mine)
    return counts


def test_cluster_run_matches_local_mode(standalone_cluster, local_hour, spark, tmp_path):
    url, web = standalone_cluster
    prefix = f"cluster{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "IOT_SPARK_MASTER": url,
        "IOT_LAKE_PREFIX": prefix,
        "IOT_SPARK_DRIVER_MEMORY": "1g",
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
    }
    began = time.monotonic()
    output = _run_elsewhere(CLUSTER_RUN, env, tmp_path / "cluster-run.log")
    assert f"MASTER {url} EXECUTORS 2" in output
    cluster_seconds = time.monotonic() - began
    [app] = _master_state(web)["completedapps"]
    assert app["name"] == "iot_assets" and app["state"] == "FINISHED"
    counts = _assert_same_rows(spark, local_hour, prefix, TABLES)
    assert all(counts.values()), counts
    print(f"cluster run (incl. JVM start) {cluster_seconds:.0f} s")


@pytest.fixture(scope="module")
def connect_server(resources, tmp_path_factory):
    from iot_assets.tools import connect_server as cs

    server = cs.start(resolved("spark").conf(), _free_port(), tmp_path_factory.mktemp("spark-connect") / "server.log")
    try:
        yield server
    finally:
        server.stop()


def test_spark_connect_run_matches_local_mode(connect_server, local_hour, spark, tmp_path):
    """raw -> bronze -> silver -> gold -> models -> anomaly log through a Connect server, with no JVM
    in the run's process."""
    prefix = f"connect{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "IOT_SPARK_REMOTE": connect_server.url, "IOT_LAKE_PREFIX": prefix}
    began = time.monotonic()
    output = _run_elsewhere(CONNECT_RUN, env, tmp_path / "connect-run.log")
    assert "CONNECT True JVM False" in output, output[-4000:]
    connect_seconds = time.monotonic() - began
    counts = _assert_same_rows(spark, local_hour, prefix, CONNECT_TABLES)
    # The hour is each device's first, so its models are `learning` and its log holds only what the
    # threshold rules find; every other table has rows.
    assert all(n for table, n in counts.items() if table != "anomaly_log"), counts
    assert counts["device_anomaly_models"] == resolved("raw_source").device_count, counts
    print(f"Connect run {connect_seconds:.0f} s, rows {counts}")


def test_the_package_shipped_to_executors_holds_this_package_only(spark):
    import zipfile

    from iot_assets.resources.spark import ship_package

    with zipfile.ZipFile(ship_package(spark)) as z:
        names = z.namelist()
    assert "iot_assets/definitions.py" in names and "iot_assets/assets/anomalies.py" in names
    assert all(n.startswith("iot_assets/") and "__pycache__" not in n for n in names), names[:5]
