"""Arrival sensors against the real local Kinesis stream and S3 bucket: cursors, duplicates, resharding,
same-second and rewritten objects. Each test gets its own stream or landing prefix."""

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from dagster import AssetMaterialization, DagsterInstance, SkipReason, build_sensor_context

from iot_assets.assets.raw import landing_batches
from iot_assets.automation.kinesis_arrivals import (
    KinesisCursor,
    forget_expired,
    kinesis_arrival_sensor,
    readable_shards,
    scan_stream,
)
from iot_assets.automation.s3_arrivals import (
    LANDING_RUN_CONFIG,
    LandingCursor,
    hours_fed,
    new_objects,
    s3_landing_sensor,
)
from iot_assets.lib import partitions, reasons
from iot_assets.lib.partitions import HOUR, complete_hours, hour_key, hour_of
from iot_assets.resources.aws import AwsResource, make_client
from iot_assets.resources.kinesis import list_all_shards, put_all
from iot_assets.resources.landing import LandedObject, LandingZone, Placement, feeds_hour, place
from iot_assets.resources.raw_source import RawSource

LATENESS = timedelta(minutes=10)


# ---------------------------------------------------------------- pure functions


def _shard(sid, parent=None, adjacent=None, closed=False):
    s = {"ShardId": sid, "SequenceNumberRange": {"StartingSequenceNumber": "1"}}
    if parent:
        s["ParentShardId"] = parent
    if adjacent:
        s["AdjacentParentShardId"] = adjacent
    if closed:
        s["SequenceNumberRange"]["EndingSequenceNumber"] = "9"
    return s


def test_children_wait_until_every_parent_is_read_to_its_end():
    shards = [
        _shard("p0", closed=True),
        _shard("p1", closed=True),
        _shard("c", "p0", "p1"),
        _shard("s1", "p0"),
        _shard("s2", "p0"),
    ]
    cursor = KinesisCursor()
    assert readable_shards(shards, cursor) == ["p0", "p1"]
    cursor.finished = ["p0"]
    assert readable_shards(shards, cursor) == ["p1", "s1", "s2"]
    cursor.finished = ["p0", "p1"]
    assert readable_shards(shards, cursor) == ["c", "s1", "s2"]


def test_a_child_whose_parents_have_expired_is_read():
    assert readable_shards([_shard("c", "gone-0", "gone-1")], KinesisCursor()) == ["c"]


def test_cursor_round_trips_and_forgets_expired_shards():
    cursor = KinesisCursor(
        stream="arn@1", positions={"a": "5", "b": "7"}, finished=["a", "old"], pending=["2026-11-21-10:00"]
    )
    assert KinesisCursor.decode(cursor.encode()) == cursor
    forget_expired(cursor, {"b"})
    assert cursor.positions == {"b": "7"} and cursor.finished == []


def test_an_hour_is_complete_after_its_end_plus_lateness():
    keys = ["2026-11-21-10:00", "2026-11-21-11:00", "2026-11-21-10:00"]
    at = datetime(2026, 11, 21, 11, 9, 59, tzinfo=UTC)
    assert complete_hours(keys, at, LATENESS) == ([], ["2026-11-21-10:00", "2026-11-21-11:00"])
    assert complete_hours(keys, at + timedelta(seconds=1), LATENESS) == (["2026-11-21-10:00"], ["2026-11-21-11:00"])


T0 = datetime(2026, 11, 21, 10, 30, 7, tzinfo=UTC)


def _obj(key, etag, at):
    return LandedObject(key, etag, at)


def test_same_second_objects_are_not_lost():
    a, b = _obj("landing/2026/11/21/10/a", "e1", T0), _obj("landing/2026/11/21/10/b", "e2", T0)
    new, cursor = new_objects([a], LandingCursor(), timedelta(minutes=5))
    assert new == [a]
    # b landed in the same second but was listed only after the first tick
    new, cursor = new_objects([a, b], cursor, timedelta(minutes=5))
    assert new == [b]
    # a plain "newer than the last LastModified" cursor would have skipped it
    assert [o for o in [a, b] if o.last_modified > T0] == []
    assert new_objects([a, b], cursor, timedelta(minutes=5))[0] == []


def test_rewritten_and_late_appearing_objects_are_new():
    a = _obj("landing/2026/11/21/10/a", "e1", T0)
    _, cursor = new_objects([a], LandingCursor(), timedelta(minutes=5))
    rewritten = _obj(a.key, "e9", T0 + timedelta(seconds=30))
    slow = _obj("landing/2026/11/21/10/slow", "e3", T0 - timedelta(minutes=2))  # upload began earlier
    ancient = _obj("landing/2026/11/21/09/x", "e4", T0 - timedelta(hours=1))
    new, cursor = new_objects([rewritten, slow, ancient], cursor, timedelta(minutes=5))
    assert sorted(o.key for o in new) == sorted([a.key, slow.key])


