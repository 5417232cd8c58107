"""The Kinesis arrival sensor: one run per hour that holds records, once that hour is complete.

Each shard is read after the last sequence number seen (AFTER_SEQUENCE_NUMBER), so no record is
read twice and none is skipped. Resharding is followed: a closed parent is read to its end, and
only then are its children read from TRIM_HORIZON. The sensor keeps no record contents, only the
hours that hold records, assigned by the raw asset's own rule (`record_hour`). It requests an
hour once the hour has ended and the allowed lateness has passed, with run key `kinesis:<hour>`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, timedelta

from botocore.exceptions import BotoCoreError
from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from iot_assets import settings
from iot_assets.assets.registry import REGISTRY
from iot_assets.automation.jobs import hour_end_job
from iot_assets.lib import partitions
from iot_assets.lib.partitions import complete_hours, hour_key, hourly_partitions, parse_hour_key
from iot_assets.resources.aws import AwsResource, unreachable
from iot_assets.resources.kinesis import StreamRecord, list_all_shards, record_hour
from iot_assets.resources.raw_source import RawSource

MAX_CALLS_PER_TICK = 300  # GetRecords calls; the rest is read on the next tick
PAGE = 1000  # records per GetRecords call: the most the sensor holds at once


@dataclass
class KinesisCursor:
    stream: str = ""  # ARN@creation: a recreated stream starts over
    positions: dict[str, str] = field(default_factory=dict)  # shard -> last sequence number read
    finished: list[str] = field(default_factory=list)  # closed shards read to their end
    pending: list[str] = field(default_factory=list)  # hour keys holding records, not yet requested

    def encode(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str | None) -> KinesisCursor:
        return cls(**json.loads(text)) if text else cls()


REGISTRY_WAIT = f"waiting for {REGISTRY.name} (silver needs it; the automation sensor builds it when missing)"


def registry_missing(instance) -> bool:
    return instance.get_latest_materialization_event(REGISTRY.key) is None


def parents(shard: dict) -> list[str]:
    return [p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p]


def is_closed(shard: dict) -> bool:
    return "EndingSequenceNumber" in shard.get("SequenceNumberRange", {})


def readable_shards(shards: Iterable[dict], cursor: KinesisCursor) -> list[str]:
    """Shards to read now: not finished, and every parent still listed has been read to its end."""
    listed = {s["ShardId"] for s in shards}
    done = set(cursor.finished)
    return sorted(
        s["ShardId"]
        for s in shards
        if s["ShardId"] not in done and all(p in done or p not in listed for p in parents(s))
    )


def forget_expired(cursor: KinesisCursor, listed: set[str]) -> None:
    """Drop shards the stream no longer lists (past retention), so the cursor stays small."""
    cursor.positions = {s: q for s, q in cursor.positions.items() if s in listed}
    cursor.finished = sorted(s for s in cursor.finished if s in listed)


@dataclass
class Scan:
    records: int = 0
    calls: int = 0
    hours: set[str] = field(default_factory=set)


def _read_shard(
    client,
    stream: str,
    shard: dict,
    cursor: KinesisCursor,
    lateness: timedelta,
    scan: Scan,
    on_record: Callable[[str, str], None] | None,
) -> None:
    sid = shard["ShardId"]
    after = cursor.positions.get(sid)
    kwargs = (
        {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": after}
        if after
        else {"ShardIteratorType": "TRIM_HORIZON"}
    )
    it = client.get_shard_iterator(StreamName=stream, ShardId=sid, **kwargs)["ShardIterator"]
    caught_up = False
    while it and scan.calls < MAX_CALLS_PER_TICK:
        resp = client.get_records(ShardIterator=it, Limit=PAGE)
        scan.calls += 1
        for r in resp["Records"]:
            arrival = r["ApproximateArrivalTimestamp"].astimezone(UTC)
            record = StreamRecord(r["Data"], r["PartitionKey"], r["SequenceNumber"], sid, arrival)
            scan.hours.add(hour_key(record_hour(record, lateness)))
            cursor.positions[sid] = r["SequenceNumber"]
            scan.records += 1
            if on_record:
                on_record(sid, r["SequenceNumber"])
        it = resp.get("NextShardIterator")
        if not resp["Records"] and resp.get("MillisBehindLatest", 0) == 0:
            caught_up = True
            break
    # A closed shard takes no more records: at its end (no next iterator, or caught up) it is finished.
    if is_closed(shard) and (it is None or caught_up):
        cursor.finished.append(sid)


def scan_stream(
    client, stream: str, cursor: KinesisCursor, lateness: timedelta, on_record: Callable[[str, str], None] | None = None
) -> Scan:
    """Read every readable shard from its position; parents first, then the children they unlock."""
    summary = client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
    identity = f"{summary['StreamARN']}@{summary['StreamCreationTimestamp'].timestamp():.0f}"
    if cursor.stream != identity:
        cursor.stream, cursor.positions, cursor.finished = identity, {}, []
    shards = {s["ShardId"]: s for s in list_all_shards(client, stream)}
    forget_expired(cursor, set(shards))
    scan, visited = Scan(), set()
    while scan.calls < MAX_CALLS_PER_TICK:
        todo = [sid for sid in readable_shards(shards.values(), cursor) if sid not in visited]
        if not todo:
            break
        for sid in todo:
            visited.add(sid)
            _read_shard(client, stream, shards[sid], cursor, lateness, scan, on_record)
    return scan


@sensor(
    job=hour_end_job,
    minimum_interval_seconds=int(settings.get("IOT_KINESIS_SENSOR_INTERVAL_SECONDS")),
    default_status=(
        DefaultSensorStatus.RUNNING if settings.get("IOT_RAW_SOURCE") == "kinesis" else DefaultSensorStatus.STOPPED
    ),
    description="Requests hour_end_job for each hour that has Kinesis records, once the hour "
    "has ended and the allowed lateness has passed.",
)
def kinesis_arrival_sensor(context: SensorEvaluationContext, raw_source: RawSource, aws: AwsResource):
    if raw_source.source != "kinesis":
        return SkipReason(f"the raw source is {raw_source.source!r}; set IOT_RAW_SOURCE=kinesis to drain the stream")
    if registry_missing(context.instance):
        return SkipReason(REGISTRY_WAIT)
    cursor = KinesisCursor.decode(context.cursor)
    stream = settings.validate_stream(raw_source.stream)
    try:
        scan = scan_stream(aws.kinesis, stream, cursor, raw_source.lateness)
    except BotoCoreError as exc:
        # No SensorResult, so the stored cursor stays as it was: the next tick reads from there.
        return SkipReason(unreachable("kinesis", aws.endpoint, exc))
    first = hourly_partitions.start.astimezone(UTC)
    ready, cursor.pending = complete_hours(set(cursor.pending) | scan.hours, partitions.utc_now(), raw_source.lateness)
    requests = [
        RunRequest(run_key=f"kinesis:{key}", partition_key=key, tags={"iot/trigger": "kinesis"})
        for key in ready
        if parse_hour_key(key) >= first
    ]
    summary = (
        f"read {scan.records} records in {scan.calls} calls; waiting for {', '.join(cursor.pending) or 'no hours'}"
    )
    context.log.info(summary)
    return SensorResult(
        run_requests=requests, cursor=cursor.encode(), skip_reason=None if requests else SkipReason(summary)
    )
