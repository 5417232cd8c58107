"""Incidents from the anomaly log: consecutive confirmed flags merge, open incidents carry across
hours, and a range run gives each hour what its own run gives it."""

from datetime import datetime, timedelta

from pyspark.sql import functions as F

from iot_assets.assets.incidents import incident_summary, incidents
from iot_assets.assets.verdicts import IncidentRecord
from iot_assets.lib.schemas import struct_type

H = datetime(2026, 11, 21, 10)
M = timedelta(minutes=1)
COLS = ["device_id", "event_time", "metric", "method", "severity", "confirmed"]


def log(spark, rows):
    return spark.createDataFrame(rows, COLS).withColumn("event_hour", F.date_trunc("hour", "event_time"))


ROWS = [
    ("d1", H, "temperature", "threshold", "low", True),
    ("d1", H, "temperature", "zscore", "high", True),
    ("d1", H + M, "multivariate:vibration", "kmeans", "medium", True),
    ("d1", H + 5 * M, "temperature", "zscore", "medium", True),
    ("d1", H + 20 * M, "humidity", "zscore", "low", False),  # unconfirmed: no incident
    ("d1", H + 30 * M, "pressure", "threshold", "critical", True),
    ("d2", H + 55 * M, "vibration", "zscore", "high", True),  # still open at 11:00
    ("d2", H + 62 * M, "vibration", "zscore", "critical", True),  # continues it in hour 11
    ("d3", H + 58 * M, "humidity", "threshold", "high", True),  # open at 11:00, closes in hour 11 unseen
]


def none(spark):
    return spark.createDataFrame([], struct_type(IncidentRecord))


def by_key(df):
    return {(r["incident_id"], r["event_hour"]): r.asDict() for r in df.collect()}


def test_consecutive_flags_merge_and_open_incidents_continue(spark):
    first = incidents(log(spark, [r for r in ROWS if r[1] < H + 60 * M]), none(spark), H, H)
    got = {r["incident_id"]: r for r in first.collect()}
    assert set(got) == {
        "d1@2026-11-21T10:00:00.000000",
        "d1@2026-11-21T10:30:00.000000",
        "d2@2026-11-21T10:55:00.000000",
        "d3@2026-11-21T10:58:00.000000",
    }
    a = got["d1@2026-11-21T10:00:00.000000"]
    assert (a["readings"], a["peak_severity"], a["closed_at"]) == (3, "high", H + 5 * M)
    assert (a["methods"], a["metrics"]) == ("kmeans,threshold,zscore", "multivariate:vibration,temperature")
    assert a["first_detected_by"] == "threshold,zscore"
    assert got["d2@2026-11-21T10:55:00.000000"]["closed_at"] is None
    second = incidents(log(spark, [r for r in ROWS if r[1] >= H + 60 * M]), first, H + 60 * M, H + 60 * M)
    nxt = {r["incident_id"]: r for r in second.collect()}
    assert set(nxt) == {"d2@2026-11-21T10:55:00.000000", "d3@2026-11-21T10:58:00.000000"}
    d2, d3 = nxt["d2@2026-11-21T10:55:00.000000"], nxt["d3@2026-11-21T10:58:00.000000"]
    assert (d2["readings"], d2["peak_severity"], d2["closed_at"], d2["opened_in_hour"]) == (
        2,
        "critical",
        H + 62 * M,
        H,
    )
    assert (d3["readings"], d3["closed_at"]) == (1, H + 58 * M)
    info = incident_summary(second)
    assert info["incidents_opened"] == 0 and info["incidents_closed"] == 2


def test_a_range_run_gives_each_hour_what_its_own_run_gives(spark):
    first = incidents(log(spark, [r for r in ROWS if r[1] < H + 60 * M]), none(spark), H, H)
    second = incidents(log(spark, [r for r in ROWS if r[1] >= H + 60 * M]), first, H + 60 * M, H + 60 * M)
    both = incidents(log(spark, ROWS), none(spark), H, H + 60 * M)
    assert by_key(both) == {**by_key(first), **by_key(second)}
    assert incident_summary(both)["incidents_opened"] == 4


def test_a_long_incident_stays_one_incident_across_quiet_hour_boundaries(spark):
    rows = [("d1", H + i * 7 * M, "temperature", "kmeans", "low", True) for i in range(30)]  # 10:00 .. 13:23
    out = incidents(log(spark, rows), none(spark), H, H + 4 * 60 * M)
    got = sorted(out.collect(), key=lambda r: r["event_hour"])
    assert [r["event_hour"] for r in got] == [H + i * 60 * M for i in range(4)]
    assert {r["incident_id"] for r in got} == {"d1@2026-11-21T10:14:00.000000"}  # opens at its third reading
    assert [r["closed_at"] for r in got] == [None, None, None, H + 29 * 7 * M]
    assert got[-1]["readings"] == 30


def test_an_incident_opens_only_once_its_evidence_persists(spark):
    """Three confirmed readings within the gap, or one of high severity, open an incident; lone
    low-severity readings open none. A stretch that starts before an hour boundary opens in the
    next hour's own run exactly as in a range run."""
    rows = [
        ("d1", H + 5 * M, "temperature", "kmeans", "low", True),  # alone: no incident
        ("d1", H + 30 * M, "temperature", "shift", "medium", True),  # two within 10 minutes: none yet
        ("d1", H + 38 * M, "temperature", "shift", "low", True),
        ("d2", H + 20 * M, "pressure", "zscore", "high", True),  # high severity: opens at once
        ("d3", H + 52 * M, "humidity", "shift", "low", True),  # evidence from 10:52 ...
        ("d3", H + 58 * M, "humidity", "shift", "low", True),
        ("d3", H + 64 * M, "humidity", "shift", "medium", True),  # ... opens the incident at 11:04
        ("d3", H + 66 * M, "humidity", "shift", "low", True),
    ]
    first = incidents(log(spark, [r for r in rows if r[1] < H + 60 * M]), none(spark), H, H)
    assert {r["incident_id"] for r in first.collect()} == {"d2@2026-11-21T10:20:00.000000"}
    # The next hour's run reads the hour before too (LOOKBACK): d3's evidence from 10:52 counts.
    second = incidents(log(spark, rows), first, H + 60 * M, H + 60 * M)
    got = {r["incident_id"]: r for r in second.collect()}
    assert set(got) == {"d3@2026-11-21T11:04:00.000000"}
    d3 = got["d3@2026-11-21T11:04:00.000000"]
    assert (d3["opened_at"], d3["readings"], d3["opened_in_hour"], d3["closed_at"]) == (
        H + 64 * M,
        4,
        H + 60 * M,
        H + 66 * M,
    )
    assert d3["first_detected_by"] == "shift"
    both = incidents(log(spark, rows), none(spark), H, H + 60 * M)
    assert by_key(both) == {**by_key(first), **by_key(second)}
