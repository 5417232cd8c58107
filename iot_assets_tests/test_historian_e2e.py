"""The SQL historian source end to end: a real PostgreSQL, its password in the local Secrets
Manager, JDBC reads in Spark, and the raw and bronze assets on the local stack.

Two hours either side of a month boundary, so the first hour reads both monthly tables: a scan
that starts at 23:59:59.998 and ends in December is one reading. Every historian row read is a
part of a bronze reading or of a quarantine row with a reason.
"""

import json
import uuid
from datetime import UTC, datetime

import psycopg2
import pytest
from dagster import AssetSelection, DagsterInstance

from iot_assets.lib import reasons
from iot_assets.lib.partitions import HOUR, hour_key
from iot_assets.lib.tables import named
from iot_assets.resources.config import resolved
from iot_assets.resources.historian import HistorianSource, epoch_ms, rows_in
from iot_assets.resources.io_managers import S3KinesisRawIOManager
from iot_assets.resources.lakehouse import DeltaLakehouse
from iot_assets.resources.raw_source import RawSource
from iot_assets.tools.demo import materialize_hours
from iot_assets.tools.simulator import FleetConfig
from iot_assets.tools.simulator.historian import seed

pytestmark = pytest.mark.e2e

UTC = UTC
FIRST = datetime(2026, 11, 30, 23, tzinfo=UTC)  # the last hour of November
LAST = FIRST + HOUR  # the first hour of December
FLEET = FleetConfig(device_count=3, readings_per_hour=20, anomaly_rate=0.0)
BOUNDARY = epoch_ms(LAST)
TO_BRONZE = AssetSelection.groups("raw", "bronze")


def _sql(db, query: str, args=()):
    with psycopg2.connect(**db["libpq"]) as conn, conn.cursor() as cur:
        cur.execute(query, args)
        return cur.fetchall() if cur.description else None


def _tag(db, path: str) -> int:
    return _sql(db, "SELECT id FROM sqlth_te WHERE tagpath LIKE %s", (f"%/{path}",))[0][0]


def _samples(db, table: str, tag: int) -> list[int]:
    return [t for (t,) in _sql(db, f"SELECT t_stamp FROM {table} WHERE tagid = %s ORDER BY t_stamp", (tag,))]


def _edit_historian(db) -> dict:
    """Bad quality codes, unknown tags, a misaligned scan and a scan across the month boundary."""
    nov, dec = "sqlt_data_1_2026_11", "sqlt_data_1_2026_12"
    temp1, pres1 = _tag(db, "dev-0001/temperature"), _tag(db, "dev-0001/pressure")
    bad = _samples(db, nov, temp1)[1:4]
    _sql(db, f"UPDATE {nov} SET dataintegrity = 0 WHERE tagid = %s AND t_stamp = ANY(%s)", (temp1, bad))
    _sql(
        db,
        f"UPDATE {dec} SET dataintegrity = 24 WHERE tagid = %s AND t_stamp = %s",
        (pres1, _samples(db, dec, pres1)[4]),
    )
    # tag 9999 is in no tag table; tag 9998's path names no field
    _sql(db, "INSERT INTO sqlth_te (id, tagpath) VALUES (9998, 'plant-north/line-1/dev-0002')")
    for tag, at in ((9999, 600_000), (9999, 1_200_000), (9998, 900_000)):
        _sql(
            db,
            f"INSERT INTO {nov} (tagid, floatvalue, dataintegrity, t_stamp) VALUES (%s, 1.5, 192, %s)",
            (tag, epoch_ms(FIRST) + at),
        )
    # dev-0002's humidity of its 6th scan arrives 5 s after the rest of the scan
    hum2 = _tag(db, "dev-0002/humidity")
    late = _samples(db, nov, hum2)[5]
    _sql(db, f"UPDATE {nov} SET t_stamp = t_stamp + 5000 WHERE tagid = %s AND t_stamp = %s", (hum2, late))
    # dev-0000 reads at 23:59:59.998 .. 00:00:00.004: two samples in November's table, five in December's
    fields = ["temperature", "humidity", "pressure", "vibration", "battery_level", "signal_strength", "status"]
    near = [
        t
        for tab in (nov, dec)
        for f in fields
        for t in _samples(db, tab, _tag(db, f"dev-0000/{f}"))
        if abs(t - BOUNDARY) < 2000
    ]
    assert not near, "the simulated dev-0000 already reads at midnight; pick another device"
    for k, field in enumerate(fields):
        stamp = BOUNDARY - 2 + k
        number, text = (None, "normal") if field == "status" else (10.0 + k, None)
        _sql(
            db,
            f"INSERT INTO {nov if stamp < BOUNDARY else dec} (tagid, floatvalue, stringvalue, dataintegrity, "
            "t_stamp) VALUES (%s, %s, %s, 192, %s)",
            (_tag(db, f"dev-0000/{field}"), number, text, stamp),
        )
    return {"bad": 4, "unknown": 3, "late_humidity_scan": late}