def test_landing_cursor_stays_within_the_overlap_window():
    cursor, listed = LandingCursor(), []
    for i in range(200):
        listed.append(_obj(f"landing/k{i}", f"e{i}", T0 + timedelta(seconds=30 * i)))
        new, cursor = new_objects(listed, cursor, timedelta(minutes=5))
        assert [o.key for o in new] == [f"landing/k{i}"]
    assert len(cursor.seen) <= 11 and len(cursor.encode()) < 2000


H10 = datetime(2026, 11, 21, 10, tzinfo=UTC)
MODIFIED = datetime(2026, 11, 22, 3, 17, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    "key,hour",
    [
        # every layout docs/automation.md documents, at the top of the prefix and nested under it
        ("landing/2026/11/21/10/stream-1-2026-11-21-10-59-01-abc.gz", H10),
        ("landing/dt=2026-11-21/hour=10/part-0.jsonl", H10),
        ("landing/producerA/dt=2026-11-21/hour=10/x.jsonl", H10),
        ("landing/plant-7/line 2/2026/11/21/10/fh.gz", H10),
        ("landing/a/b/c/dt=2026-11-21/hour=10/d/e.jsonl", H10),
    ],
)
def test_a_key_is_placed_in_the_hour_it_names(key, hour):
    assert place(key, MODIFIED) == Placement(hour)


@pytest.mark.parametrize(
    "key,named",
    [
        ("landing/readme.txt", "names no hour"),
        ("landing/producerA/part-0.jsonl", "names no hour"),
        ("landing/dt=2026-11-21/hour=25/x.jsonl", "dt=2026-11-21/hour=25 is not a valid hour"),
        ("landing/dt=2026-02-30/hour=12/x.jsonl", "dt=2026-02-30/hour=12 is not a valid hour"),
        ("landing/2026/13/45/99/bad", "2026/13/45/99 is not a valid hour"),
        ("landing/dt=2026-11-21/hour=7/x.jsonl", "names no hour"),
    ],
)
def test_a_key_naming_no_valid_hour_is_placed_where_it_arrived_with_a_reason(key, named):
    placed = place(key, MODIFIED)
    assert placed.hour == datetime(2026, 11, 22, 3, tzinfo=UTC)
    assert (
        placed.problem.startswith(f"{reasons.UNPLACED_OBJECT}: ") and named in placed.problem and key in placed.problem
    )


def test_an_early_object_of_the_next_hour_feeds_the_hour_before():
    obj = _obj("landing/2026/11/21/11/x.gz", "e", datetime(2026, 11, 21, 11, 4, tzinfo=UTC))
    assert feeds_hour(obj, H10, LATENESS) and feeds_hour(obj, H10 + HOUR, LATENESS)
    late = _obj("landing/2026/11/21/11/y.gz", "e", datetime(2026, 11, 21, 11, 10, tzinfo=UTC))
    assert not feeds_hour(late, H10, LATENESS) and feeds_hour(late, H10 + HOUR, LATENESS)
    assert hours_fed(obj, LATENESS) == [H10, H10 + HOUR] and hours_fed(late, LATENESS) == [H10 + HOUR]


# ---------------------------------------------------------------- Kinesis, through the local endpoint


