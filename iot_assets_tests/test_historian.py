"""The historian source's pure parts: table names, URL checks, classification and long -> wide."""

import json
from datetime import UTC, datetime

import pytest

from iot_assets.lib import reasons
from iot_assets.resources.historian import (
    classify,
    connection_params,
    month_tables,
    rows_in,
    to_readings,
    validate_identifier,
    validate_jdbc_url,
)

UTC = UTC
COLUMNS = (
    "table string, tagid int, intvalue long, floatvalue double, stringvalue string, dataintegrity int, t_stamp long"
)


def test_month_tables_by_name():
    assert month_tables(
        "sqlt_data_1", datetime(2026, 11, 30, 23, 59, tzinfo=UTC), datetime(2026, 12, 1, 1, tzinfo=UTC)
    ) == ["sqlt_data_1_2026_11", "sqlt_data_1_2026_12"]
    assert month_tables("h", datetime(2026, 12, 31, 23, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)) == ["h_2026_12"]


@pytest.mark.parametrize(
    "url",
    [
        "jdbc:postgresql://u:p@127.0.0.1/h",
        "jdbc:postgresql://h/db?password=x",
        "jdbc:mysql://h/db",
        "postgresql://h/db",
    ],
)
def test_jdbc_url_rejects_credentials_and_other_databases(url):
    with pytest.raises(ValueError):
        validate_jdbc_url(url)


def test_connection_params_and_identifiers():
    assert connection_params("jdbc:postgresql://127.0.0.1:5433/historian") == {
        "host": "127.0.0.1",
        "port": 5433,
        "dbname": "historian",
    }
    for bad in ("x; drop table y", "Upper", "a-b", ""):
        with pytest.raises(ValueError):
            validate_identifier(bad)
    assert rows_in("historian:t_2026_11/3/1000,t_2026_12/4/1001") == ["t_2026_11/3/1000", "t_2026_12/4/1001"]


def _classified(spark, rows, tags):
    return classify(spark.createDataFrame(rows, COLUMNS), spark.createDataFrame(tags, "id int, tagpath string"), "tags")


TAGS = [
    (1, "s/l/dev-1/temperature"),
    (2, "s/l/dev-1/humidity"),
    (3, "s/l/dev-1/status"),
    (4, "s/l/dev-1"),
    (5, "s/l/dev-1/colour"),
]


def test_classify_gives_each_unusable_row_a_reason(spark):
    got = {
        r["tagid"]: r["problem"]
        for r in _classified(
            spark,
            [
                ("t", 1, None, 20.5, None, 192, 1000),
                ("t", 2, None, 40.0, None, 0, 1001),
                ("t", 9, None, 1.0, None, 192, 1002),
                ("t", 4, None, 1.0, None, 192, 1003),
                ("t", 5, None, 1.0, None, 192, 1004),
            ],
            TAGS,
        ).collect()
    }
    assert got[1] is None
    assert got[2] == f"{reasons.BAD_QUALITY}: dataintegrity=0 for s/l/dev-1/humidity at t_stamp=1001"
    assert got[9] == f"{reasons.UNKNOWN_TAG}: tagid=9 is not in tags (t_stamp=1002)"
    assert got[4].startswith(f"{reasons.UNKNOWN_TAG}: tagpath s/l/dev-1 does not name")
    assert got[5].startswith(f"{reasons.UNKNOWN_TAG}: tagpath s/l/dev-1/colour does not name")


def test_samples_within_the_tolerance_are_one_record_and_a_missing_field_is_null(spark):
    rows = [
        ("t", 1, None, 20.5, None, 192, 1000),
        ("t", 2, None, 40.0, None, 192, 1003),
        ("t", 3, None, None, "normal", 192, 1004),
        ("t", 1, None, 21.0, None, 192, 61000),
        ("t", 3, None, None, "normal", 192, 61001),
        ("t", 2, None, 41.0, None, 192, 62000),
    ]  # humidity 1 s late: its own scan
    readings = to_readings(_classified(spark, rows, TAGS), tolerance_ms=500).orderBy("scan_ms").collect()
    records = [json.loads(r["payload"]) for r in readings]
    assert [r["scan_ms"] for r in readings] == [1000, 61000, 62000]
    assert records[0]["timestamp"] == "1970-01-01T00:00:01.000Z"
    assert (records[0]["temperature"], records[0]["humidity"], records[0]["status"]) == (20.5, 40.0, "normal")
    assert "humidity" in records[1] and records[1]["humidity"] is None  # null, not invented
    assert records[2]["humidity"] == 41.0 and records[2]["temperature"] is None
    assert readings[0]["arrival_id"] == "historian:t/1/1000,t/2/1003,t/3/1004"


def test_a_field_sampled_twice_in_one_scan_loses_no_sample(spark):
    rows = [("t", 1, None, 20.5, None, 192, 1000), ("t", 1, None, 20.6, None, 192, 1001)]
    readings = to_readings(_classified(spark, rows, TAGS), tolerance_ms=500).collect()
    assert sorted(json.loads(r["payload"])["temperature"] for r in readings) == [20.5, 20.6]
