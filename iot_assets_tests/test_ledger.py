"""The arrival ledger's audit and the raw checks built on it, on hand-made ledgers."""

from datetime import UTC, datetime

from iot_assets.assets.raw import arrival_checks
from iot_assets.lib.partitions import hour_key
from iot_assets.resources.io_managers import HourLedger, RawBatches, RawObject

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
