"""Session fixtures: one moto server on a free 127.0.0.1 port and one SparkSession per test process.

The environment is pointed at the test endpoint before anything reads settings, so the code under
test takes exactly the path it takes in production: EnvVar-driven resources, real sockets.
"""

from __future__ import annotations

import os
import socket
import uuid

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_PORT = _free_port()
os.environ.update({
    "IOT_AWS_ENDPOINT_URL": f"http://127.0.0.1:{_PORT}",
    "IOT_BUCKET": "iot-test-lake",
    "IOT_KINESIS_STREAM": "iot-test-readings",
    "IOT_DEVICE_COUNT": "12",
    "IOT_READINGS_PER_HOUR": "30",
    "IOT_SPARK_SHUFFLE_PARTITIONS": "4",
    "IOT_SIMULATOR_ANOMALY_RATE": "0.25",
    # A retried Spark step waits this long in tests (20 s by default), so a fault test stays short.
    "IOT_SPARK_STEP_RETRY_DELAY_SECONDS": "1",
})


@pytest.fixture(scope="session")
def local_aws():
    from iot_assets import local_aws as la

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