@pytest.fixture()
def stream(local_aws):
    name = f"arrivals-{uuid.uuid4().hex[:8]}"
    kinesis = make_client("kinesis", local_aws, "us-east-1")
    kinesis.create_stream(StreamName=name, ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    yield kinesis, name
    kinesis.delete_stream(StreamName=name)


@pytest.fixture()
def instance():
    with DagsterInstance.ephemeral() as inst:
        inst.report_runless_asset_event(AssetMaterialization("device_registry"))
        yield inst


def _put(kinesis, name, n, tag):
    now = datetime.now(UTC).isoformat()
    payloads = [
        json.dumps({"device_id": f"dev-{i % 5}", "timestamp": now, "n": i, "tag": tag}).encode() for i in range(n)
    ]
    put_all(kinesis, name, payloads, [f"dev-{i % 5}" for i in range(n)])


def _everything(kinesis, name):
    """Every (shard, sequence) in the stream, read independently from TRIM_HORIZON."""
    out = set()
    for shard in list_all_shards(kinesis, name):
        it = kinesis.get_shard_iterator(StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")[
            "ShardIterator"
        ]
        records = kinesis.get_records(ShardIterator=it, Limit=10_000)["Records"]
        out |= {(shard["ShardId"], r["SequenceNumber"]) for r in records}
    return out


def test_cursor_advances_and_no_record_is_read_twice(stream):
    kinesis, name = stream
    cursor, visited = KinesisCursor(), []
    _put(kinesis, name, 120, "a")
    assert scan_stream(kinesis, name, cursor, LATENESS, lambda s, q: visited.append((s, q))).records == 120
    assert set(cursor.positions) == {s["ShardId"] for s in list_all_shards(kinesis, name)}
    assert scan_stream(kinesis, name, cursor, LATENESS, lambda s, q: visited.append((s, q))).records == 0
    _put(kinesis, name, 30, "b")
    assert scan_stream(kinesis, name, cursor, LATENESS, lambda s, q: visited.append((s, q))).records == 30
    assert len(visited) == len(set(visited)) == 150
    assert set(visited) == _everything(kinesis, name)


def test_reshard_is_followed_parents_first(stream):
    """Two shards merged into one: the closed parents are read to their end, then the child.

    Records are put only before the merge: moto routes later puts to the first shard whose hash
    range matches, closed or not, which real Kinesis never does. (moto also copies the parents'
    records into the child; they are distinct records there, with their own sequence numbers.)
    """
    kinesis, name = stream
    cursor, visited = KinesisCursor(), []
    _put(kinesis, name, 40, "read-before-merge")
    scan_stream(kinesis, name, cursor, LATENESS, lambda s, q: visited.append((s, q)))
    parents_ = set(cursor.positions)
    _put(kinesis, name, 20, "unread-in-parents")
    kinesis.update_shard_count(StreamName=name, TargetShardCount=1, ScalingType="UNIFORM_SCALING")
    tick = []
    scan_stream(kinesis, name, cursor, LATENESS, lambda s, q: tick.append((s, q)))
    children = {s["ShardId"] for s in list_all_shards(kinesis, name)} - parents_
    assert len(children) == 1 and set(cursor.finished) == parents_
    assert set(cursor.positions) == parents_ | children
    first_child = min(i for i, (s, _) in enumerate(tick) if s in children)
    assert sum(s in parents_ for s, _ in tick) == first_child == 20
    visited += tick
    assert len(visited) == len(set(visited)) and set(visited) == _everything(kinesis, name)
    assert scan_stream(kinesis, name, cursor, LATENESS).records == 0


def _kinesis_context(instance, name, local_aws, cursor=None):
    return build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={
            "raw_source": RawSource(source="kinesis", stream=name, allowed_lateness_minutes=10),
            "aws": AwsResource(endpoint_url=local_aws),
        },
    )


def test_an_hour_is_requested_once_when_complete(stream, instance, local_aws, monkeypatch):
    kinesis, name = stream
    _put(kinesis, name, 50, "a")
    hour = hour_of(datetime.now(UTC))
    result = kinesis_arrival_sensor(_kinesis_context(instance, name, local_aws))
    assert result.run_requests == []
    assert json.loads(result.cursor)["pending"] == [hour_key(hour)]

    monkeypatch.setattr(partitions, "utc_now", lambda: hour + HOUR + LATENESS)
    result = kinesis_arrival_sensor(_kinesis_context(instance, name, local_aws, result.cursor))
    assert [(r.partition_key, r.run_key) for r in result.run_requests] == [
        (hour_key(hour), f"kinesis:{hour_key(hour)}")
    ]
    again = kinesis_arrival_sensor(_kinesis_context(instance, name, local_aws, result.cursor))
    assert again.run_requests == [] and json.loads(again.cursor)["pending"] == []


def test_sensors_wait_for_the_registry(stream, local_aws):
    kinesis, name = stream
    with DagsterInstance.ephemeral() as bare:
        result = kinesis_arrival_sensor(_kinesis_context(bare, name, local_aws))
    assert isinstance(result, SkipReason) and "device_registry" in result.skip_message


# ---------------------------------------------------------------- S3 landing, through the local endpoint


@pytest.fixture()
def landing(resources, local_aws):
    import os

    return LandingZone(
        aws=AwsResource(endpoint_url=local_aws),
        bucket=os.environ["IOT_BUCKET"],
        prefix=f"landing-{uuid.uuid4().hex[:8]}",
    )


def _s3_tick(instance, landing, cursor=None):
    with build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"landing": landing, "raw_source": RawSource(allowed_lateness_minutes=10)},
    ) as context:
        return s3_landing_sensor(context)


def _land(landing, key, body):
    landing.aws.s3.put_object(Bucket=landing.bucket, Key=f"{landing.prefix}/{key}", Body=body)


