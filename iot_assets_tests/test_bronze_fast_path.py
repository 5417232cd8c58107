"""Bronze's first pass accepts only records the full parse would give the same values and no
reason: on every record below, `parse_raw` (first pass, then the full parse of what it did not
accept) and the full parse alone give the same rows, and plain valid readings take the first pass.

The active (default) catalogue is tested here; the pump rig's catalogue, with a `long` channel
and optional channels, in a fresh interpreter (the catalogue is read when bronze is imported).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from pyspark.sql import functions as F

from iot_assets_tests.test_bronze import GOOD
from iot_assets_tests.test_bronze import rec as _rec

ROOT = Path(__file__).resolve().parents[1]
HOUR = "2026-11-21T10:00:00+00:00"


def corpus(base: dict, device: str, stamp: str, channels: list[str], status: str) -> list[str]:
    """Records around one valid reading `base`: every way a value, a key or the text can differ."""
    first, second = channels[0], channels[1]
    good = _rec(base)
    texts = [
        good,
        " \t" + good,
        good.replace(": ", ":"),
        _rec(base, **{first: 3}),
        _rec(base, **{first: -0.0}),
        _rec(base, **{first: 1.5e-320}),
        _rec(base, **{first: 12345678901234567890123}),
        _rec(base, **{first: 3.0, second: 1.5e3}),
        _rec(base, **{first: 3.5}),
        _rec(base, **{first: "48.5"}),
        _rec(base, **{first: " 48.5 "}),
        _rec(base, **{first: "12,5"}),
        _rec(base, **{first: True}),
        _rec(base, **{first: None}),
        _rec(base, **{first: ...}),
        _rec(base, **{first: {"v": 1}}),
        _rec(base, **{first: [1]}),
        _rec(base, **{first: "NaN"}),
        _rec(base, **{first: "Infinity"}),
        _rec(base, **{first: "-INF"}),
        good.replace(json.dumps(base[first]), "NaN", 1),
        good.replace(json.dumps(base[first]), "-Infinity", 1),
        good.replace(json.dumps(base[first]), "1e400", 1),
        good.replace(json.dumps(base[first]), "9223372036854775808", 1),
        good.replace(json.dumps(base[first]), "0x10", 1),
        good.replace(json.dumps(base[first]), "01", 1),
        _rec(base, **{device: 1234}),
        _rec(base, **{device: "dev 1"}),
        _rec(base, **{device: None}),
        _rec(base, **{stamp: 1795256100000}),
        _rec(base, **{stamp: 1795256100.5}),
        _rec(base, **{stamp: "1795256100"}),
        _rec(base, **{stamp: "2026-11-21T11:15:00+01:00"}),
        _rec(base, **{stamp: "2026-11-21T10:15:00 CST"}),
        _rec(base, **{stamp: "2026-11-21T11:15:00Z"}),
        _rec(base, **{stamp: "2026-11-21T09:59:59Z"}),
        _rec(base, **{stamp: "Sat, 21 Nov 2026 10:20:00 GMT"}),
        _rec(base, **{stamp: "2026-11-21"}),
        _rec(base, **{status: " Warning "}),
        _rec(base, **{status: 7}),
        _rec(base, **{status: None}),
        _rec(base, **{status: "normal,warning"}),
        _rec(base, **{status: {"a": 1, "b": 2}}),
        _rec(base, **{stamp: "2026-11-21T10:15:00,5Z"}),
        _rec(base, firmware="1.2.3"),
        _rec(base, **{first.upper(): 1.0}),
        good[:-1] + f', "{first}": 2.0}}',
        good[:-1] + f', "{device}": "dev-0002"}}',
        good[:-1] + ', "x": null}',
        good[:-1] + ', "": 1}',
        good + " trailing",
        good + good,
        good[:-1],
        "[" + good + "]",
        "null",
        '"text"',
        "{}",
        good.replace('"', "'"),
    ]
    return texts


def compare(spark, texts: list[str]) -> tuple[int, int, list[int]]:
    """(records, records the first pass accepted, indices where the two ways differ)."""
    from iot_assets.assets.bronze import ENVELOPE, _parse_each, first_pass, parse_raw

    rows = [(f"test:{i}", HOUR, i, t, None, "kinesis", "s-0", str(i), "k", HOUR, None) for i, t in enumerate(texts)]
    rows += [
        (f"test:{len(texts)}", HOUR, len(texts), None, "//79/w==", "kinesis", "s-0", "n", "k", HOUR, None),
        (f"test:{len(texts) + 1}", HOUR, len(texts) + 1, texts[0], None, "s3_landing", None, None, None, None,
         "trailing_text: 4 bytes after the JSON value on its line"),
    ]  # fmt: skip
    envelopes = spark.createDataFrame(rows, ENVELOPE).withColumn("source_object", F.lit("s3a://b/raw/x"))
    now = F.lit("2026-11-21 10:30:00").cast("timestamp")
    both = parse_raw(envelopes).withColumn("ingest_time", now)
    full = _parse_each(envelopes.withColumn("ingest_time", now)).select(*both.columns)

    def by_index(df):
        # A reading's arrival id is kept only by quarantine (bronze keeps the Kinesis fields).
        df = df.withColumn("arrival_id", F.when(F.col("reason").isNotNull(), F.col("arrival_id")))
        return {r["record_index"]: repr(r) for r in df.collect()}

    a, b = by_index(both), by_index(full)
    accepted = first_pass(envelopes).where("_fast").count()
    return len(rows), accepted, sorted(i for i in set(a) | set(b) if a.get(i) != b.get(i))


def test_the_first_pass_changes_no_row(spark):
    texts = corpus(GOOD, "device_id", "timestamp", ["temperature", "humidity"], "status")
    records, accepted, differ = compare(spark, texts)
    assert differ == [], [texts[i] if i < len(texts) else i for i in differ]
    # The plain valid readings (the first seven, and the integer, -0.0, subnormal, huge-integer,
    # "3.0", offset and RFC 2822 variants) take the first pass; no other record does.
    assert 10 <= accepted < records - 30


RIG_SCRIPT = """
import json, sys
from pyspark.sql import SparkSession
from iot_assets_tests.test_bronze_fast_path import compare, corpus
spark = SparkSession.builder.master("local[1]").config("spark.sql.session.timeZone", "UTC").getOrCreate()
base = {"rig": "rig-a", "datetime": "2026-11-21 10:15:00", "Accelerometer1RMS": 0.2, "Accelerometer2RMS": 0.3,
        "Current": 2.1, "Pressure": 0.5, "Temperature": 70.0, "Thermocouple": 25.0, "Voltage": 230.0,
        "Volume Flow RateRMS": 32.0, "state": "normal"}
texts = corpus(base, "rig", "datetime", ["Accelerometer1RMS", "Current"], "state")
long_key = sys.argv[1]
texts += [json.dumps({**base, long_key: v}) for v in (12, 12.0, 1.2e3, 12.5, "12", 2**63, -(2**63), None, "x")]
print(json.dumps(compare(spark, texts)))
"""


def test_the_first_pass_changes_no_row_with_long_and_optional_channels():
    import yaml

    catalogue = ROOT / "docs" / "examples" / "pump_rig.yaml"
    channels = yaml.safe_load(catalogue.read_text())["channels"]
    long_key = next(c.get("source", c["name"]) for c in channels if c.get("type") == "long")
    assert any(c.get("required") is False for c in channels)
    env = {**os.environ, "IOT_SENSOR_CATALOGUE": str(catalogue)}
    done = subprocess.run(
        [sys.executable, "-c", RIG_SCRIPT, long_key], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    records, accepted, differ = json.loads(done.stdout.strip().splitlines()[-1])
    assert differ == [], differ
    assert 10 <= accepted < records - 30
