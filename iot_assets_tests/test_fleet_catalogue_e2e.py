"""A second fleet end to end: a pump test rig, declared in its own catalogue, on a fresh lake.

The rig's first 8 channels, their source names (`Accelerometer1RMS`, `Volume Flow RateRMS`, ...),
the semicolon-separated export, the suction readings below zero and the flow readings above 100
follow the public SKAB test rig (Skoltech Anomaly Benchmark, a water pump loop with 8 sensors); a
ninth, the flow meter's `pulse_count`, is a `long` channel. The values here are generated, not
SKAB's. The rig's registry has its own attributes (`line`, `commissioned_year`): one rig is listed
in the reference file, the import registers the other. The catalogue is read when the layers are
imported, so the pipeline runs in a fresh interpreter with `IOT_SENSOR_CATALOGUE` set: `iot-assets
import` lands 25 hours as raw batches and backfills bronze to gold, then the anomaly group scores
the last hour, and the daily summary is materialised for the first day.
"""

import json
import os
import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
RIG_CATALOGUE = ROOT / "docs" / "examples" / "pump_rig.yaml"
RIG = yaml.safe_load(RIG_CATALOGUE.read_text())
SOURCES = [c["source"] for c in RIG["channels"]]
CHANNELS = [c["name"] for c in RIG["channels"]]
ATTRIBUTES = [a["name"] for a in RIG["registry"]]
LISTED = {"device_id": "rig-a", "line": "L1", "commissioned_year": 2019}  # in the reference file before the import
START = datetime(2026, 11, 12, 0, tzinfo=UTC)
HOURS, PER_HOUR, RIGS = 25, 20, ("rig-a", "rig-b")
FAULT = START + timedelta(hours=HOURS - 1, minutes=30)  # rig-a's motor stalls for 8 readings, and the flow stops


def _rig_csv(path: Path) -> dict:
    """The export, with its planted fault and two bad rows; returns what the test expects of it."""
    rng = np.random.default_rng(17)
    lines, fault_rows = [";".join(["datetime", "rig", *SOURCES])], 0
    step = timedelta(hours=1) / PER_HOUR
    for rig in RIGS:
        for i in range(HOURS * PER_HOUR):
            t = START + step * i
            current, accel = 1.1 + rng.normal(0, 0.05), 0.026 + rng.normal(0, 0.0005)
            pulses = int(rng.poisson(1500))
            if rig == "rig-a" and FAULT <= t < FAULT + step * 8:
                current, accel, fault_rows = 4.5 + rng.normal(0, 0.05), 0.06, fault_rows + 1
                pulses = int(rng.integers(0, 20))
            values = [
                accel,
                0.040 + rng.normal(0, 0.0005),
                current,
                0.2 + rng.normal(0, 0.4),  # a loop under suction: about 30 % below zero
                80 + rng.normal(0, 0.3),
                "" if i % 10 == 3 else 26 + rng.normal(0, 0.1),  # the optional thermocouple drops out
                230 + rng.normal(0, 8),
                125 + rng.normal(0, 2),  # above 100, as the rig's flow is
                pulses,
            ]
            lines.append(";".join([t.strftime("%Y-%m-%d %H:%M:%S"), rig, *(str(v) for v in values)]))
    # Three bad rows in the first hour: a pressure that is not a number, no motor current, and a
    # pulse count that is not whole.
    bad_type = f"{START:%Y-%m-%d} 00:01:00;rig-b;0.03;0.04;1.1;n/a;80;26;230;125;1500"
    missing = f"{START:%Y-%m-%d} 00:02:00;rig-b;0.03;0.04;;0.1;80;26;230;125;1500"
    not_whole = f"{START:%Y-%m-%d} 00:03:00;rig-b;0.03;0.04;1.1;0.1;80;26;230;125;1500.5"
    lines += [bad_type, missing, not_whole]
    path.write_text("\n".join(lines) + "\n")
    return {"rows": len(lines) - 1, "fault_rows": fault_rows}


