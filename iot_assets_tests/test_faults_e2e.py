"""Faults during bronze's Delta write, on the local stack: S3 goes away mid-write, and a run is SIGKILLed.

Either way the table keeps no commit of the failed attempt, the next run of the partition
succeeds, and the table holds each record once. Data files the failed attempt had already
uploaded stay under the table's prefix as orphans: no commit names them, so no reader sees them,
and VACUUM removes them once past retention.
"""

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import urlparse

import pytest
from dagster import AssetSelection, DagsterEventType, DagsterInstance

from iot_assets.lib.partitions import HOUR as ONE_HOUR
from iot_assets.lib.partitions import raw_key
from iot_assets.lib.tables import named
from iot_assets.resources.aws import AwsResource
from iot_assets.resources.config import resolved
from iot_assets.resources.io_managers import S3KinesisRawIOManager
from iot_assets.resources.lakehouse import DeltaLakehouse
from iot_assets.resources.spark import SPARK_RETRY_POLICY
from iot_assets.tools.demo import materialize_hours
from iot_assets.tools.local_aws import ensure_resources
from iot_assets_tests.netfaults import TcpProxy

pytestmark = pytest.mark.e2e

# Bronze is the first Delta write of an hour's run and needs no registry: the faults strike there.
TO_BRONZE = AssetSelection.groups("raw", "bronze")
FILES_PER_WRITE = 40  # rows per data file: bronze uploads several files, so a fault can land between them


def keys(s3, bucket: str, prefix: str) -> list[str]:
    return [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    ]


def commits(s3, bucket: str, table_prefix: str) -> list[str]:
    return [k for k in keys(s3, bucket, f"{table_prefix}/_delta_log/") if k.endswith(".json")]


def data_files(s3, bucket: str, table_prefix: str) -> set[str]:
    return {k for k in keys(s3, bucket, f"{table_prefix}/") if k.endswith(".parquet")}


def wait_for_data_file(s3, bucket: str, table_prefix: str, timeout: float, alive=lambda: True) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        if data_files(s3, bucket, table_prefix):
            return True
        time.sleep(0.05)
    return False


def referenced(spark, lake: DeltaLakehouse, table: str) -> set[str]:
    """The data files the table's current snapshot names, as keys."""
    return {urlparse(f).path.lstrip("/") for f in spark.read.format("delta").load(lake.uri(table)).inputFiles()}


def raw_records(s3, bucket: str, hour: datetime) -> int:
    """The records the hour's raw objects hold, as the raw IO manager stored them."""
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=raw_key("raw", hour, ""))["Contents"]
    return sum(int(s3.head_object(Bucket=bucket, Key=o["Key"])["Metadata"]["records"]) for o in listed)


def assert_one_copy_of_each_record(spark, lake: DeltaLakehouse, hour: datetime, raw_records: int) -> None:
    bronze = lake.read_window(spark, named("bronze_sensor_readings"), hour, hour + ONE_HOUR)
    quarantine = lake.read_window(spark, named("bronze_quarantine"), hour, hour + ONE_HOUR)
    assert bronze.count() + quarantine.count() == raw_records
    assert bronze.select("source_object", "record_index").distinct().count() == bronze.count()


# ------------------------------------------------------------------ S3 stops in the middle of a write


class EndpointFailsDuringBronzeWrite(DeltaLakehouse):
    """Takes the S3 endpoint down as soon as bronze's write has uploaded its first data file."""

    def write_window(self, df, table, window, **kwargs):
        proxy = OUTAGE.pop("proxy", None) if table.name == "bronze_sensor_readings" else None
        if proxy is not None:
            s3, prefix = resolved("aws").s3, f"{self.prefix}/{table.name}"

            def cut():
                if wait_for_data_file(s3, self.bucket, prefix, timeout=300):
                    proxy.stop()
                OUTAGE["cut_at"] = time.monotonic()

            threading.Thread(target=cut, daemon=True).start()
        return super().write_window(df, table, window, **kwargs)


OUTAGE: dict = {}
HOUR_A = datetime(2026, 11, 10, 12, tzinfo=UTC)


