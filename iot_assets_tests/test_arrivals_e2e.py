"""The arrival ledger end to end: one hour fed by Kinesis and by landed files, on the local stack.

An hour's raw data is the union of everything that arrived for it, from every source: a run of
one source adds to the hour and never replaces another's; running a source again adds nothing.
Landed files are placed by one rule at any depth under the prefix, take the stream's lateness
rule, and a key that names no valid hour becomes a quarantine row that names it.
"""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from dagster import AssetSelection

from iot_assets.assets.raw import landing_batches
from iot_assets.lib import partitions, reasons
from iot_assets.lib.partitions import HOUR, hour_key, hour_of
from iot_assets.lib.tables import named
from iot_assets.resources.config import resolved
from iot_assets.resources.io_managers import S3KinesisRawIOManager
from iot_assets.resources.kinesis import put_all
from iot_assets.resources.lakehouse import DeltaLakehouse
from iot_assets.resources.landing import LandingZone
from iot_assets.resources.raw_source import RawSource
from iot_assets.tools.demo import materialize_hours
from iot_assets.tools.simulator import FleetConfig, device_registry

pytestmark = pytest.mark.e2e

LATENESS = timedelta(minutes=180)
TO_SILVER = AssetSelection.groups("raw", "bronze", "silver")


def reading(device: str, at: datetime) -> bytes:
    return json.dumps(
        {
            "device_id": device,
            "timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "temperature": 21.5,
            "humidity": 40.0,
            "pressure": 1.01,
            "vibration": 0.5,
            "battery_level": 90.0,
            "signal_strength": -60.0,
            "status": "normal",
        }
    ).encode()


