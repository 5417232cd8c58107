"""The raw IO manager: an hour's batch goes to S3 as gzip JSON lines (and, when simulated, to Kinesis).

Each line is an envelope around one record exactly as it arrived (`payload`, or `payload_b64`
when it is not UTF-8) with its batch hour, position and Kinesis coordinates. Downstream assets
receive the S3 locations, never the data itself.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from botocore.exceptions import ClientError
from dagster import ConfigurableIOManager, InputContext, MetadataValue, OutputContext

from iot_assets import settings
from iot_assets.partitions import hour_key, parse_hour_key, raw_key
from iot_assets.resources.aws import AwsResource
from iot_assets.resources.kinesis import put_all


@dataclass
class RawBatch:
    """One hour of records as they arrived, with the Kinesis coordinates of each when known."""

    hour: datetime
    source: str                                   # simulator | kinesis | s3_landing
    payloads: list[bytes]
    partition_keys: list[str]
    kinesis: list[tuple[str, str, str]] | None = None   # (shard, sequence, arrival ISO) per record
    publish: bool = False                         # publish to Kinesis before backing up to S3
    ground_truth: list[dict] | None = None        # simulator labels, kept beside the raw data
    problems: list[str | None] | None = None      # per record: why its landed file gave no records
    extra_metadata: dict = field(default_factory=dict)

    def checksum(self) -> str:
        digest = hashlib.sha256()
        for i, p in enumerate(self.payloads):
            digest.update(len(p).to_bytes(8, "big"))
            digest.update(p)
            if self.problems and self.problems[i]:
                digest.update(self.problems[i].encode())
        return digest.hexdigest()


@dataclass
class RawBatches:
    """The batches of a partition range, produced one hour at a time to bound memory."""

    hours: list[datetime]
    produce: Callable[[datetime], RawBatch]

    def __iter__(self) -> Iterable[RawBatch]:
        return (self.produce(h) for h in self.hours)


@dataclass(frozen=True)
class RawObject:
    """Where an hour's raw batch lives, and how many records it holds."""

    hour: datetime
    uri: str          # s3a:// for Spark
    key: str
    records: int


# One compact encoder for every line (json.dumps with separators builds one per call).
_COMPACT = json.JSONEncoder(separators=(",", ":"))
# zlib level 6 (gzip's own default) compresses these lines about as small as 9 in less time.
GZIP_LEVEL = 6


def envelope_lines(batch: RawBatch) -> bytes:
    hour = batch.hour.astimezone(timezone.utc).isoformat()
    lines = []
    for i, (data, key) in enumerate(zip(batch.payloads, batch.partition_keys)):
        try:
            payload, b64 = data.decode("utf-8"), None
        except UnicodeDecodeError:
            payload, b64 = None, base64.b64encode(data).decode()
        shard = seq = arrival = None
        if batch.kinesis:
            shard, seq, arrival = batch.kinesis[i]
        problem = batch.problems[i] if batch.problems else None
        if problem:
            # The bytes of an unreadable file are kept as base64, whatever they hold.
            payload, b64 = None, base64.b64encode(data).decode()
        lines.append(_COMPACT.encode({
            "batch_hour": hour, "record_index": i, "payload": payload, "payload_b64": b64,
            "source": batch.source, "kinesis_shard_id": shard, "kinesis_sequence_number": seq,
            "kinesis_partition_key": key if batch.kinesis else None, "kinesis_arrival_time": arrival,
            "object_problem": problem,
        }))
    # One compression call over the whole batch, not one per line.
    return gzip.compress(("\n".join(lines) + "\n" if lines else "").encode(), compresslevel=GZIP_LEVEL, mtime=0)


class S3KinesisRawIOManager(ConfigurableIOManager):
    """Stores raw batches under `s3://<bucket>/<prefix>/dt=YYYY-MM-DD/hour=HH/`; loads their locations."""

    aws: AwsResource
    bucket: str = "iot-lakehouse"
    prefix: str = "raw"
    truth_prefix: str = "simulator/ground_truth"
    stream: str = "iot-sensor-readings"

    def _stored_checksum(self, key: str) -> str | None:
        try:
            return self.aws.s3.head_object(Bucket=self.bucket, Key=key)["Metadata"].get("checksum")
        except ClientError:
            return None

    def store(self, batch: RawBatch) -> tuple[bool, int]:
        """Back up one hour's batch to S3, publishing simulated ones to Kinesis first.

        An hour whose stored batch has the same records is left as it is: re-materialising does
        not publish the records again, so the stream sees each record once and bronze keeps the
        same Kinesis coordinates. Returns (stored, records resent to Kinesis).
        """
        bucket = settings.validate_bucket(self.bucket)
        key = raw_key(self.prefix, batch.hour)
        checksum = batch.checksum()
        if self._stored_checksum(key) == checksum:
            return False, 0
        resent = 0
        if batch.publish:
            published, resent = put_all(self.aws.kinesis, settings.validate_stream(self.stream),
                                        batch.payloads, batch.partition_keys)
            now = datetime.now(timezone.utc).isoformat()
            batch.kinesis = [(p.shard_id, p.sequence_number, now) for p in published]
        if batch.ground_truth is not None:
            self.aws.s3.put_object(Bucket=bucket, Key=raw_key(self.truth_prefix, batch.hour, "labels.jsonl.gz"),
                                   Body=gzip.compress(json.dumps(batch.ground_truth).encode(), mtime=0))
        self.aws.s3.put_object(Bucket=bucket, Key=key, Body=envelope_lines(batch),
                               ContentType="application/x-ndjson", ContentEncoding="gzip",
                               Metadata={"records": str(len(batch.payloads)), "source": batch.source,
                                         "checksum": checksum})
        return True, resent

    def handle_output(self, context: OutputContext, obj: RawBatches) -> None:
        per_hour, unchanged, resent = {}, [], 0
        for batch in obj:
            per_hour[hour_key(batch.hour)] = len(batch.payloads)
            stored, n = self.store(batch)
            resent += n
            if not stored:
                unchanged.append(hour_key(batch.hour))
        context.add_output_metadata({
            "dagster/row_count": sum(per_hour.values()),
            "records_per_hour": per_hour,
            "hours_unchanged": unchanged,
            "dagster/uri": MetadataValue.path(f"s3://{self.bucket}/{self.prefix}/"),
            "kinesis_records_resent": resent,
        })

    def load_input(self, context: InputContext) -> list[RawObject]:
        keys = context.asset_partition_keys if context.has_asset_partitions else []
        s3 = self.aws.s3
        out = []
        for pk in keys:
            hour = parse_hour_key(pk)
            key = raw_key(self.prefix, hour)
            try:
                head = s3.head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                raise FileNotFoundError(
                    f"raw batch for partition {pk} is missing at s3://{self.bucket}/{key}; "
                    "materialise raw_sensor_batches for it first") from exc
            out.append(RawObject(hour=hour, uri=f"s3a://{self.bucket}/{key}", key=key,
                                 records=int(head["Metadata"].get("records", -1))))
        return out