@pytest.fixture(scope="module")
def historian_run(historian_db, resources, spark):
    from iot_assets.definitions import defs

    with psycopg2.connect(**historian_db["libpq"]) as conn:
        seeded = seed(conn, FLEET, [FIRST, LAST], bad_quality_rate=0.0)
    edits = _edit_historian(historian_db)
    uid = uuid.uuid4().hex[:8]
    aws, bucket = resolved("aws"), resolved("lake").bucket
    lake = DeltaLakehouse(bucket=bucket, prefix=f"historian{uid}")
    raw_io = S3KinesisRawIOManager(aws=aws, bucket=bucket, prefix=f"raw-{uid}")
    historian = HistorianSource(aws=aws, **historian_db["settings"])
    overrides = {
        **defs.resources,
        "lake": lake,
        "raw_io_manager": raw_io,
        "historian": historian,
        "raw_source": RawSource(**{**resolved("raw_source").model_dump(), "source": "historian"}),
    }
    instance = DagsterInstance.ephemeral()

    def run(selection=TO_BRONZE):
        return materialize_hours(
            FIRST, LAST, instance=instance, resources=overrides, selection=selection, include_registry=False
        )

    return {
        "seeded": seeded,
        "edits": edits,
        "result": run(),
        "run": run,
        "lake": lake,
        "raw_io": raw_io,
        "instance": instance,
    }


def _window(spark, lake, table, column):
    return lake.read_window(spark, named(table), FIRST, LAST + HOUR)


def _db_rows(db) -> int:
    return sum(
        _sql(
            db,
            f"SELECT count(*) FROM {t} WHERE t_stamp >= %s AND t_stamp < %s",
            (epoch_ms(FIRST), epoch_ms(LAST + HOUR)),
        )[0][0]
        for t in ("sqlt_data_1_2026_11", "sqlt_data_1_2026_12")
    )


def _checks(result) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_every_historian_row_is_in_bronze_or_quarantine(historian_run, historian_db, spark):
    lake, result = historian_run["lake"], historian_run["result"]
    assert result.success
    checks = _checks(result)
    assert checks["check_raw_reconciles_arrivals"].passed and checks["check_bronze_reconciles_raw"].passed
    readings = _window(spark, lake, "bronze_sensor_readings", "event_hour")
    quarantine = _window(spark, lake, "bronze_quarantine", "batch_hour").collect()
    assert {r["source"] for r in quarantine} == {"historian"}
    in_quarantine = sum(len(rows_in(r["arrival_id"])) for r in quarantine)
    assert _db_rows(historian_db) == 7 * readings.count() + in_quarantine
    read = checks["check_raw_reconciles_arrivals"].metadata["historian_rows_read"].value
    assert sum(n for per_table in read.values() for n in per_table.values()) == _db_rows(historian_db)
    # the first hour read both monthly tables: its boundary scan ends in December's
    assert read[hour_key(FIRST)]["sqlt_data_1_2026_12"] == 5


def test_a_scan_across_the_month_boundary_is_one_reading(historian_run, spark):
    lake = historian_run["lake"]
    rows = (
        _window(spark, lake, "bronze_sensor_readings", "event_hour")
        .where("device_id = 'dev-0000' and event_time between '2026-11-30 23:59:59' and '2026-12-01 00:00:01'")
        .collect()
    )
    assert len(rows) == 1
    r = rows[0]
    assert r["event_time"] == datetime(2026, 11, 30, 23, 59, 59, 998000)
    assert (r["temperature"], r["humidity"], r["signal_strength"], r["status"]) == (10.0, 11.0, 15.0, "normal")
    assert r["source"] == "historian"