PIPELINE = textwrap.dedent(
    """
    import json, sys
    from datetime import timedelta
    from pathlib import Path
    from dagster import DagsterInstance, materialize
    from pyspark.sql import functions as F
    from iot_assets.automation.jobs import ANOMALY_DETECTION
    from iot_assets.definitions import defs, executable_assets
    from iot_assets.lib.tables import named
    from iot_assets.resources.config import resolved
    from iot_assets.tools import importer
    from iot_assets.tools.demo import materialize_hours

    batches, result = importer.run_import(Path(sys.argv[1]), device_column="rig", out=lambda *a: None)
    assert result.success
    first, last = min(batches), max(batches)
    assert materialize_hours(last, last, include_registry=False, selection=ANOMALY_DETECTION).success
    daily = named("daily_device_summary")
    done = materialize(executable_assets, selection=[daily.key], partition_key=first.strftime("%Y-%m-%d"),
                       resources=defs.resources, instance=DagsterInstance.ephemeral())
    assert done.success
    spark, lake = resolved("spark").session, resolved("lake")
    tables = ["bronze_sensor_readings", "bronze_quarantine", "silver_sensor_readings", "silver_rejected_readings",
              "device_hourly_stats", "sensor_aggregates_10min", "daily_device_summary", "device_anomaly_models",
              "anomaly_log"]
    frames = {t: lake.read(spark, named(t)) for t in tables}
    silver, registry = frames["silver_sensor_readings"], lake.read(spark, named("device_registry"))
    log = frames["anomaly_log"]
    pulses = log.where("metric = 'pulse_count'")
    first_day = silver.where(F.to_date("event_time") == first.strftime("%Y-%m-%d"))
    confirmed = log.where("confirmed").select("device_id", "event_time").distinct()
    models = frames["device_anomaly_models"].where(F.col("event_hour") == F.lit(last))
    print(json.dumps({
        "raw": sum(len(b) for b in batches.values()),
        "columns": {t: frames[t].columns for t in tables},
        "types": {t: dict(frames[t].dtypes) for t in tables},
        "counts": {t: frames[t].count() for t in tables},
        "quarantine": sorted(f"{r['reason']}:{r['reason_detail']}" for r in frames["bronze_quarantine"].collect()),
        "negative_pressure": frames["silver_sensor_readings"].where("loop_pressure < 0").count(),
        "fluid_nulls": frames["silver_sensor_readings"].where("fluid_temperature is null").count(),
        "bands": sorted(r[0] for r in frames["silver_sensor_readings"].select("motor_heat").distinct().collect()),
        "registry": sorted((r.asDict() for r in registry.collect()), key=lambda r: r["device_id"]),
        "enriched": sorted(list(r) for r in silver.select("device_id", *registry.columns[1:]).distinct().collect()),
        "hourly_lines": sorted(r[0] for r in frames["device_hourly_stats"].select("line").distinct().collect()),
        "pulse_max": [first_day.agg(F.max("pulse_count")).first()[0],
                      frames["daily_device_summary"].agg(F.max("daily_max_pulse_count")).first()[0]],
        "pulse_flags": sorted((r["device_id"], r["method"], r["event_time"].isoformat(), r["value"])
                              for r in pulses.collect()),
        "models": sorted((r["device_id"], r["status"], r["training_rows"]) for r in models.collect()),
        "confirmed": sorted((r["device_id"], r["event_time"].isoformat()) for r in confirmed.collect()),
        "metrics": sorted(r[0] for r in log.where("confirmed").select("metric").distinct().collect()),
    }))
    """
)


