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
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from dagster import ConfigurableIOManager, InputContext, MetadataValue, OutputContext

from iot_assets import settings
from iot_assets.lib import reasons
from iot_assets.lib.partitions import hour_key, parse_hour_key, raw_key
from iot_assets.resources.aws import AwsResource
from iot_assets.resources.kinesis import arrival_id, put_all


@dataclass
class RawBatch:
    """One arrival batch of an hour: records as they arrived, each with its identity.

    `name` identifies the batch (the same records arriving again give the same name) and names
    its raw object, so storing a batch twice is a no-op. `arrivals` holds each record's identity:
    `kinesis:<stream>/<shard>/<sequence>` or `s3://<bucket>/<key>@<etag>#<offset>`.
    """

    hour: datetime
    source: str  # simulator | kinesis | s3_landing | historian
    payloads: list[bytes]
    partition_keys: list[str]
    name: str = ""  # "<source>-<digest>"; default: named by its contents
    arrivals: list[str] | None = None  # None until a simulated batch is published
    kinesis: list[tuple[str, str, str]] | None = None  # (shard, sequence, arrival ISO) per record
    publish: bool = False  # publish to Kinesis before backing up to S3
    dedupe: bool = False  # drop records whose identity the hour already holds
    ground_truth: list[dict] | None = None  # simulator labels, kept beside the raw data
    problems: list[str | None] | None = None  # per record: "<reason>: <detail>" found before parsing
    arrived: int | None = None  # records that arrived in the batch (default: all)
    routed_elsewhere: int = 0  # records of the batch assigned to another hour

    def __post_init__(self):
        self.name = self.name or batch_name(self.source, self.checksum())

    def checksum(self) -> str:
        digest = hashlib.sha256()
        for i, p in enumerate(self.payloads):
            digest.update(len(p).to_bytes(8, "big"))
            digest.update(p)
            if self.problems and self.problems[i]:
                digest.update(self.problems[i].encode())
        return digest.hexdigest()

    def keep(self, indexes: list[int]) -> RawBatch:
        """The same batch holding only the records at `indexes`."""

        def pick(values):
            return None if values is None else [values[i] for i in indexes]

        return replace(
            self,
            payloads=pick(self.payloads),
            partition_keys=pick(self.partition_keys),
            arrivals=pick(self.arrivals),
            kinesis=pick(self.kinesis),
            problems=pick(self.problems),
            arrived=self.arrived if self.arrived is not None else len(self.payloads),
        )


def batch_name(source: str, identity: str) -> str:
    """A raw object's file name: its source and a digest of what identifies the batch."""
    return f"{source}-{hashlib.sha256(identity.encode()).hexdigest()[:24]}"


@dataclass
class HourLedger:
    """What arrived for one hour and where it went, per arrival batch, checked after storing."""

    batches: dict[str, dict] = field(default_factory=dict)  # name -> source, arrived, stored, duplicates, ...
    objects: list[RawObject] = field(default_factory=list)  # the hour's raw objects after storing

    def by_source(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for b in self.batches.values():
            totals = out.setdefault(
                b["source"],
                {"arrived": 0, "stored": 0, "duplicates": 0, "routed_elsewhere": 0, "already_stored": 0, "unplaced": 0},
            )
            for k in totals:
                totals[k] += b[k]
        return out

    def unplaced(self) -> int:
        return sum(b["unplaced"] for b in self.batches.values())

    def audit(self) -> tuple[int, int, list[str]]:
        """(records accounted for, records not, one line per arrival batch that does not reconcile)."""
        stored = stored_batches(self.objects)
        ok = bad = 0
        out = []
        for name, b in self.batches.items():
            if stored.get(name, 0) is None:
                out.append(f"{name}: some of its raw object's parts are missing, {b['arrived']} records arrived")
                bad += b["arrived"]
                continue
            if name not in stored:
                if b["stored"] or b["home"]:
                    out.append(f"{name}: no raw object, {b['arrived']} records arrived")
                    bad += b["arrived"]
                else:
                    ok += b["arrived"]  # every record belongs to another hour
                continue
            accounted = stored[name] + b["duplicates"] + b["routed_elsewhere"]
            if accounted != b["arrived"]:
                out.append(
                    f"{name}: {b['arrived']} arrived != {stored[name]} stored + {b['duplicates']} "
                    f"duplicates + {b['routed_elsewhere']} in other hours"
                )
            ok, bad = ok + min(accounted, b["arrived"]), bad + abs(b["arrived"] - accounted)
        return ok, bad, out

    def problems(self) -> list[str]:
        """Arrival batches not accounted for by the stored raw objects."""
        return self.audit()[2]

    def arrived(self) -> int:
        return sum(b["arrived"] for b in self.batches.values())


@dataclass
class RawBatches:
    """The arrival batches of a partition range, produced one hour at a time to bound memory.

    The IO manager fills `ledgers` as it stores each hour; the raw asset checks them afterwards.
    """

    hours: list[datetime]
    produce: Callable[[datetime], list[RawBatch]]
    ledgers: dict[str, HourLedger] = field(default_factory=dict)


@dataclass(frozen=True)
class RawObject:
    """One raw object of an hour, and how many records it holds."""

    hour: datetime
    uri: str  # s3a:// for Spark
    key: str
    records: int
    source: str = ""

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1].removesuffix(RAW_SUFFIX)

    @property
    def batch(self) -> str:
        """The arrival batch this object holds all or a part of."""
        part = _PART.match(self.name)
        return part["batch"] if part else self.name

    @property
    def parts(self) -> int:
        """How many parts its batch was stored as."""
        part = _PART.match(self.name)
        return int(part["n"]) if part else 1


