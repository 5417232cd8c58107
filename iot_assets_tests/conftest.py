"""Session fixtures: one moto server on a free 127.0.0.1 port and one SparkSession per test process.

The environment is pointed at the test endpoint before anything reads settings, so the code under
test takes exactly the path it takes in production: EnvVar-driven resources, real sockets.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ROOT = Path(__file__).resolve().parents[1]
_PORT = _free_port()
os.environ.update(
    {
        "IOT_AWS_ENDPOINT_URL": f"http://127.0.0.1:{_PORT}",
        "IOT_BUCKET": "iot-test-lake",
        "IOT_KINESIS_STREAM": "iot-test-readings",
        "IOT_DEVICE_COUNT": "12",
        "IOT_READINGS_PER_HOUR": "30",
        "IOT_SPARK_SHUFFLE_PARTITIONS": "4",
        "IOT_SIMULATOR_ANOMALY_RATE": "0.25",
        # A retried Spark step waits this long in tests (20 s by default), so a fault test stays short.
        "IOT_SPARK_STEP_RETRY_DELAY_SECONDS": "1",
    }
)


# The longest test files start first, so that with several test processes (`make test`) none of
# them is left running a long file alone at the end.
SLOWEST_FIRST = (
    "test_anomalies_e2e.py",
    "test_spark_cluster.py",
    "test_pipeline_e2e.py",
    "test_concurrent_writers.py",
    "test_faults_e2e.py",
    "test_ui_browser.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(scope="session")
def local_aws():
    from iot_assets.tools import local_aws as la

    server = la.start_server(_PORT)
    la.ensure_from_settings()
    yield os.environ["IOT_AWS_ENDPOINT_URL"]
    server.stop()


@pytest.fixture(scope="session")
def spark(local_aws):
    from iot_assets.resources.config import resolved

    return resolved("spark").session


@pytest.fixture(scope="session")
def resources(local_aws):
    from iot_assets.definitions import defs

    return defs.resources


@pytest.fixture()
def lake_prefix(resources, monkeypatch):
    """A fresh table prefix, so a test's Delta tables start empty."""
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL server on 127.0.0.1 (Debian's package, installed if missing); yields
    its DAGSTER_POSTGRES_* variables."""
    root = tempfile.mkdtemp(prefix="iot-pg-")
    os.chmod(root, 0o755)  # as root, the server runs as `postgres`, which must reach its directory
    data = f"{root}/pg"
    started = subprocess.run(
        [ROOT / "scripts/postgres_local.sh", "start", data, str(_free_port())],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert started.returncode == 0, f"could not install or start PostgreSQL:\n{started.stderr}"
    env = dict(line.removeprefix("export ").split("=", 1) for line in started.stdout.split("\n") if line)
    yield env
    subprocess.run([ROOT / "scripts/postgres_local.sh", "stop", data], capture_output=True, timeout=120)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def historian_db(postgres, local_aws):
    """A `historian` database and user on the test PostgreSQL server, its password in the local
    Secrets Manager; yields the HistorianSource settings and libpq parameters."""
    import psycopg2

    from iot_assets.resources.aws import make_client

    password, secret = uuid.uuid4().hex, f"iot-test/historian-{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(
        host=postgres["DAGSTER_POSTGRES_HOST"],
        port=postgres["DAGSTER_POSTGRES_PORT"],
        user=postgres["DAGSTER_POSTGRES_USER"],
        password=postgres["DAGSTER_POSTGRES_PASSWORD"],
        dbname="postgres",
    )
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("CREATE ROLE historian LOGIN PASSWORD %s", (password,))
        cur.execute("CREATE DATABASE historian OWNER historian")
    admin.close()
    make_client("secretsmanager", local_aws, "us-east-1").create_secret(
        Name=secret, SecretString=json.dumps({"username": "historian", "password": password})
    )
    port = postgres["DAGSTER_POSTGRES_PORT"]
    yield {
        "settings": {
            "jdbc_url": f"jdbc:postgresql://127.0.0.1:{port}/historian",
            "user": "historian",
            "secret_name": secret,
        },
        "libpq": {"host": "127.0.0.1", "port": port, "user": "historian", "password": password, "dbname": "historian"},
        "password": password,
    }