@pytest.fixture(scope="module")
def rig_run(tmp_path_factory, local_aws):
    tmp = tmp_path_factory.mktemp("rig")
    catalogue, export = RIG_CATALOGUE, tmp / "rig_export.csv"
    expected = _rig_csv(export)
    uid = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "IOT_SENSOR_CATALOGUE": str(catalogue),
        "IOT_BUCKET": f"rig-{uid}",
        "IOT_LAKE_PREFIX": f"rig{uid}",
        "PYTHONPATH": str(ROOT),
    }
    from iot_assets.resources.aws import make_client

    s3 = make_client("s3", local_aws, "us-east-1")
    s3.create_bucket(Bucket=env["IOT_BUCKET"])
    s3.put_object(Bucket=env["IOT_BUCKET"], Key="reference/devices.jsonl", Body=json.dumps(LISTED).encode())
    done = subprocess.run(
        [sys.executable, "-c", PIPELINE, str(export)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=1200
    )
    assert done.returncode == 0, done.stderr[-5000:]
    return expected, json.loads(done.stdout.strip().splitlines()[-1])


def test_every_table_follows_the_rigs_catalogue(rig_run):
    _, got = rig_run
    columns = got["columns"]
    assert [c for c in columns["bronze_sensor_readings"] if c in CHANNELS] == CHANNELS
    assert [c for c in columns["silver_sensor_readings"] if c.endswith("_avg_5min")] == [
        "accel_1_rms_avg_5min",
        "accel_2_rms_avg_5min",
        "pulse_count_avg_5min",
    ]
    assert "motor_heat" in columns["silver_sensor_readings"]
    assert [c for c in columns["device_hourly_stats"] if c.startswith("avg_")] == [f"avg_{c}" for c in CHANNELS]
    ten = columns["sensor_aggregates_10min"]
    assert [c for c in ten if c.startswith(("avg_", "min_", "max_"))] == [
        f"{s}_{c}"
        for c in ("accel_1_rms", "accel_2_rms", "motor_current", "motor_temperature", "pulse_count")
        for s in ("avg", "min", "max")
    ]
    assert "hot_readings" in ten
    assert columns["daily_device_summary"] == [
        "device_id",
        "event_date",
        "line",
        "commissioned_year",
        "reading_count",
        "hours_reporting",
        "daily_max_motor_current",
        "daily_min_loop_pressure",
        "daily_avg_loop_pressure",
        "daily_max_motor_temperature",
        "daily_flow",
        "daily_max_pulse_count",
        "hot_readings",
    ]
    shipped = {"temperature", "humidity", "pressure", "vibration", "battery_level", "signal_strength"}
    shipped |= {"device_name", "site", "device_type", "latitude", "longitude"}  # the shipped registry's
    for table, names in columns.items():
        assert not shipped & set(names), table
        assert not set(SOURCES) & set(names), table  # source names are mapped to channels at bronze


def test_the_rigs_registry_attributes_enrich_silver_and_gold(rig_run):
    _, got = rig_run
    columns, types = got["columns"], got["types"]
    assert columns["silver_sensor_readings"][:4] == ["device_id", "event_time", *ATTRIBUTES]
    assert columns["device_hourly_stats"][:4] == ["device_id", "event_hour", "line", "reading_count"]
    assert columns["sensor_aggregates_10min"][:5] == ["device_id", "window_start", "window_end", "line", "record_count"]
    for table in ("silver_sensor_readings", "daily_device_summary"):
        assert (types[table]["line"], types[table]["commissioned_year"]) == ("string", "bigint"), table
    # rig-a as listed in the reference file; rig-b registered by the import with the catalogue's default.
    unassigned = {"device_id": "rig-b", "line": "unassigned", "commissioned_year": None}
    assert got["registry"] == [LISTED, unassigned]
    assert got["enriched"] == [list(LISTED.values()), list(unassigned.values())]
    assert got["hourly_lines"] == ["L1", "unassigned"]


def test_a_long_channel_is_long_where_readings_are_kept_and_its_statistics_doubles(rig_run):
    expected, got = rig_run
    types = got["types"]
    for table in ("bronze_sensor_readings", "silver_sensor_readings", "silver_rejected_readings"):
        assert types[table]["pulse_count"] == "bigint", table
    assert types["silver_sensor_readings"]["pulse_count_avg_5min"] == "double"
    stats = {t: {c: v for c, v in types[t].items() if c.endswith("_pulse_count")} for t in types}
    assert stats["device_hourly_stats"] == {f"{s}_pulse_count": "double" for s in ("avg", "min", "max", "stddev")}
    assert stats["sensor_aggregates_10min"] == {f"{s}_pulse_count": "double" for s in ("avg", "min", "max")}
    assert stats["daily_device_summary"] == {"daily_max_pulse_count": "double"}
    silver_max, daily_max = got["pulse_max"]  # of the first day, the one summarised
    assert isinstance(silver_max, int) and daily_max == float(silver_max)
    # The stall's stopped flow crosses the rig's threshold rule, on rig-a's fault readings only.
    fault = FAULT.replace(tzinfo=None).isoformat()
    flags = got["pulse_flags"]
    assert len(flags) == expected["fault_rows"]
    assert all(d == "rig-a" and m == "threshold" and t >= fault and v < 100 for d, m, t, v in flags)


def test_counts_reconcile_and_the_rigs_own_ranges_hold(rig_run):
    expected, got = rig_run
    counts = got["counts"]
    assert got["raw"] == expected["rows"] == len(RIGS) * HOURS * PER_HOUR + 3
    assert counts["bronze_sensor_readings"] + counts["bronze_quarantine"] == got["raw"]
    # A `long` channel takes whole numbers only.
    assert got["quarantine"] == ["invalid_type:Pressure=n/a", "invalid_type:Pulses=1500.5", "missing_field:Current"]
    assert counts["silver_sensor_readings"] + counts["silver_rejected_readings"] == counts["bronze_sensor_readings"]
    assert counts["silver_rejected_readings"] == 0  # below-zero suction and flow above 100 are in range here
    assert got["negative_pressure"] > 0.2 * counts["silver_sensor_readings"]
    assert got["fluid_nulls"] == len(RIGS) * HOURS * PER_HOUR // 10  # the optional channel is kept as null
    assert counts["device_hourly_stats"] == len(RIGS) * HOURS
    assert counts["daily_device_summary"] == len(RIGS)
    assert got["bands"] == ["normal"]


def test_models_train_on_the_rig_and_the_stall_is_found(rig_run):
    expected, got = rig_run
    # No simulated devices with this catalogue: the listed rig and the one the import registered.
    assert [r["device_id"] for r in got["registry"]] == list(RIGS)
    assert [(d, s) for d, s, _ in got["models"]] == [("rig-a", "trained"), ("rig-b", "trained")]
    assert all(rows >= 23 * PER_HOUR for *_, rows in got["models"])
    fault = FAULT.replace(tzinfo=None).isoformat()  # Spark returns UTC times without a zone
    flagged = [t for d, t in got["confirmed"] if d == "rig-a" and t >= fault]
    assert len(flagged) >= expected["fault_rows"] // 2
    assert [d for d, t in got["confirmed"] if t < fault or d != "rig-a"] == []  # nothing else in the hour
    assert {"motor_current"} <= set(got["metrics"]) or any(m.endswith("motor_current") for m in got["metrics"])