_PART = re.compile(r"^(?P<batch>.+)\.p(?P<i>[0-9]+)of(?P<n>[0-9]+)$")


def part_name(batch: str, i: int, n: int) -> str:
    """The object name of part i (from 1) of a batch stored as n parts; one part keeps the batch's name."""
    return batch if n == 1 else f"{batch}.p{i}of{n}"


def stored_batches(objects: list[RawObject]) -> dict[str, int | None]:
    """Records stored per arrival batch: None for a batch some of whose parts are missing (a store
    that stopped part way), which counts as not stored."""
    groups: dict[str, dict[str, RawObject]] = {}
    for o in objects:
        groups.setdefault(o.batch, {})[o.name] = o
    out: dict[str, int | None] = {}
    for batch, named in groups.items():
        out[batch] = None
        for n in sorted({o.parts for o in named.values()}):
            parts = [named.get(part_name(batch, i, n)) for i in range(1, n + 1)]
            if all(parts):
                out[batch] = sum(o.records for o in parts)
                break
    return out


RAW_SUFFIX = ".jsonl.gz"
UNPLACED = reasons.UNPLACED_OBJECT + ":"
# A simulated (or replayed) hour is a function of its settings, and a historian hour is what the
# historian holds for it now: a new such batch replaces the hour's previous one from the same
# source. Every other source only adds to an hour.
REPLACES_ITS_OWN = ("simulator", "replay", "historian")


# One compact encoder for every line (json.dumps with separators builds one per call).
_COMPACT = json.JSONEncoder(separators=(",", ":"))
# zlib level 6 (gzip's own default) compresses these lines about as small as 9 in less time.
GZIP_LEVEL = 6


def envelope_lines(batch: RawBatch, start: int = 0, stop: int | None = None) -> bytes:
    """The batch's records [start, stop) as gzip JSON lines; `record_index` is the position in the batch."""
    hour = batch.hour.astimezone(UTC).isoformat()
    lines = []
    if len(batch.partition_keys) != len(batch.payloads):
        raise ValueError(f"{batch.name}: {len(batch.payloads)} records but {len(batch.partition_keys)} partition keys")
    stop = len(batch.payloads) if stop is None else stop
    for i in range(start, stop):
        data, key = batch.payloads[i], batch.partition_keys[i]
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
        lines.append(
            _COMPACT.encode(
                {
                    "arrival_id": batch.arrivals[i] if batch.arrivals else None,
                    "batch_hour": hour,
                    "record_index": i,
                    "payload": payload,
                    "payload_b64": b64,
                    "source": batch.source,
                    "kinesis_shard_id": shard,
                    "kinesis_sequence_number": seq,
                    "kinesis_partition_key": key if batch.kinesis else None,
                    "kinesis_arrival_time": arrival,
                    "object_problem": problem,
                }
            )
        )
    # One compression call over the whole batch, not one per line.
    return gzip.compress(("\n".join(lines) + "\n" if lines else "").encode(), compresslevel=GZIP_LEVEL, mtime=0)


