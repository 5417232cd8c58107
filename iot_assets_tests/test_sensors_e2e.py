"""End to end: the fleet's records go into Kinesis, a sensor tick requests their hour, the run drains
exactly that hour, and its rows appear in silver and gold.

The records are the previous hour's, delivered now, late but within a 3-hour allowed lateness:
that hour is already a partition, and the raw asset must place them by their event time. The
clock the sensor and the raw asset consult is moved to the end of that lateness, so the test need
not wait. It measures the rest of the way: from the sensor's tick to the rows being readable in
gold, which is what a record waits once its hour is complete.
"""

import json
import time
import uuid
from datetime import UTC, datetime

import pytest
from dagster import AssetMaterialization, DagsterInstance, build_sensor_context, materialize
from pyspark.sql import functions as F

from iot_assets.assets.registry import device_registry
from iot_assets.automation.kinesis_arrivals import kinesis_arrival_sensor
from iot_assets.lib import partitions
from iot_assets.lib.partitions import HOUR, hour_key, hour_of, parse_hour_key
from iot_assets.lib.tables import named
from iot_assets.resources.aws import AwsResource, make_client
from iot_assets.resources.config import resolved
from iot_assets.resources.kinesis import event_hour_of, put_all
from iot_assets.resources.raw_source import RawSource
from iot_assets.tools.demo import materialize_hours
from iot_assets.tools.simulator import simulate_hour

pytestmark = pytest.mark.e2e


@pytest.fixture()
def stream(local_aws):
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    kinesis = make_client("kinesis", local_aws, "us-east-1")
    kinesis.create_stream(StreamName=name, ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    yield kinesis, name
    kinesis.delete_stream(StreamName=name)


def test_kinesis_records_reach_gold(stream, resources, spark, local_aws, monkeypatch, record_property):
    kinesis, name = stream
    # Two hours back: complete, within the lateness of records sent now, and clear of the hour's turn.
    hour = hour_of(datetime.now(UTC)) - 2 * HOUR
    base = resolved("raw_source")
    source = RawSource(**{**base.model_dump(), "source": "kinesis", "stream": name, "allowed_lateness_minutes": 180})
    sim = simulate_hour(hour, source.fleet)
    put_all(kinesis, name, [r.encode() for r in sim.records], sim.partition_keys)
    sent_hour = hour_of(datetime.now(UTC))  # where records without a usable timestamp arrive
    # Unreadable, much later or future timestamps go to their arrival hour, where bronze quarantines them.
    in_hour = sum(event_hour_of(r.encode()) == hour for r in sim.records)

    run_resources = {**resources, "raw_source": source}
    assert materialize([device_registry], resources=run_resources).success  # as in a running deployment
    with DagsterInstance.ephemeral() as instance:
        instance.report_runless_asset_event(AssetMaterialization("device_registry"))
        sensor_resources = {"raw_source": source, "aws": AwsResource(endpoint_url=local_aws)}
        early = kinesis_arrival_sensor(build_sensor_context(instance=instance, resources=sensor_resources))
        assert early.run_requests == []

        monkeypatch.setattr(partitions, "utc_now", lambda: hour + HOUR + source.lateness)
        began = time.monotonic()
        tick = kinesis_arrival_sensor(
            build_sensor_context(instance=instance, cursor=early.cursor, resources=sensor_resources)
        )
        [request] = tick.run_requests
        assert (request.partition_key, request.run_key) == (hour_key(hour), f"kinesis:{hour_key(hour)}")
        # the current hour holds the records whose timestamps were unreadable or far off (if the simulated
        # hour has any); it is not complete
        off_hour = len(sim.records) - in_hour
        assert json.loads(tick.cursor)["pending"] == ([hour_key(sent_hour)] if off_hour else [])

        requested = parse_hour_key(request.partition_key)
        result = materialize_hours(requested, requested, resources=run_resources, include_registry=False)
        assert result.success
    lake = resolved("lake")
    gold = lake.read_window(spark, named("device_hourly_stats"), hour, hour + HOUR)
    n_gold = gold.agg(F.sum("reading_count")).first()[0]
    latency = time.monotonic() - began

    raw = result.asset_materializations_for_node("raw_sensor_batches")[0].metadata["records_per_hour"].value
    assert raw == {hour_key(hour): in_hour}  # exactly the hour's records
    silver = lake.read_window(spark, named("silver_sensor_readings"), hour, hour + HOUR)
    assert silver.count() == n_gold == sim.valid_readings
    assert silver.where(F.col("kinesis_sequence_number").isNull()).count() == 0
    assert gold.count() == source.device_count
    record_property("tick_to_gold_seconds", round(latency, 1))
    print(f"\nKinesis sensor tick -> rows readable in gold: {latency:.1f} s")
