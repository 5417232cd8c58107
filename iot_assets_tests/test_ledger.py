"""The arrival ledger's audit and the raw checks built on it, on hand-made ledgers."""

import json
import uuid
from datetime import UTC, datetime

import pytest

from iot_assets.assets.raw import arrival_checks
from iot_assets.lib.partitions import hour_key
from iot_assets.resources.io_managers import (
    HourLedger,
    RawBatch,
    RawBatches,
    RawObject,
    S3KinesisRawIOManager,
    stored_batches,
)

HOUR = datetime(2026, 11, 10, 12, tzinfo=UTC)


def entry(source="s3_landing", arrived=0, stored=0, duplicates=0, routed=0, home=True, unplaced=0) -> dict:
    return {
        "source": source,
        "arrived": arrived,
        "stored": stored,
        "duplicates": duplicates,
        "routed_elsewhere": routed,
        "already_stored": 0,
        "home": home,
        "unplaced": unplaced,
    }


def raw_object(name: str, records: int) -> RawObject:
    key = f"raw/dt=2026-11-10/hour=12/{name}.jsonl.gz"
    return RawObject(HOUR, f"s3a://b/{key}", key, records, name.split("-")[0])


def test_a_batch_that_reconciles_counts_every_record_as_accounted():
    ledger = HourLedger(
        {
            "kinesis-aa": entry("kinesis", arrived=7, stored=5, duplicates=2),
            "s3_landing-bb": entry(arrived=3, stored=2, routed=1),
        },
        [raw_object("kinesis-aa", 5), raw_object("s3_landing-bb", 2)],
    )
    assert ledger.audit() == (10, 0, [])


def test_a_lost_record_and_a_missing_object_are_counted_and_named():
    ledger = HourLedger(
        {
            "kinesis-aa": entry("kinesis", arrived=7, stored=5, duplicates=1),
            "s3_landing-bb": entry(arrived=4, stored=4),
            "s3_landing-cc": entry(arrived=2, routed=2, home=False),
        },  # all of it in another hour
        [raw_object("kinesis-aa", 5)],
    )
    ok, bad, problems = ledger.audit()
    assert (ok, bad) == (6 + 2, 1 + 4)
    assert problems == [
        "kinesis-aa: 7 arrived != 5 stored + 1 duplicates + 0 in other hours",
        "s3_landing-bb: no raw object, 4 records arrived",
    ]


def test_arrival_checks_give_rows_per_hour_for_the_quality_log():
    good = HourLedger({"s3_landing-bb": entry(arrived=3, stored=3, unplaced=1)}, [raw_object("s3_landing-bb", 3)])
    batches = RawBatches([HOUR], lambda h: [], {hour_key(HOUR): good})
    reconciles, keys = arrival_checks(batches)
    assert reconciles.passed and reconciles.by_partition == {HOUR: (3, 0)}
    assert reconciles.detail["arrivals_per_hour"][hour_key(HOUR)]["s3_landing"]["stored"] == 3
    assert not keys.passed and keys.by_partition == {HOUR: (2, 1)}
    assert keys.detail["unplaced_objects"] == 1 and keys.detail["unplaced_by_hour"] == {hour_key(HOUR): 1}


def test_a_batch_stored_as_parts_counts_once_and_a_missing_part_is_named():
    parts = [raw_object(f"kinesis-aa.p{i}of3", n) for i, n in ((1, 10), (2, 10), (3, 5))]
    batches = {"kinesis-aa": entry("kinesis", arrived=25, stored=25)}
    assert stored_batches(parts) == {"kinesis-aa": 25}
    assert HourLedger(batches, parts).audit() == (25, 0, [])
    ok, bad, problems = HourLedger(batches, [parts[0], parts[2]]).audit()
    assert (ok, bad) == (0, 25)
    assert problems == ["kinesis-aa: some of its raw object's parts are missing, 25 records arrived"]
    # Parts of a split stopped part way beside a complete one: the complete split counts.
    assert stored_batches([*parts, raw_object("kinesis-aa.p1of2", 13)]) == {"kinesis-aa": 25}


@pytest.mark.e2e
def test_a_large_batch_is_stored_as_parts_that_spark_reads_side_by_side(spark, resources, local_aws):
    """On the local stack: parts of at most `part_records` records, read as one split each, every
    record once; a part lost is restored by storing again, and a new part size replaces the parts of
    a store that stopped part way."""
    from iot_assets.assets.bronze import read_raw
    from iot_assets.resources.config import resolved

    aws, bucket = resolved("aws"), resolved("lake").bucket
    raw_io = S3KinesisRawIOManager(aws=aws, bucket=bucket, prefix=f"raw-{uuid.uuid4().hex[:8]}", part_records=10)
    payloads = [json.dumps({"device_id": f"dev-{i % 4}", "n": i}).encode() for i in range(25)]
    batch = RawBatch(HOUR, "s3_landing", payloads, [f"dev-{i % 4}" for i in range(25)])
    names = lambda objects: [o.name for o in objects]  # noqa: E731

    ledger, _ = raw_io.store_hour(HOUR, [batch])
    assert names(ledger.objects) == [f"{batch.name}.p{i}of3" for i in (1, 2, 3)]
    assert [o.records for o in ledger.objects] == [10, 10, 5] and ledger.audit() == (25, 0, [])
    envelopes = read_raw(spark, ledger.objects)
    assert envelopes.rdd.getNumPartitions() > 1  # one task would read a single object (Spark packs small ones)
    rows = envelopes.select("record_index", "payload", "source_object").collect()
    assert sorted(r.record_index for r in rows) == list(range(25))
    assert sorted(r.payload.encode() for r in rows) == sorted(payloads)
    assert len({r.source_object for r in rows}) == 3

    again, _ = raw_io.store_hour(HOUR, [batch])
    assert again.batches[batch.name]["already_stored"] == 25 and again.batches[batch.name]["stored"] == 0

    aws.s3.delete_object(Bucket=bucket, Key=ledger.objects[1].key)
    assert HourLedger(ledger.batches, raw_io.hour_objects(HOUR)).audit()[:2] == (0, 25)
    restored, _ = raw_io.store_hour(HOUR, [batch])
    assert names(restored.objects) == names(ledger.objects) and restored.audit() == (25, 0, [])

    aws.s3.delete_object(Bucket=bucket, Key=ledger.objects[0].key)
    resized = raw_io.model_copy(update={"part_records": 7})
    redone, _ = resized.store_hour(HOUR, [batch])
    assert names(redone.objects) == [f"{batch.name}.p{i}of4" for i in (1, 2, 3, 4)]
    assert [o.records for o in redone.objects] == [7, 7, 7, 4] and redone.audit() == (25, 0, [])
