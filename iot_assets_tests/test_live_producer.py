"""The live producer sends exactly the simulator's records, each once, at its time, and stops cleanly."""

import gzip
import threading
import uuid
from datetime import UTC, datetime
from itertools import pairwise

import pytest

from iot_assets.resources.aws import make_client
from iot_assets.tools.cli import parse_duration
from iot_assets.tools.simulator import FleetConfig, simulate_hour
from iot_assets.tools.simulator.live import land_hours, produce, records_between

FLEET = FleetConfig(device_count=6, readings_per_hour=40, seed=11, anomaly_rate=0.3, malformed_rate=0.1)
HOUR = datetime(2026, 11, 21, 10, tzinfo=UTC)
H0 = HOUR.timestamp()


def test_a_whole_hour_is_the_simulated_hour_in_time_order():
    sim = simulate_hour(HOUR, FLEET)
    sent = records_between(FLEET, H0, H0 + 3600)
    assert sorted(text for _, text, _ in sent) == sorted(sim.records)
    assert [t for t, _, _ in sent] == sorted(t for t, _, _ in sent)
    assert sum(sim.malformed.values()) > 0  # malformed records are sent too


def test_consecutive_windows_lose_and_repeat_nothing():
    cache = {}
    edges = [H0 - 700, H0 - 3.5, H0 + 1, H0 + 1234.5, H0 + 3599.9, H0 + 5000]
    pieces = [records_between(FLEET, a, b, cache) for a, b in pairwise(edges)]
    assert [r for p in pieces for r in p] == records_between(FLEET, edges[0], edges[-1])
    assert all(h >= int(edges[-2] // 3600) * 3600 for h in cache)  # old hours are dropped


class FakeKinesis:
    def __init__(self):
        self.sent = []

    def put_records(self, StreamName, Records):
        self.sent.extend(r["Data"] for r in Records)
        return {
            "FailedRecordCount": 0,
            "Records": [{"ShardId": "s", "SequenceNumber": str(len(self.sent))}] * len(Records),
        }


class Clock:
    def __init__(self, start, step):
        self.now, self.step = start, step

    def __call__(self):
        self.now += self.step
        return self.now


def test_runs_for_its_duration_then_stops():
    client, clock = FakeKinesis(), Clock(H0 + 100, 7.0)
    stats = produce(client, "s", FLEET, duration=600, stop=threading.Event(), tick=0, clock=clock)
    expected = records_between(FLEET, H0 + 107, H0 + 707)
    assert client.sent == [text.encode() for _, text, _ in expected]
    assert stats.records == len(expected) > 0


def test_stops_when_asked():
    stop = threading.Event()
    stop.set()
    client = FakeKinesis()
    stats = produce(client, "s", FLEET, duration=None, stop=stop, tick=5, clock=Clock(H0, 30.0))
    assert stats.puts == 1  # one pass, then it stops without waiting
    assert client.sent == [t.encode() for _, t, _ in records_between(FLEET, H0 + 30, H0 + 60)]


@pytest.mark.parametrize("text,seconds", [("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("0", 0)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


def test_landed_hours_are_firehose_style_and_stable(local_aws):
    import os

    s3 = make_client("s3", local_aws, "us-east-1")
    bucket, prefix = os.environ["IOT_BUCKET"], f"landing-{uuid.uuid4().hex[:6]}"
    keys = land_hours(s3, bucket, prefix, FLEET, [HOUR])
    assert keys == [f"{prefix}/2026/11/21/10/iot-assets-simulate-2026-11-21-10.jsonl.gz"]
    obj = s3.get_object(Bucket=bucket, Key=keys[0])
    assert gzip.decompress(obj["Body"].read()).decode().splitlines() == simulate_hour(HOUR, FLEET).records
    land_hours(s3, bucket, prefix, FLEET, [HOUR])
    assert s3.head_object(Bucket=bucket, Key=keys[0])["ETag"] == obj["ETag"]
