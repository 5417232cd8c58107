"""Kinesis: publishing records exactly once, and draining an hour of arrivals from every shard."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from iot_assets.lib.partitions import assigned_hour, hour_of

MAX_BATCH_RECORDS = 500
MAX_BATCH_BYTES = 5 * 1024 * 1024
MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class Published:
    shard_id: str
    sequence_number: str


@dataclass(frozen=True)
class StreamRecord:
    data: bytes
    partition_key: str
    sequence_number: str
    shard_id: str
    arrival: datetime


def _chunks(entries: list[dict]) -> list[list[int]]:
    out, cur, size = [], [], 0
    for i, e in enumerate(entries):
        n = len(e["Data"]) + len(e["PartitionKey"])
        if cur and (len(cur) == MAX_BATCH_RECORDS or size + n > MAX_BATCH_BYTES):
            out.append(cur)
            cur, size = [], 0
        cur.append(i)
        size += n
    if cur:
        out.append(cur)
    return out


def put_all(
    client, stream: str, payloads: list[bytes], keys: list[str], sleep=time.sleep
) -> tuple[list[Published], int]:
    """Put every payload once, in chunks of at most 500; resend only the records that failed.

    Returns the shard and sequence number of each payload, in input order, and how many resends
    were needed. Raises if a record still fails after MAX_ATTEMPTS.
    """
    entries = [{"Data": p, "PartitionKey": (k or "unknown")[:256]} for p, k in zip(payloads, keys, strict=True)]
    result: list[Published | None] = [None] * len(entries)
    resent = 0
    for chunk in _chunks(entries):
        pending = chunk
        for attempt in range(MAX_ATTEMPTS):
            resp = client.put_records(StreamName=stream, Records=[entries[i] for i in pending])
            failed = []
            for i, r in zip(pending, resp["Records"], strict=True):
                if r.get("ErrorCode"):
                    failed.append(i)
                else:
                    result[i] = Published(r["ShardId"], r["SequenceNumber"])
            if not failed:
                break
            resent += len(failed)
            pending = failed
            sleep(min(0.05 * 2**attempt, 2.0))
        else:
            raise RuntimeError(
                f"Kinesis put_records: {len(pending)} records still failing after "
                f"{MAX_ATTEMPTS} attempts on stream {stream!r}"
            )
    return result, resent  # type: ignore[return-value]


def list_all_shards(client, stream: str) -> list[dict]:
    shards, token = [], None
    while True:
        resp = client.list_shards(NextToken=token) if token else client.list_shards(StreamName=stream)
        shards.extend(resp["Shards"])
        token = resp.get("NextToken")
        if not token:
            return shards


def read_arrivals(client, stream: str, start: datetime, end: datetime, max_calls: int = 10_000) -> list[StreamRecord]:
    """Every record whose arrival time lies in [start, end), from open and closed shards alike."""
    out: list[StreamRecord] = []
    calls = 0
    for shard in list_all_shards(client, stream):
        it = client.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="AT_TIMESTAMP", Timestamp=start
        )["ShardIterator"]
        while it and calls < max_calls:
            calls += 1
            resp = client.get_records(ShardIterator=it, Limit=10_000)
            done = False
            for r in resp["Records"]:
                arrival = r["ApproximateArrivalTimestamp"].astimezone(UTC)
                if arrival >= end:
                    done = True
                    break
                if arrival >= start:
                    out.append(
                        StreamRecord(r["Data"], r["PartitionKey"], r["SequenceNumber"], shard["ShardId"], arrival)
                    )
            it = resp.get("NextShardIterator")
            if done or (not resp["Records"] and resp.get("MillisBehindLatest", 0) == 0):
                break
        if calls >= max_calls:
            raise RuntimeError(f"Kinesis drain of {stream!r} exceeded {max_calls} GetRecords calls")
    return out


def event_hour_of(data: bytes) -> datetime | None:
    """The hour of a record's own timestamp, when it has a readable one."""
    try:
        ts = json.loads(data)["timestamp"]
        if isinstance(ts, (int, float)) or (isinstance(ts, str) and ts.isdigit()):
            value = float(ts)
            moment = datetime.fromtimestamp(value / 1000 if value > 1e11 else value, tz=UTC)
        else:
            moment = datetime.fromisoformat(ts.replace("Z", "+00:00"))
            moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    except Exception:  # noqa: BLE001 - any unreadable record is assigned by arrival
        return None


def record_hour(record: StreamRecord, lateness: timedelta) -> datetime:
    """The raw partition a stream record belongs to (`partitions.assigned_hour`, home = its arrival hour)."""
    return assigned_hour(event_hour_of(record.data), record.arrival, hour_of(record.arrival), lateness)


def arrival_id(stream: str, shard_id: str, sequence_number: str) -> str:
    """A stream record's identity: the same record read twice has the same one."""
    return f"kinesis:{stream}/{shard_id}/{sequence_number}"
