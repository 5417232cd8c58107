"""The landing zone: files that producers write themselves (Firehose-style) under one S3 prefix.

One rule places an object in an hour, for the sensor and the run alike (`place`): the hour its
key names, as `dt=YYYY-MM-DD/hour=HH/` (our layout) or Firehose's `YYYY/MM/DD/HH/`, at any depth
under the prefix (`landing/producerA/dt=.../hour=12/x.jsonl`). A key that names no valid hour
(`hour=25`, `dt=2026-02-30`, no hour at all) is placed in the hour it was last modified, where it
becomes one quarantined record that names it (`unplaced_object`): never only a log line.

Each object holds JSON lines, plain or gzip, read as a stream and framed by `iot_assets.lib.framing`
(any line ending, several values on a line, bounded size and decompression). An object that
yields no records (0 bytes, only blank lines, a gzip that does not decompress, one that expands
past its limit) still becomes one raw record, marked with the problem, so bronze quarantines it
with a reason instead of the file vanishing.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dagster import ConfigurableResource

from iot_assets import settings
from iot_assets.lib import reasons
from iot_assets.lib.framing import MAX_RECORD_BYTES, Framed, frame_object
from iot_assets.lib.partitions import HOUR, hour_of, ready_at
from iot_assets.resources.aws import AwsResource

_HOUR_LAYOUTS = (
    re.compile(r"(?:^|/)dt=(\d{4})-(\d{2})-(\d{2})/hour=(\d{2})/"),
    re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})/(\d{2})/"),
)
LAYOUTS = "dt=YYYY-MM-DD/hour=HH/ or YYYY/MM/DD/HH/"


@dataclass(frozen=True)
class Placement:
    """The hour an object's records arrive into, or why its key names none."""

    hour: datetime
    problem: str | None = None  # "<reason>: <detail>" when the key names no valid hour


def place(key: str, last_modified: datetime) -> Placement:
    """The hour an object belongs to: the first hour its key names, else its LastModified hour."""
    for pattern in _HOUR_LAYOUTS:
        m = pattern.search(key)
        if m:
            try:
                return Placement(datetime(*map(int, m.groups()), tzinfo=UTC))
            except ValueError:
                return Placement(
                    hour_of(last_modified),
                    f"{reasons.UNPLACED_OBJECT}: {m.group(0).strip('/')} is not a valid hour in {key}",
                )
    return Placement(hour_of(last_modified), f"{reasons.UNPLACED_OBJECT}: {key} names no hour ({LAYOUTS})")


DEFAULT_MAX_EXPANDED_BYTES = 256 << 20  # IOT_MAX_OBJECT_EXPANDED_BYTES's default


def split_records(body: bytes, max_expanded_bytes: int = DEFAULT_MAX_EXPANDED_BYTES) -> list[Framed]:
    """The records of an object held in memory (see `iot_assets.lib.framing.frame_object`)."""
    return frame_object(io.BytesIO(body).read, max_record_bytes=MAX_RECORD_BYTES, max_expanded_bytes=max_expanded_bytes)


@dataclass(frozen=True)
class LandedObject:
    key: str
    etag: str
    last_modified: datetime  # whole seconds, as S3 lists it

    @property
    def placement(self) -> Placement:
        return place(self.key, self.last_modified)


def feeds_hour(obj: LandedObject, hour: datetime, lateness: timedelta) -> bool:
    """Whether `obj` may hold records of `hour`: it is placed there, or placed in the next hour and
    arrived within `hour`'s lateness (its late records belong to `hour`, as on the stream)."""
    placed = obj.placement
    if placed.hour == hour:
        return True
    return placed.problem is None and placed.hour == hour + HOUR and obj.last_modified < ready_at(hour, lateness)


class LandingZone(ConfigurableResource):
    """`s3://<bucket>/<prefix>/`, where producers land hourly files of JSON lines."""

    aws: AwsResource
    bucket: str = "iot-lakehouse"
    prefix: str = "landing"
    max_object_expanded_bytes: int = DEFAULT_MAX_EXPANDED_BYTES

    def objects(self, under: str = "") -> list[LandedObject]:
        """Every object under the prefix (or under `under` inside it)."""
        bucket = settings.validate_bucket(self.bucket)
        base = f"{settings.validate_prefix(self.prefix)}/{under}"
        out = []
        for page in self.aws.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=base):
            for o in page.get("Contents", []):
                lm = o["LastModified"].astimezone(UTC).replace(microsecond=0)
                out.append(LandedObject(o["Key"], o["ETag"].strip('"'), lm))
        return out

    def objects_for_hour(self, hour: datetime, lateness: timedelta) -> list[LandedObject]:
        """The objects that may hold records of `hour` (`feeds_hour`), in key order. The whole
        prefix is listed, as the sensor lists it, so both place keys by the same rule."""
        return sorted((o for o in self.objects() if feeds_hour(o, hour, lateness)), key=lambda o: o.key)

    def uri(self, obj: LandedObject) -> str:
        return f"s3://{self.bucket}/{obj.key}@{obj.etag}"

    def records(self, key: str) -> list[Framed]:
        """The object's records, framed as it streams from S3 (see `iot_assets.lib.framing.frame_object`)."""
        body = self.aws.s3.get_object(Bucket=settings.validate_bucket(self.bucket), Key=key)["Body"]
        try:
            return frame_object(
                body.read, max_record_bytes=MAX_RECORD_BYTES, max_expanded_bytes=self.max_object_expanded_bytes
            )
        finally:
            body.close()