def test_s3_sensor_finds_same_second_and_rewritten_objects(landing, instance, monkeypatch):
    hour = datetime(2026, 11, 20, 10, tzinfo=UTC)
    folder = f"{hour:%Y/%m/%d/%H}"
    monkeypatch.setattr(partitions, "utc_now", lambda: datetime.now(UTC))
    same_second = False
    for attempt in range(5):
        while datetime.now(UTC).microsecond > 200_000:  # start early in a second
            time.sleep(0.02)
        cursor = LandingCursor().encode()
        _land(landing, f"{folder}/a{attempt}.jsonl", b'{"n":1}\n')
        first = _s3_tick(instance, landing, cursor)
        _land(landing, f"{folder}/b{attempt}.jsonl", b'{"n":2}\n')
        heads = [
            landing.aws.s3.head_object(Bucket=landing.bucket, Key=f"{landing.prefix}/{folder}/{k}{attempt}.jsonl")
            for k in "ab"
        ]
        if heads[0]["LastModified"].replace(microsecond=0) == heads[1]["LastModified"].replace(microsecond=0):
            same_second = True
            break
    assert same_second, "could not land two objects in one second"
    second = _s3_tick(instance, landing, first.cursor)
    assert len(first.run_requests) == len(second.run_requests) == 1
    assert first.run_requests[0].partition_key == second.run_requests[0].partition_key == hour_key(hour)
    assert first.run_requests[0].run_key != second.run_requests[0].run_key
    assert second.run_requests[0].run_config == LANDING_RUN_CONFIG

    unchanged = _s3_tick(instance, landing, second.cursor)
    assert unchanged.run_requests == []
    _land(landing, f"{folder}/a{attempt}.jsonl", b'{"n":1}\n{"n":3}\n')  # rewritten in place
    rewritten = _s3_tick(instance, landing, unchanged.cursor)
    assert len(rewritten.run_requests) == 1
    assert rewritten.run_requests[0].run_key not in {first.run_requests[0].run_key, second.run_requests[0].run_key}


def test_s3_sensor_waits_for_the_current_hour(landing, instance):
    hour = hour_of(datetime.now(UTC))
    _land(landing, f"{hour:%Y/%m/%d/%H}/now.jsonl", b'{"n":1}\n')
    arrived = landing.objects()[0].last_modified
    result = _s3_tick(instance, landing)
    # Within the first ten minutes (the lateness) of an hour, a file placed in it may still hold the
    # previous hour's late records, so that hour waits too.
    waiting = [hour - HOUR, hour] if arrived < hour + timedelta(minutes=10) else [hour]
    assert result.run_requests == [] and json.loads(result.cursor)["pending"] == [hour_key(h) for h in waiting]


def test_landing_batches_read_every_file_of_the_hour_at_any_depth(landing):
    import gzip

    hour = datetime(2026, 11, 20, 11, tzinfo=UTC)
    _land(landing, f"{hour:%Y/%m/%d/%H}/fh-1.gz", gzip.compress(b'{"n":1}\n{"n":2}\n'))
    _land(landing, "dt=2026-11-20/hour=11/part-0.jsonl", b'{"n":3}\n\n')
    _land(landing, "producerA/dt=2026-11-20/hour=11/x.jsonl", b'{"n":5}\n')
    _land(landing, f"{hour + HOUR:%Y/%m/%d/%H}/next.jsonl", b'{"n":4}\n')
    batches = landing_batches(hour, landing, LATENESS)
    assert sorted(p for b in batches for p in b.payloads) == [b'{"n":1}', b'{"n":2}', b'{"n":3}', b'{"n":5}']
    assert {b.source for b in batches} == {"s3_landing"} and len({b.name for b in batches}) == 3
    ids = [a for b in batches for a in b.arrivals]
    assert len(set(ids)) == 4 and all(a.startswith(f"s3://{landing.bucket}/{landing.prefix}/") for a in ids)
    assert landing_batches(hour, landing, LATENESS)[0].name == batches[0].name  # same object, same name


def test_a_landed_object_that_cannot_be_read_fails_the_step_naming_it(landing):
    from iot_assets.assets.raw import landed_batch

    hour = datetime(2026, 11, 21, 9, tzinfo=UTC)
    _land(landing, "dt=2026-11-21/hour=09/gone.jsonl", b'{"n":1}\n')
    [obj] = landing.objects_for_hour(hour, LATENESS)
    landing.aws.s3.delete_object(Bucket=landing.bucket, Key=obj.key)  # removed after it was listed
    with pytest.raises(RuntimeError, match=f"landed object s3://{landing.bucket}/{obj.key}@{obj.etag}: NoSuchKey"):
        landed_batch(hour, obj, landing, LATENESS)
