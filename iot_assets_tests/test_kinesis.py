"""Kinesis publishing and draining: exactly-once puts, resends, chunking, and hour assignment."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from iot_assets.resources.aws import make_client
from iot_assets.resources.kinesis import (
    MAX_BATCH_RECORDS,
    StreamRecord,
    put_all,
    read_arrivals,
    record_hour,
)


class FlakyKinesis:
    """A narrow stand-in for put_records that fails chosen records on their first attempts."""

    def __init__(self, fail_first: int):
        self.fail_first = fail_first
        self.calls, self.delivered, self.seq = [], [], 0

    def put_records(self, StreamName, Records):
        self.calls.append(len(Records))
        out = []
        for r in Records:
            if self.fail_first > 0 and self.fail_first % 2:
                self.fail_first -= 1
                out.append({"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"})
                continue
            self.fail_first = max(self.fail_first - 1, 0)
            self.seq += 1
            self.delivered.append(r["Data"])
            out.append({"ShardId": "shardId-0", "SequenceNumber": str(self.seq)})
        return {"FailedRecordCount": sum("ErrorCode" in o for o in out), "Records": out}


def test_partial_failures_are_resent_exactly_once():
    client = FlakyKinesis(fail_first=400)
    payloads = [f"r{i}".encode() for i in range(1200)]
    published, resent = put_all(client, "s", payloads, ["k"] * 1200, sleep=lambda _: None)
    assert sorted(client.delivered) == sorted(payloads)
    assert len(set(client.delivered)) == 1200
    assert resent == 200 and all(c <= MAX_BATCH_RECORDS for c in client.calls)
    assert len({p.sequence_number for p in published}) == 1200


def test_gives_up_with_a_clear_error():
    class Down:
        def put_records(self, StreamName, Records):
            return {"FailedRecordCount": len(Records), "Records": [{"ErrorCode": "InternalFailure"}] * len(Records)}

    with pytest.raises(RuntimeError, match="still failing"):
        put_all(Down(), "s", [b"x"], ["k"], sleep=lambda _: None)


def test_chunks_respect_the_request_size():
    client = FlakyKinesis(fail_first=0)
    put_all(client, "s", [b"x" * 900_000] * 12, ["k"] * 12)
    assert max(client.calls) <= 5


def _rec(event: datetime, arrival: datetime) -> StreamRecord:
    data = json.dumps({"timestamp": event.isoformat().replace("+00:00", "Z")}).encode()
    return StreamRecord(data, "k", "1", "s", arrival)


@pytest.mark.parametrize(
    "event_min,arrival_min,expected_hour",
    [
        (30, 40, 10),  # on time
        (55, 65, 10),  # late, within 10 minutes after the hour: its event hour
        (55, 75, 11),  # too late: arrival hour, where bronze quarantines it as late
        (130, 70, 11),  # from the future: arrival hour
    ],
)
def test_assigned_hour(event_min, arrival_min, expected_hour):
    base = datetime(2026, 11, 21, 10, tzinfo=UTC)
    r = _rec(base + timedelta(minutes=event_min), base + timedelta(minutes=arrival_min))
    assert record_hour(r, timedelta(minutes=10)).hour == expected_hour


def test_unreadable_records_go_by_arrival():
    arrival = datetime(2026, 11, 21, 10, 5, tzinfo=UTC)
    assert record_hour(StreamRecord(b"{broken", "k", "1", "s", arrival), timedelta(minutes=10)).hour == 10


def test_round_trip_through_the_local_endpoint(local_aws):
    import os

    kinesis = make_client("kinesis", local_aws, "us-east-1")
    stream = os.environ["IOT_KINESIS_STREAM"]
    start = datetime.now(UTC) - timedelta(seconds=1)
    payloads = [json.dumps({"n": i}).encode() for i in range(700)]
    published, _ = put_all(kinesis, stream, payloads, [f"dev-{i % 7}" for i in range(700)])
    got = read_arrivals(kinesis, stream, start, datetime.now(UTC) + timedelta(seconds=5))
    mine = [r for r in got if r.data in set(payloads)]
    assert sorted(r.data for r in mine) == sorted(payloads)
    assert {(r.shard_id, r.sequence_number) for r in mine} == {(p.shard_id, p.sequence_number) for p in published}