def test_bad_quality_codes_and_unknown_tags_reach_quarantine_with_their_reason(historian_run, spark):
    rows = _window(spark, historian_run["lake"], "bronze_quarantine", "batch_hour").collect()
    bad = [r for r in rows if r["reason"] == reasons.BAD_QUALITY]
    assert sorted(r["reason_detail"].split(" ")[1] for r in bad) == ["dataintegrity=0"] * 3 + ["dataintegrity=24"]
    assert all("dev-0001/" in r["reason_detail"] for r in bad)
    unknown = [r for r in rows if r["reason"] == reasons.UNKNOWN_TAG]
    assert len(unknown) == historian_run["edits"]["unknown"]
    assert sum("tagid=9999 is not in sqlth_te" in r["reason_detail"] for r in unknown) == 2
    assert all(len(rows_in(r["arrival_id"])) == 1 for r in bad + unknown)


def test_a_misaligned_scan_leaves_the_field_null_never_invented(historian_run, spark):
    lake, late = historian_run["lake"], historian_run["edits"]["late_humidity_scan"]
    quarantine = _window(spark, lake, "bronze_quarantine", "batch_hour").where("reason = 'missing_field'").collect()
    mine = [
        r
        for r in quarantine
        if json.loads(r["payload"])["device_id"] == "dev-0002"
        and abs(epoch_ms(datetime.fromisoformat(json.loads(r["payload"])["timestamp"])) - late) <= 5000 + 10
    ]
    details = sorted(r["reason_detail"] for r in mine)
    assert details == ["humidity", "temperature,pressure,vibration,battery_level,signal_strength,status"]
    scan = next(json.loads(r["payload"]) for r in mine if r["reason_detail"] == "humidity")
    assert scan["humidity"] is None and scan["temperature"] is not None
    bronze = _window(spark, lake, "bronze_sensor_readings", "event_hour").where("device_id = 'dev-0002'")
    assert bronze.count() == FLEET.readings_per_hour * 2 - 1


def test_a_rerun_is_idempotent(historian_run, spark):
    lake, raw_io = historian_run["lake"], historian_run["raw_io"]
    objects = {h: [o.key for o in raw_io.hour_objects(h)] for h in (FIRST, LAST)}
    counts = [
        _window(spark, lake, t, c).count()
        for t, c in (("bronze_sensor_readings", "event_hour"), ("bronze_quarantine", "batch_hour"))
    ]
    again = historian_run["run"]()
    assert again.success and _checks(again)["check_bronze_reconciles_raw"].passed
    assert {h: [o.key for o in raw_io.hour_objects(h)] for h in (FIRST, LAST)} == objects
    assert [
        _window(spark, lake, t, c).count()
        for t, c in (("bronze_sensor_readings", "event_hour"), ("bronze_quarantine", "batch_hour"))
    ] == counts


def test_the_password_is_in_no_log_metadata_or_config(historian_run, historian_db, spark, capfd):
    password, instance = historian_db["password"], historian_run["instance"]
    again = historian_run["run"](AssetSelection.groups("raw"))
    out, err = capfd.readouterr()
    assert password not in out + err
    from dagster._serdes import serialize_value

    for result in (historian_run["result"], again):
        run = instance.get_run_by_id(result.run_id)
        assert password not in json.dumps(run.run_config, default=str)
        assert password not in serialize_value(run.tags)
        for entry in instance.all_logs(result.run_id):
            assert password not in serialize_value(entry)
    assert all(password not in value for _, value in spark.sparkContext.getConf().getAll())


def test_a_rerun_after_the_historian_changed_replaces_the_hours_batch(historian_run, historian_db, spark):
    raw_io = historian_run["raw_io"]
    before = [o.key for o in raw_io.hour_objects(FIRST)]
    _sql(
        historian_db,
        "UPDATE sqlt_data_1_2026_11 SET dataintegrity = 0 WHERE t_stamp = "
        "(SELECT min(t_stamp) FROM sqlt_data_1_2026_11 WHERE dataintegrity = 192)",
    )
    again = historian_run["run"](AssetSelection.groups("raw"))
    assert _checks(again)["check_raw_reconciles_arrivals"].passed
    after = raw_io.hour_objects(FIRST)
    assert len(after) == 1 and after[0].key not in before and after[0].source == "historian"