class S3KinesisRawIOManager(ConfigurableIOManager):
    """Stores arrival batches under `s3://<bucket>/<prefix>/dt=YYYY-MM-DD/hour=HH/<source>-<digest>.jsonl.gz`.

    An hour's raw data is the union of every batch stored for it, from every source: storing adds
    objects and never replaces another source's. Loading gives the locations of all of them.
    """

    aws: AwsResource
    bucket: str = "iot-lakehouse"
    prefix: str = "raw"
    truth_prefix: str = "simulator/ground_truth"
    stream: str = "iot-sensor-readings"
    part_records: int = 500_000  # most records per raw object; a larger batch is stored as parts

    def _key(self, hour: datetime, name: str) -> str:
        return raw_key(self.prefix, hour, f"{settings.validate_name(name)}{RAW_SUFFIX}")

    def hour_objects(self, hour: datetime) -> list[RawObject]:
        """The hour's raw objects, with the record count and source each was stored with."""
        bucket = settings.validate_bucket(self.bucket)
        folder = raw_key(self.prefix, hour, "")
        keys = [
            o["Key"]
            for page in self.aws.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder)
            for o in page.get("Contents", [])
            if o["Key"].endswith(RAW_SUFFIX)
        ]

        def describe(key: str) -> RawObject:
            meta = self.aws.s3.head_object(Bucket=bucket, Key=key)["Metadata"]
            return RawObject(
                hour=hour,
                uri=f"s3a://{bucket}/{key}",
                key=key,
                records=int(meta.get("records", -1)),
                source=meta.get("source", ""),
            )

        with ThreadPoolExecutor(max_workers=min(16, len(keys) or 1)) as pool:
            return sorted(pool.map(describe, keys), key=lambda o: o.key)

    def _stored_ids(self, objects: list[RawObject]) -> set[str]:
        bucket = settings.validate_bucket(self.bucket)
        ids: set[str] = set()
        for o in objects:
            body = gzip.decompress(self.aws.s3.get_object(Bucket=bucket, Key=o.key)["Body"].read())
            ids.update(filter(None, (json.loads(line).get("arrival_id") for line in body.splitlines() if line)))
        return ids

    def _publish(self, batch: RawBatch) -> int:
        stream = settings.validate_stream(self.stream)
        published, resent = put_all(self.aws.kinesis, stream, batch.payloads, batch.partition_keys)
        now = datetime.now(UTC).isoformat()
        batch.kinesis = [(p.shard_id, p.sequence_number, now) for p in published]
        batch.arrivals = [arrival_id(stream, p.shard_id, p.sequence_number) for p in published]
        return resent

    def _put(self, batch: RawBatch) -> list[str]:
        """Store the batch as one object, or as parts of at most `part_records` records, which Spark
        reads in parallel (a gzip object is read by one task). Returns the object names written."""
        bucket = settings.validate_bucket(self.bucket)
        if self.part_records < 1:
            raise ValueError(f"part_records must be at least 1 (IOT_RAW_PART_RECORDS), not {self.part_records}")
        if batch.ground_truth is not None:
            self.aws.s3.put_object(
                Bucket=bucket,
                Key=raw_key(self.truth_prefix, batch.hour, "labels.jsonl.gz"),
                Body=gzip.compress(json.dumps(batch.ground_truth).encode(), mtime=0),
            )
        size, checksum = self.part_records, batch.checksum()
        n = max(1, -(-len(batch.payloads) // size))

        def put(i: int) -> str:
            start, stop = i * size, min(len(batch.payloads), (i + 1) * size)
            name = part_name(batch.name, i + 1, n)
            self.aws.s3.put_object(
                Bucket=bucket,
                Key=self._key(batch.hour, name),
                Body=envelope_lines(batch, start, stop),
                ContentType="application/x-ndjson",
                ContentEncoding="gzip",
                Metadata={"records": str(stop - start), "source": batch.source, "checksum": checksum},
            )
            return name

        # zlib compresses outside the GIL: parts are encoded and sent side by side.
        with ThreadPoolExecutor(max_workers=min(4, n)) as pool:
            return list(pool.map(put, range(n)))

    def store(self, batch: RawBatch) -> tuple[HourLedger, int]:
        """Add one batch to its hour (see `store_hour`)."""
        return self.store_hour(batch.hour, [batch])

    def store_hour(self, hour: datetime, batches: list[RawBatch]) -> tuple[HourLedger, int]:
        """Add the hour's arrival batches to what it holds; returns its ledger and Kinesis resends.

        A batch whose object exists is not stored again (nor published again). A deduplicating
        batch (a stream drain) keeps only records whose identity the hour does not hold yet.
        """
        objects = self.hour_objects(hour)
        present = {b: n for b, n in stored_batches(objects).items() if n is not None}
        ledger, resent, known = HourLedger(), 0, None
        for batch in batches:
            arrived = batch.arrived if batch.arrived is not None else len(batch.payloads)
            entry = {
                "source": batch.source,
                "arrived": arrived + batch.routed_elsewhere,
                "stored": 0,
                "duplicates": 0,
                "routed_elsewhere": batch.routed_elsewhere,
                "already_stored": 0,
                "home": batch.routed_elsewhere == 0 or bool(batch.payloads),
                "unplaced": sum(1 for p in batch.problems or [] if p and p.startswith(UNPLACED)),
            }
            ledger.batches[batch.name] = entry
            if batch.name in present:
                # Stored before: a stream drain's duplicates were counted then; anything else must
                # give the same records again.
                entry["already_stored"] = present[batch.name]
                if batch.dedupe:
                    entry["arrived"] = present[batch.name]
                continue
            if not batch.payloads and batch.routed_elsewhere:
                entry["home"] = False
                continue
            if batch.publish:
                resent += self._publish(batch)
            if batch.dedupe:
                known = self._stored_ids([o for o in objects if o.batch in present]) if known is None else known
                fresh = [i for i, a in enumerate(batch.arrivals or []) if a not in known]
                entry["duplicates"] = len(batch.payloads) - len(fresh)
                batch = batch.keep(fresh)
                known.update(batch.arrivals or [])
            written = set(self._put(batch))
            entry["stored"] = len(batch.payloads)
            # Parts of this batch from a store that stopped part way, or from another part size, go;
            # so does a replaced batch of the same source.
            objects = self._drop(
                objects,
                lambda o, b=batch, w=written: (
                    (o.batch == b.name and o.name not in w)
                    or (b.source in REPLACES_ITS_OWN and o.source == b.source and o.batch != b.name)
                ),
            )
        ledger.objects = self.hour_objects(hour)
        return ledger, resent

    def _drop(self, objects: list[RawObject], unwanted: Callable[[RawObject], bool]) -> list[RawObject]:
        """Delete the objects `unwanted` picks; returns the rest."""
        bucket = settings.validate_bucket(self.bucket)
        kept = []
        for o in objects:
            if unwanted(o):
                self.aws.s3.delete_object(Bucket=bucket, Key=o.key)
            else:
                kept.append(o)
        return kept

    def handle_output(self, context: OutputContext, obj: RawBatches) -> None:
        per_hour, resent = {}, 0
        for hour in obj.hours:
            ledger, n = self.store_hour(hour, obj.produce(hour))
            obj.ledgers[hour_key(hour)] = ledger
            per_hour[hour_key(hour)] = sum(o.records for o in ledger.objects)
            resent += n
        context.add_output_metadata(
            {
                "dagster/partition_row_count": sum(per_hour.values()),
                "records_per_hour": per_hour,
                "arrivals_per_hour": MetadataValue.json({k: v.by_source() for k, v in obj.ledgers.items()}),
                "raw_objects": sum(len(v.objects) for v in obj.ledgers.values()),
                "dagster/uri": MetadataValue.path(f"s3://{self.bucket}/{self.prefix}/"),
                "kinesis_records_resent": resent,
            }
        )

    def load_input(self, context: InputContext) -> list[RawObject]:
        keys = context.asset_partition_keys if context.has_asset_partitions else []
        if not keys:  # e.g. an hour that is not complete yet: never read it as an empty hour
            raise ValueError(
                "raw_sensor_batches: no raw partition maps to this step's partition (an hour that "
                "is not complete yet?); an hour is never read as empty"
            )
        out = []
        for pk in keys:
            objects = self.hour_objects(parse_hour_key(pk))
            if not objects:
                raise FileNotFoundError(
                    f"no raw objects for partition {pk} under "
                    f"s3://{self.bucket}/{raw_key(self.prefix, parse_hour_key(pk), '')}; "
                    "materialise raw_sensor_batches for it first"
                )
            out += objects
        return out
