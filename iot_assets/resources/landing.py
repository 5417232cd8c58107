"""The landing zone: files that producers write themselves (Firehose-style) under one S3 prefix.

An object belongs to the hour its key names, either `dt=YYYY-MM-DD/hour=HH/` (our layout) or
Firehose's default `YYYY/MM/DD/HH/` (its arrival hour). Each object holds JSON lines, plain or
gzip. The S3 arrival sensor watches the prefix; the raw asset reads an hour's objects when a run
uses `source: s3_landing`.

An object that yields no records (0 bytes, only blank lines, a gzip that does not decompress)
still becomes one raw record, marked with the problem, so bronze quarantines it with a reason
instead of the file vanishing between landing and bronze.
"""

from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone

from dagster import ConfigurableResource

from iot_assets import reasons, settings
from iot_assets.partitions import raw_key
from iot_assets.resources.aws import AwsResource

_HOUR_KEYS = (
    re.compile(r"(?:^|/)dt=(\d{4})-(\d{2})-(\d{2})/hour=(\d{2})/"),
    re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})/(\d{2})/"),
)


def hour_of_key(key: str) -> datetime | None:
    """The hour an object key names, or None when it names none."""
    for pattern in _HOUR_KEYS:
        m = pattern.search(key)
        if m:
            try:
                return datetime(*map(int, m.groups()), tzinfo=timezone.utc)
            except ValueError:
                return None
    return None


GZIP_MAGIC = b"\x1f\x8b"
KEPT_BAD_OBJECT_BYTES = 4096   # what an unreadable object's quarantine row keeps of it


@dataclass(frozen=True)
class ObjectRecords:
    """The records of one landed object, or, when it has none to give, why (and its first bytes)."""

    records: list[bytes]
    problem: str | None = None     # "<reason>: <detail>", a reason from iot_assets.reasons


def split_records(body: bytes) -> ObjectRecords:
    """An object's JSON lines (gunzipped when it starts with the gzip magic), without blank lines."""
    size = len(body)
    if body[:2] == GZIP_MAGIC:
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError, zlib.error) as exc:
            return ObjectRecords([body[:KEPT_BAD_OBJECT_BYTES]],
                                 f"{reasons.CORRUPT_GZIP}: {size} bytes do not decompress ({exc})")
    lines = [line for line in body.split(b"\n") if line.strip()]
    if not lines:
        return ObjectRecords([body[:KEPT_BAD_OBJECT_BYTES]], f"{reasons.EMPTY_OBJECT}: {size} bytes, no records")
    return ObjectRecords(lines)


@dataclass(frozen=True)
class LandedObject:
    key: str
    etag: str
    last_modified: datetime   # whole seconds, as S3 lists it


class LandingZone(ConfigurableResource):
    """`s3://<bucket>/<prefix>/`, where producers land hourly files of JSON lines."""

    aws: AwsResource
    bucket: str = "iot-lakehouse"
    prefix: str = "landing"

    def objects(self, under: str = "") -> list[LandedObject]:
        """Every object under the prefix (or under `under` inside it)."""
        bucket = settings.validate_bucket(self.bucket)
        base = f"{settings.validate_prefix(self.prefix)}/{under}"
        out = []
        for page in self.aws.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=base):
            for o in page.get("Contents", []):
                lm = o["LastModified"].astimezone(timezone.utc).replace(microsecond=0)
                out.append(LandedObject(o["Key"], o["ETag"].strip('"'), lm))
        return out

    def objects_for_hour(self, hour: datetime) -> list[LandedObject]:
        h = hour.astimezone(timezone.utc)
        ours = raw_key("x", h, "")[2:]           # dt=YYYY-MM-DD/hour=HH/
        found = self.objects(ours) + self.objects(f"{h:%Y/%m/%d/%H}/")
        return sorted(found, key=lambda o: o.key)

    def records(self, key: str) -> ObjectRecords:
        """The object's records (see `split_records`)."""
        body = self.aws.s3.get_object(Bucket=settings.validate_bucket(self.bucket), Key=key)["Body"].read()
        return split_records(body)