def test_s3_outage_mid_write_fails_clearly_is_retried_and_a_rerun_succeeds(resources, spark, local_aws):
    from iot_assets.definitions import defs

    main_port = urlparse(local_aws).port
    proxy = TcpProxy(main_port)
    bucket, lake_prefix = f"iot-fault-{uuid.uuid4().hex[:8]}", "lake"
    ensure_resources(local_aws, "us-east-1", bucket, os.environ["IOT_KINESIS_STREAM"], 1)
    # Spark reaches this bucket through the proxy; one attempt per call, so an outage fails fast.
    hconf = spark.sparkContext._jsc.hadoopConfiguration()
    for key, value in {
        "endpoint": proxy.url,
        "attempts.maximum": "1",
        "retry.limit": "1",
        "connection.establish.timeout": "2s",
        "connection.timeout": "5s",
    }.items():
        hconf.set(f"fs.s3a.bucket.{bucket}.{key}", value)
    aws = AwsResource(endpoint_url=proxy.url, connect_timeout=2, read_timeout=10, max_attempts=1)
    lake = EndpointFailsDuringBronzeWrite(bucket=bucket, prefix=lake_prefix, max_records_per_file=FILES_PER_WRITE)
    res = {
        **defs.resources,
        "aws": aws,
        "lake": lake,
        "raw_io_manager": S3KinesisRawIOManager(aws=aws, bucket=bucket, stream=os.environ["IOT_KINESIS_STREAM"]),
    }
    s3, table_prefix = resolved("aws").s3, f"{lake_prefix}/bronze_sensor_readings"
    instance = DagsterInstance.ephemeral()
    try:
        OUTAGE["proxy"] = proxy
        failed = materialize_hours(
            HOUR_A,
            HOUR_A,
            instance=instance,
            resources=res,
            selection=TO_BRONZE,
            include_registry=False,
            raise_on_error=False,
        )
        assert not failed.success and "cut_at" in OUTAGE
        events = instance.all_logs(failed.run_id)
        retries = [
            e for e in events if e.dagster_event and e.dagster_event.event_type == DagsterEventType.STEP_UP_FOR_RETRY
        ]
        step_failures = [
            e.dagster_event
            for e in events
            if e.dagster_event and e.dagster_event.event_type == DagsterEventType.STEP_FAILURE
        ]
        assert len(retries) == SPARK_RETRY_POLICY.max_retries
        assert {e.step_key for e in step_failures} == {"bronze"}
        message = step_failures[0].step_failure_data.error.to_string()
        assert f"127.0.0.1:{proxy.port}" in message, message[:2000]
        assert failed.get_asset_materialization_events()  # the raw batch landed before the outage
        orphans = data_files(s3, bucket, table_prefix)
        assert orphans and not commits(s3, bucket, table_prefix)  # files uploaded, nothing committed

        restarted = TcpProxy(main_port, port=proxy.port)  # S3 is back
        try:
            rerun = materialize_hours(
                HOUR_A,
                HOUR_A,
                instance=instance,
                resources={
                    **res,
                    "lake": DeltaLakehouse(bucket=bucket, prefix=lake_prefix, max_records_per_file=FILES_PER_WRITE),
                },
                selection=AssetSelection.groups("bronze"),
                include_registry=False,
            )
            assert rerun.success
            assert len(commits(s3, bucket, table_prefix)) == 1
            assert not referenced(spark, lake, "bronze_sensor_readings") & orphans
            raw = raw_records(s3, bucket, HOUR_A)
            assert_one_copy_of_each_record(spark, lake, HOUR_A, int(raw))
        finally:
            restarted.stop()
    finally:
        OUTAGE.clear()
        proxy.stop()
        instance.dispose()


# ------------------------------------------------------------------ SIGKILL during a Delta write

CHILD = """
import sys
from dagster import AssetSelection
TO_BRONZE = AssetSelection.groups("raw", "bronze")
from datetime import datetime
from dagster import DagsterInstance
from iot_assets.tools.demo import materialize_hours
from iot_assets.lib.tables import named
hour = datetime.fromisoformat(sys.argv[1])
materialize_hours(hour, hour, instance=DagsterInstance.ephemeral(), include_registry=False, selection=TO_BRONZE)
"""
HOUR_K = datetime(2026, 11, 18, 7, tzinfo=UTC)


def test_a_run_killed_during_a_delta_write_leaves_no_commit_and_the_rerun_is_exact(resources, spark, tmp_path):
    from iot_assets.definitions import defs

    lake = DeltaLakehouse(
        bucket=resolved("lake").bucket, prefix=f"k{uuid.uuid4().hex[:8]}", max_records_per_file=FILES_PER_WRITE
    )
    s3, bronze_prefix = resolved("aws").s3, f"{lake.prefix}/bronze_sensor_readings"
    env = {
        **os.environ,
        "IOT_LAKE_PREFIX": lake.prefix,
        "IOT_DELTA_MAX_RECORDS_PER_FILE": str(FILES_PER_WRITE),
        "IOT_SPARK_DRIVER_MEMORY": "1g",
    }
    log = tmp_path / "child.log"
    with open(log, "wb") as out:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, HOUR_K.isoformat()],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        landed = wait_for_data_file(s3, lake.bucket, bronze_prefix, timeout=540, alive=lambda: child.poll() is None)
        assert landed, log.read_text()[-3000:]
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)  # the run process and its Spark JVM
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    orphans = data_files(s3, lake.bucket, bronze_prefix)
    assert orphans and not commits(s3, lake.bucket, bronze_prefix)

    rerun = materialize_hours(
        HOUR_K, HOUR_K, resources={**defs.resources, "lake": lake}, selection=TO_BRONZE, include_registry=False
    )
    assert rerun.success
    assert len(commits(s3, lake.bucket, bronze_prefix)) == 1
    assert not referenced(spark, lake, "bronze_sensor_readings") & orphans
    raw = raw_records(s3, lake.bucket, HOUR_K)
    assert_one_copy_of_each_record(spark, lake, HOUR_K, int(raw))
