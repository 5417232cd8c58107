"""Endpoints that time out: each arrival sensor skips with a reason and keeps its cursor.

(Kinesis `put_records` partial failures, resent exactly once: `test_kinesis.py`.)
"""

import time

import pytest
from dagster import AssetMaterialization, DagsterInstance, SkipReason, build_sensor_context

from iot_assets.automation.kinesis_arrivals import KinesisCursor, kinesis_arrival_sensor
from iot_assets.automation.s3_arrivals import LandingCursor, s3_landing_sensor
from iot_assets.resources.aws import AwsResource
from iot_assets.resources.landing import LandingZone
from iot_assets.resources.raw_source import RawSource
from iot_assets_tests.netfaults import SilentServer


@pytest.fixture()
def silent():
    server = SilentServer()
    yield server
    server.stop()


@pytest.fixture()
def instance():
    with DagsterInstance.ephemeral() as inst:
        inst.report_runless_asset_event(AssetMaterialization("device_registry"))
        yield inst


def hanging_aws(url: str) -> AwsResource:
    return AwsResource(endpoint_url=url, connect_timeout=1, read_timeout=1, max_attempts=1)


def _tick(sensor_def, instance, cursor, resources):
    began = time.monotonic()
    with build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        result = sensor_def(context)
        return result, context.cursor, time.monotonic() - began


def test_kinesis_sensor_skips_and_keeps_its_cursor(silent, instance):
    cursor = KinesisCursor(
        stream="arn:aws:kinesis:us-east-1:1:stream/s@1",
        positions={"shardId-000000000000": "4955"},
        pending=["2026-11-21-10:00"],
    ).encode()
    result, after, seconds = _tick(
        kinesis_arrival_sensor,
        instance,
        cursor,
        {"raw_source": RawSource(source="kinesis", stream="s"), "aws": hanging_aws(silent.url)},
    )
    assert isinstance(result, SkipReason)
    assert "kinesis endpoint " + silent.url in result.skip_message and "ReadTimeout" in result.skip_message
    assert after == cursor
    assert silent.conns and seconds < 20


def test_s3_sensor_skips_and_keeps_its_cursor(silent, instance):
    cursor = LandingCursor(
        mark="2026-11-21T10:30:07+00:00", seen=[["landing/a", "e1"]], pending=["2026-11-21-10:00"]
    ).encode()
    landing = LandingZone(aws=hanging_aws(silent.url), bucket="iot-test-lake", prefix="landing")
    result, after, seconds = _tick(s3_landing_sensor, instance, cursor, {"landing": landing, "raw_source": RawSource()})
    assert isinstance(result, SkipReason) and "s3 endpoint " + silent.url in result.skip_message
    assert after == cursor
    assert silent.conns and seconds < 20


def test_every_spark_asset_retries_by_the_settings():
    from iot_assets.definitions import defs
    from iot_assets.resources.spark import SPARK_RETRY_POLICY

    graph = defs.get_repository_def().asset_graph
    spark_assets = {
        defs.get_assets_def(k)
        for k in graph.get_all_asset_keys()
        if "spark" in graph.get(k).kinds and graph.get(k).is_executable
    }
    assert len(spark_assets) >= 7
    assert {a.op.name: a.op.retry_policy for a in spark_assets} == {a.op.name: SPARK_RETRY_POLICY for a in spark_assets}
    assert SPARK_RETRY_POLICY.max_retries == 2 and SPARK_RETRY_POLICY.delay == 1  # conftest: 1 s in tests