@pytest.fixture(scope="module")
def fed(resources, spark, local_aws):
    from iot_assets.definitions import defs
    from iot_assets.resources.aws import make_client

    uid = uuid.uuid4().hex[:8]
    now = datetime.now(UTC)
    hour = hour_of(now) - 2 * HOUR  # complete, and within the lateness of records sent now
    aws, bucket = resolved("aws"), resolved("lake").bucket
    devices = [d.device_id for d in device_registry(FleetConfig(device_count=12))]
    stream = f"ledger-{uid}"
    kinesis = make_client("kinesis", local_aws, "us-east-1")
    kinesis.create_stream(StreamName=stream, ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    missing_status = json.dumps({**json.loads(reading(devices[5], hour + timedelta(minutes=20))), "status": None})
    sent = [reading(devices[i], hour + timedelta(minutes=5 + i)) for i in range(5)] + [missing_status.encode()]
    put_all(kinesis, stream, sent, [str(i) for i in range(6)])

    landing = LandingZone(aws=aws, bucket=bucket, prefix=f"landing-{uid}")
    d, h, nxt = f"{hour:%Y-%m-%d}", f"{hour:%H}", hour + HOUR

    def land(key: str, lines: list[bytes]):
        aws.s3.put_object(Bucket=bucket, Key=f"{landing.prefix}/{key}", Body=b"\n".join(lines) + b"\n")

    land(
        f"dt={d}/hour={h}/a.jsonl",
        [reading(devices[6], hour + timedelta(minutes=30)), reading(devices[7], hour + timedelta(minutes=31))],
    )
    land(
        f"producerA/dt={d}/hour={h}/b.jsonl",
        [reading(devices[8], hour + timedelta(minutes=32)), reading(devices[9], hour + timedelta(minutes=33))],
    )
    # Firehose's arrival-hour layout: a reading of 59:50 in the next hour's folder, landed within the lateness
    land(
        f"{nxt:%Y/%m/%d/%H}/late.jsonl",
        [
            reading(devices[10], hour + timedelta(minutes=59, seconds=50)),
            reading(devices[11], nxt + timedelta(minutes=5)),
        ],
    )
    land(f"dt={d}/hour=25/c.jsonl", [reading(devices[0], hour + timedelta(minutes=40))])

    base = resolved("raw_source")
    source = {
        "kinesis": RawSource(
            **{**base.model_dump(), "source": "kinesis", "stream": stream, "allowed_lateness_minutes": 180}
        ),
        "s3_landing": RawSource(**{**base.model_dump(), "source": "s3_landing", "allowed_lateness_minutes": 180}),
    }
    lake = DeltaLakehouse(bucket=bucket, prefix=f"ledger{uid}")
    raw_io = S3KinesisRawIOManager(aws=aws, bucket=bucket, prefix=f"raw-{uid}", stream=stream)

    def run(kind: str, at: datetime = hour, selection=TO_SILVER, registry=False):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(partitions, "utc_now", lambda: at + HOUR + LATENESS)
            return materialize_hours(
                at,
                at,
                resources={
                    **defs.resources,
                    "landing": landing,
                    "lake": lake,
                    "raw_io_manager": raw_io,
                    "raw_source": source[kind],
                },
                selection=selection,
                include_registry=registry,
            )

    results = {"kinesis": run("kinesis", registry=True), "landing": run("s3_landing")}
    return hour, run, results, lake, landing, raw_io


def _checks(result) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _raw(result) -> dict:
    return result.asset_materializations_for_node("raw_sensor_batches")[0].metadata


def _count(spark, lake, table, column, hour) -> int:
    return lake.read_window(spark, named(table), hour, hour + HOUR).count()


def test_a_second_source_adds_to_the_hour(fed, spark):
    hour, _, results, lake, _, raw_io = fed
    assert _raw(results["kinesis"])["records_per_hour"].value == {hour_key(hour): 6}
    # 6 from Kinesis + 2 + 2 (one nested under a producer's folder) + the late reading of the next folder
    assert _raw(results["landing"])["records_per_hour"].value == {hour_key(hour): 11}
    assert {o.source for o in raw_io.hour_objects(hour)} == {"kinesis", "s3_landing"}
    assert _count(spark, lake, "bronze_sensor_readings", "event_hour", hour) == 10
    assert _count(spark, lake, "bronze_quarantine", "batch_hour", hour) == 1
    assert _count(spark, lake, "silver_sensor_readings", "event_hour", hour) == 10
    for result in results.values():
        checks = _checks(result)
        assert checks["check_raw_reconciles_arrivals"].passed and checks["check_bronze_reconciles_raw"].passed
    arrivals = _raw(results["landing"])["arrivals_per_hour"].value[hour_key(hour)]
    assert arrivals["s3_landing"]["stored"] == 5 and arrivals["s3_landing"]["routed_elsewhere"] == 1
    assert "kinesis" not in arrivals  # the landing run stored only what landed


def test_running_a_source_again_adds_nothing(fed):
    hour, run, _, _, _, raw_io = fed
    before = {o.key: o.records for o in raw_io.hour_objects(hour)}
    for kind in ("kinesis", "s3_landing"):
        again = run(kind, selection=AssetSelection.groups("raw"))
        assert _raw(again)["records_per_hour"].value == {hour_key(hour): 11}
        assert _checks(again)["check_raw_reconciles_arrivals"].passed
    assert {o.key: o.records for o in raw_io.hour_objects(hour)} == before


def test_the_next_hour_keeps_only_its_own_records_of_an_early_file(fed):
    hour, _, _, _, landing, _ = fed
    [batch] = landing_batches(hour + HOUR, landing, LATENESS)
    assert len(batch.payloads) == 1 and batch.routed_elsewhere == 1


def test_a_key_naming_no_valid_hour_is_a_quarantine_row_that_names_it(fed, spark):
    _, run, _, _, landing, raw_io = fed
    # Where the unplaced object arrived: the hour it was landed in, which is not always the test's own.
    listed = landing.aws.s3.list_objects_v2(Bucket=landing.bucket, Prefix=f"{landing.prefix}/")["Contents"]
    [unplaced] = [o for o in listed if "/hour=25/" in o["Key"]]
    modified = hour_of(unplaced["LastModified"].astimezone(UTC))
    result = run("s3_landing", at=modified, selection=AssetSelection.groups("raw"))
    checks = _checks(result)
    assert not checks["check_landing_keys_name_an_hour"].passed
    assert checks["check_landing_keys_name_an_hour"].metadata["unplaced_objects"].value == 1
    # The hour it landed in is still open, so Dagster maps no raw partition to its bronze step:
    # the step fails loudly instead of reading an empty hour ...
    with pytest.raises(Exception, match="no raw partition maps to this step"):
        run("s3_landing", at=modified, selection=AssetSelection.groups("raw", "bronze"))
    # ... and bronze's own parse of that raw hour shows the row it will write once the hour closes.
    from iot_assets.assets.bronze import parse_raw, read_raw, split_bronze

    good, bad = split_bronze(parse_raw(read_raw(spark, raw_io.hour_objects(modified))))
    assert good.count() == 0
    [row] = bad.collect()
    assert row["reason"] == reasons.UNPLACED_OBJECT and "hour=25 is not a valid hour" in row["reason_detail"]
    assert f"{landing.prefix}/dt=" in row["reason_detail"] and row["arrival_id"].startswith("s3://")
