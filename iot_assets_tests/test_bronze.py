"""Bronze parsing on hand-made records: every kind of bad input gets its specific reason."""

import json

import pytest
from pyspark.sql import functions as F

from iot_assets.assets.bronze import ENVELOPE, parse_raw, split_bronze
from iot_assets.lib import reasons

HOUR = "2026-11-21T10:00:00+00:00"
GOOD = {
    "device_id": "dev-0001",
    "timestamp": "2026-11-21T10:15:00.000Z",
    "temperature": 50.5,
    "humidity": 40.0,
    "pressure": 2.1,
    "vibration": 1.2,
    "battery_level": 90.0,
    "signal_strength": -60,
    "status": "normal",
}


def rec(base: dict | None = None, /, **over) -> str:
    """The record `base` (GOOD by default) as JSON, with fields replaced (`...`: removed)."""
    d = dict(GOOD if base is None else base)
    for k, v in over.items():
        if v is ...:
            d.pop(k)
        else:
            d[k] = v
    return json.dumps(d)


CASES = [
    ("good", rec(), None),
    ("good epoch millis", rec(timestamp=1795256100000), None),
    ("good offset", rec(timestamp="2026-11-21T11:15:00+01:00"), None),
    ("good quoted number", rec(temperature="50.5"), None),
    ("truncated json", rec()[:40], reasons.MALFORMED_JSON),
    ("not json", "hello sensor", reasons.MALFORMED_JSON),
    ("json array", "[1, 2, 3]", reasons.NOT_AN_OBJECT),
    ("missing field", rec(temperature=...), reasons.MISSING_FIELD),
    ("null field", rec(device_id=None), reasons.MISSING_FIELD),
    ("comma decimal", rec(temperature="12,5"), reasons.INVALID_TYPE),
    ("boolean", rec(pressure=True), reasons.INVALID_TYPE),
    ("NaN literal", rec().replace('"pressure": 2.1', '"pressure": NaN'), reasons.INVALID_TYPE),
    ("Infinity string", rec(vibration="Infinity"), reasons.INVALID_TYPE),
    ("path device id", rec(device_id="../../etc/passwd"), reasons.INVALID_DEVICE_ID),
    ("space device id", rec(device_id="dev 1"), reasons.INVALID_DEVICE_ID),
    ("long device id", rec(device_id="d" * 300), reasons.INVALID_DEVICE_ID),
    ("bad timestamp", rec(timestamp="21/11/2026 10h"), reasons.INVALID_TIMESTAMP),
    ("late", rec(timestamp="2026-11-21T07:15:00Z"), reasons.LATE_EVENT),
    ("far past", rec(timestamp="1999-01-01T00:00:00Z"), reasons.LATE_EVENT),
    ("future", rec(timestamp="2026-11-21T15:15:00Z"), reasons.FUTURE_EVENT),
    ("huge record", rec(note="x" * 70_000), reasons.RECORD_TOO_LARGE),
]


@pytest.fixture(scope="module")
def parsed(spark):
    rows = [
        (f"test:{i}", HOUR, i, text, None, "simulator", None, None, None, None, None)
        for i, (_, text, _) in enumerate(CASES)
    ]
    rows.append(
        ("test:utf8", HOUR, len(CASES), None, "//79/w==", "simulator", None, None, None, None, None)
    )  # not UTF-8
    df = spark.createDataFrame(rows, ENVELOPE).withColumn("source_object", F.lit("s3a://b/raw/x"))
    return parse_raw(df).select("record_index", "reason", "reason_detail").orderBy("record_index").collect()


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c[0] for c in CASES])
def test_reason(parsed, index):
    assert parsed[index]["reason"] == CASES[index][2], parsed[index]


def test_not_utf8(parsed):
    assert parsed[-1]["reason"] == reasons.NOT_UTF8


def test_details_name_the_field(parsed):
    by_name = {c[0]: parsed[i] for i, c in enumerate(CASES)}
    assert by_name["missing field"]["reason_detail"] == "temperature"
    assert by_name["comma decimal"]["reason_detail"] == "temperature=12,5"
    assert by_name["late"]["reason_detail"].startswith("timestamp=2026-11-21T07:15")


def test_split_reconciles_and_keeps_drift(spark):
    texts = [rec(), rec(firmware="1.2.3"), "{oops"]
    rows = [
        (f"kinesis:s/shard-0/{100 + i}", HOUR, i, t, None, "kinesis", "shard-0", str(100 + i), "dev-0001", HOUR, None)
        for i, t in enumerate(texts)
    ]
    df = spark.createDataFrame(rows, ENVELOPE).withColumn("source_object", F.lit("s3a://b/raw/x"))
    good, bad = split_bronze(parse_raw(df))
    good_rows = good.orderBy("record_index").collect()
    assert len(good_rows) + bad.count() == len(texts)
    assert good_rows[0]["extra_fields"] is None
    assert json.loads(good_rows[1]["extra_fields"]) == {"firmware": "1.2.3"}
    assert good_rows[0]["kinesis_sequence_number"] == "100"
    assert str(good_rows[0]["event_hour"]) == "2026-11-21 10:00:00"
    assert bad.collect()[0]["payload"] == "{oops"
