"""The sensor catalogue: validation, the schemas it yields, and its channels named in one place only."""

import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import asdict, fields
from pathlib import Path

import pytest
import yaml

import iot_assets
from iot_assets.assets import anomalies, bronze, gold, models, registry, silver
from iot_assets.lib import catalogue
from iot_assets.lib.catalogue import DEFAULT_PATH, CatalogueError, load_catalogue, parse_catalogue
from iot_assets.resources import detection, historian
from iot_assets.tools.simulator import fleet
from iot_assets_tests.test_tables import _string_constants

PACKAGE = Path(next(iter(iot_assets.__path__)))
ROOT = PACKAGE.parent
SIX = ("temperature", "humidity", "pressure", "vibration", "battery_level", "signal_strength")
FOUR = ("temperature", "humidity", "pressure", "vibration")


def columns(model: type) -> list[tuple]:
    """(name, Spark type, nullable[, checks]) of each column of a pandera model, in order."""
    out = []
    for name, col in model.to_schema().columns.items():
        checks = tuple(
            f"{c.name}({', '.join(f'{k}={v}' for k, v in c.statistics.items() if v is not None)})" for c in col.checks
        )
        out.append((name, col.dtype.type.simpleString(), col.nullable, *([checks] if checks else [])))
    return out


def _isin(*values: str) -> str:
    return f"isin(allowed_values={list(values)})"


def _ge_le(lo: float, hi: float) -> tuple[str, str]:
    return (f"greater_than_or_equal_to(min_value={lo})", f"less_than_or_equal_to(max_value={hi})")


# Today's schemas, written out: the shipped catalogue must yield exactly these.
EXPECTED_REGISTRY = [
    ("device_id", "string", False),
    ("device_name", "string", False),
    ("site", "string", False),
    ("device_type", "string", False),
    ("latitude", "double", False, ("greater_than_or_equal_to(min_value=-90)", "less_than_or_equal_to(max_value=90)")),
    (
        "longitude",
        "double",
        False,
        ("greater_than_or_equal_to(min_value=-180)", "less_than_or_equal_to(max_value=180)"),
    ),
]
EXPECTED_BRONZE = [
    ("device_id", "string", False, (f"str_matches(pattern={bronze.DEVICE_ID_PATTERN})",)),
    ("event_time", "timestamp", False),
    *[(m, "double", False) for m in SIX],
    ("status", "string", False),
    ("extra_fields", "string", True),
    (
        "source",
        "string",
        False,
        ("isin(allowed_values=['simulator', 'kinesis', 's3_landing', 'replay', 'historian'])",),
    ),
    ("source_object", "string", False),
    ("record_index", "bigint", False, ("greater_than_or_equal_to(min_value=0)",)),
    ("kinesis_shard_id", "string", True),
    ("kinesis_sequence_number", "string", True),
    ("kinesis_partition_key", "string", True),
    ("kinesis_arrival_time", "timestamp", True),
    ("ingest_time", "timestamp", False),
    ("event_hour", "timestamp", False),
]
RANGES = {
    "temperature": (-60.0, 250.0),
    "humidity": (0.0, 100.0),
    "pressure": (0.0, 50.0),
    "vibration": (0.0, 100.0),
    "battery_level": (0.0, 100.0),
    "signal_strength": (-150.0, 0.0),
}
EXPECTED_SILVER = [
    ("device_id", "string", False),
    ("event_time", "timestamp", False),
    ("device_name", "string", False),
    ("site", "string", False),
    ("device_type", "string", False),
    ("latitude", "double", False),
    ("longitude", "double", False),
    *[(m, "double", False, _ge_le(*RANGES[m])) for m in SIX],
    ("status", "string", False, ("isin(allowed_values=['normal', 'warning', 'error', 'maintenance'])",)),
    *[(f"{m}_avg_5min", "double", False) for m in FOUR],
    ("vibration_category", "string", False, ("isin(allowed_values=['Low', 'Medium', 'High'])",)),
    ("source_object", "string", False),
    ("record_index", "bigint", False),
    ("kinesis_sequence_number", "string", True),
    ("event_hour", "timestamp", False),
]
EXPECTED_REJECTED = [
    ("event_hour", "timestamp", False),
    (
        "reason",
        "string",
        False,
        ("isin(allowed_values=['out_of_range', 'invalid_status', 'duplicate', 'unknown_device'])",),
    ),
    ("reason_detail", "string", True),
    ("device_id", "string", False),
    ("event_time", "timestamp", False),
    *[(m, "double", True) for m in SIX],
    ("status", "string", True),
    ("source_object", "string", False),
    ("record_index", "bigint", False),
]
EXPECTED_HOURLY = [
    ("device_id", "string", False),
    ("event_hour", "timestamp", False),
    ("site", "string", False),
    ("reading_count", "bigint", False),
    *[(f"{p}_{m}", "double", p == "stddev") for m in SIX for p in ("avg", "min", "max", "stddev")],
    # The z-score metrics' hourly levels (the shift test's): null in an hour written before gold kept them.
    *[(f"{p}_{m}", "double", True) for m in FOUR for p in ("median", "spread")],
]
EXPECTED_10MIN = [
    ("device_id", "string", False),
    ("window_start", "timestamp", False),
    ("window_end", "timestamp", False),
    ("device_name", "string", False),
    ("record_count", "bigint", False),
    *[(f"{p}_{m}", "double", False) for m in FOUR for p in ("avg", "min", "max")],
    ("min_battery_level", "double", False),
    ("high_vibration_count", "bigint", False),
    ("event_hour", "timestamp", False),
]
EXPECTED_DAILY = [
    ("device_id", "string", False),
    ("event_date", "date", False),
    ("device_name", "string", False),
    ("site", "string", False),
    ("reading_count", "bigint", False),
    ("hours_reporting", "bigint", False),
    *[
        (f"daily_{stat}_{m}", "double", False)
        for m, stat in [
            ("temperature", "avg"),
            ("temperature", "min"),
            ("temperature", "max"),
            ("humidity", "avg"),
            ("pressure", "avg"),
            ("vibration", "max"),
        ]
    ],
    ("daily_min_battery", "double", False),
    ("high_vibration_count", "bigint", False),
]
UNITS = ["degrees Celsius", "percent relative humidity", "bar", "mm/s RMS", "percent", "dBm"]


def test_the_shipped_catalogue_yields_todays_schemas():
    assert columns(registry.DeviceRecord) == EXPECTED_REGISTRY
    assert columns(bronze.BronzeReading) == EXPECTED_BRONZE
    assert columns(silver.SilverReading) == EXPECTED_SILVER
    assert columns(silver.RejectedReading) == EXPECTED_REJECTED
    assert columns(gold.DeviceHourlyStats) == EXPECTED_HOURLY
    assert columns(gold.SensorAggregates10Min) == EXPECTED_10MIN
    assert columns(gold.DailyDeviceSummary) == EXPECTED_DAILY
    for model in (bronze.BronzeReading, silver.SilverReading):
        described = model.to_schema().columns
        assert [described[m].description for m in SIX] == UNITS
    assert [c.description for c in silver.RejectedReading.to_schema().columns.values()][5:11] == [None] * 6


def test_the_shipped_catalogue_yields_todays_metric_lists():
    assert bronze.NUMERIC_FIELDS == SIX
    assert bronze.REQUIRED_FIELDS == ("device_id", "timestamp", *SIX, "status")
    assert silver.PHYSICAL_RANGES == RANGES
    assert silver.ROLLING_METRICS == models.FEATURE_METRICS == anomalies.ZSCORE_METRICS == FOUR
    assert gold.STAT_METRICS == fleet.fleet_catalogue().names == historian.NUMERIC_FIELDS == SIX
    assert historian.FIELDS == (*SIX, "status")
    assert models.FEATURES == FOUR + tuple(f"{m}_log_spread" for m in FOUR)
    # In the seed pipelines' order, so the rules' version is unchanged.
    assert detection.DEFAULT_RULES == [
        {"metric": "temperature", "op": ">", "limit": 80.0},
        {"metric": "temperature", "op": "<", "limit": 5.0},
        {"metric": "pressure", "op": ">", "limit": 4.0},
        {"metric": "vibration", "op": ">", "limit": 4.5},
        {"metric": "humidity", "op": ">", "limit": 85.0},
        {"metric": "battery_level", "op": "<", "limit": 20.0},
    ]


PUMP = {
    "record": {"device_id": "rig", "timestamp": "ts", "status": "state"},
    "channels": [
        {
            "name": "motor_current",
            "unit": "A",
            "type": "double",
            "range": [0, 400],
            "required": True,
            "roles": ["rolling_average", "gold_statistics", "ten_minute_window", "zscore", "model_feature"],
        },
        {
            "name": "suction_pressure",
            "unit": "bar",
            "type": "double",
            "range": [-1, 16],
            "required": True,
            "roles": ["gold_statistics", "zscore", "model_feature"],
            "daily": {"min": "lowest_suction"},
        },
        {
            "name": "flow_rate",
            "unit": "m3/h",
            "range": [0, 500],
            "required": False,
            "roles": ["gold_statistics"],
            "ten_minute": ["max"],
            "daily": ["avg", "max"],
            "bands": {
                "column": "flow_band",
                "levels": ["dry", "ok", "surge"],
                "bounds": [5, 300],
                "top_count": "surges",
            },
        },
    ],
    "threshold_rules": [{"channel": "motor_current", "op": ">", "limit": 250}],
}

# Run in a fresh interpreter: the layers build their models from the catalogue when imported.
_PROBE = textwrap.dedent(
    """
    import json
    from iot_assets.assets import anomalies, bronze, gold, models, silver
    from iot_assets.definitions import defs
    from iot_assets.resources import detection
    defs.resolve_asset_graph()  # the definitions load with this catalogue
    from iot_assets_tests.test_catalogue import columns
    print(json.dumps({
        "bronze": columns(bronze.BronzeReading), "silver": columns(silver.SilverReading),
        "rejected": columns(silver.RejectedReading), "hourly": columns(gold.DeviceHourlyStats),
        "ten_min": columns(gold.SensorAggregates10Min), "daily": columns(gold.DailyDeviceSummary),
        "payload": bronze.PAYLOAD_FIELDS,
        "required": bronze.REQUIRED_FIELDS, "features": models.FEATURES, "zscore": anomalies.ZSCORE_METRICS,
        "rules": detection.DEFAULT_RULES,
    }))
    """
)


def test_another_catalogue_yields_its_own_columns(tmp_path):
    path = tmp_path / "pump.yaml"
    path.write_text(yaml.safe_dump(PUMP))
    env = {**os.environ, "IOT_SENSOR_CATALOGUE": str(path), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    as_lists = lambda rows: [list(r[:3]) for r in rows]  # noqa: E731
    assert as_lists(got["bronze"])[2:5] == [
        ["motor_current", "double", False],
        ["suction_pressure", "double", False],
        ["flow_rate", "double", True],
    ]
    assert [r[0] for r in got["bronze"]][:2] + [r[0] for r in got["bronze"]][5:6] == [
        "device_id",
        "event_time",
        "status",
    ]
    silver_channels = {r[0]: r for r in got["silver"] if r[0] in ("motor_current", "suction_pressure", "flow_rate")}
    assert silver_channels["suction_pressure"] == [
        "suction_pressure",
        "double",
        False,
        list(_ge_le(-1.0, 16.0)),
    ]
    assert silver_channels["flow_rate"][2] is True
    assert [r[0] for r in got["silver"] if r[0].endswith("_avg_5min")] == ["motor_current_avg_5min"]
    assert [r[0] for r in got["rejected"]][5:8] == ["motor_current", "suction_pressure", "flow_rate"]
    hourly = {r[0]: r[2] for r in got["hourly"]}
    assert [c for c in hourly if c.startswith("avg_")] == ["avg_motor_current", "avg_suction_pressure", "avg_flow_rate"]
    assert hourly["avg_flow_rate"] is True and hourly["avg_motor_current"] is False
    assert [r[0] for r in got["ten_min"] if r[0].startswith(("avg_", "min_", "max_")) or r[0] == "surges"] == [
        "avg_motor_current",
        "min_motor_current",
        "max_motor_current",
        "max_flow_rate",
        "surges",
    ]
    assert [r[:3] for r in got["daily"][6:]] == [
        ["lowest_suction", "double", False],
        ["daily_avg_flow_rate", "double", True],
        ["daily_max_flow_rate", "double", True],
        ["surges", "bigint", False],
    ]
    assert ["flow_band", "string", True, [_isin("dry", "ok", "surge")]] in got["silver"]
    assert got["payload"] == ["rig", "ts", "motor_current", "suction_pressure", "flow_rate", "state"]
    assert got["required"] == ["rig", "ts", "motor_current", "suction_pressure", "state"]
    assert got["features"] == [
        "motor_current",
        "suction_pressure",
        "motor_current_log_spread",
        "suction_pressure_log_spread",
    ]
    assert got["zscore"] == ["motor_current", "suction_pressure"]
    assert got["rules"] == [{"metric": "motor_current", "op": ">", "limit": 250.0}]
    for rows in got.values():
        assert not any(isinstance(r, list) and r and r[0] in SIX for r in rows)


def test_registry_attributes_are_written_in_the_catalogue_only():
    names = [a.name for a in load_catalogue(DEFAULT_PATH).registry]
    naming = re.compile(r"(?<![a-z_])(" + "|".join(names) + r")(?![a-z_])")
    found = {
        path.relative_to(PACKAGE).as_posix()
        for path in sorted(PACKAGE.rglob("*.py"))
        if any(naming.search(s) for s in _string_constants(path))
    }
    # The historian's tag paths (`site/line/device/field`) are its own hierarchy, not the registry's.
    assert found == {"settings.py", "resources/historian.py"}, "a registry attribute is named outside the catalogue"


def test_the_simulated_fleet_gives_the_shipped_registry_attributes():
    shipped = load_catalogue(DEFAULT_PATH)
    assert [f.name for f in fields(fleet.Device)] == ["device_id", *(a.name for a in shipped.registry)]
    device = fleet.device_registry(fleet.FleetConfig(device_count=3))[2]
    assert shipped.device_entry(device.device_id, asdict(device)) == asdict(device)
    # What an import registers a device with, and which gold tables carry which attribute.
    assert shipped.device_entry("pump-9") == {
        "device_id": "pump-9",
        "device_name": "pump-9",
        "site": "imported",
        "device_type": "imported",
        "latitude": 0.0,
        "longitude": 0.0,
    }
    assert [[a.name for a in shipped.in_gold(t)] for t in catalogue.GOLD_TABLES] == [
        ["site"],
        ["device_name"],
        ["device_name", "site"],
    ]


def test_a_catalogue_declares_its_own_registry_or_has_the_shipped_one():
    shipped = load_catalogue(DEFAULT_PATH).registry
    assert parse_catalogue({"channels": [_channel()]}).registry == shipped
    line = {"name": "line", "gold": ["hourly"], "default": "unassigned"}
    year = {"name": "commissioned_year", "type": "long", "required": False, "range": [1950, 2100]}
    own = parse_catalogue({"channels": [_channel()], "registry": [line, year]})
    assert [(a.name, a.type, a.required, a.range, a.gold) for a in own.registry] == [
        ("line", "string", True, None, ("hourly",)),
        ("commissioned_year", "long", False, (1950, 2100), ()),
    ]
    assert own.device_entry("rig-1", {"line": "L2", "site": "x"}) == {
        "device_id": "rig-1",
        "line": "L2",
        "commissioned_year": None,
    }
    assert parse_catalogue({"channels": [_channel()], "registry": []}).registry == ()


def _attribute(**over) -> dict:
    return {"name": "line", "type": "string", "default": "unassigned", **over}


@pytest.mark.parametrize(
    ("registry", "message"),
    [
        ({"name": "line"}, r"`registry` must be a list of attributes"),
        ([_attribute(colour="red")], r"registry attribute 'line': unknown key\(s\) colour"),
        ([_attribute(type="text")], r"registry attribute 'line': type 'text' is not supported"),
        ([_attribute(required="yes")], r"registry attribute 'line': `required` must be true or false"),
        ([_attribute(name="Line")], r"registry attribute 'Line': the name 'Line' is not a column name"),
        (["line"], r"registry attribute #1: an attribute is a mapping"),
        ([_attribute(), _attribute()], r"registry attribute 'line' is declared twice"),
        ([_attribute(range=[0, 9])], r"registry attribute 'line': a `range` needs a number type"),
        (
            [_attribute(type="long", default=3, range=[9, 0])],
            r"registry attribute 'line': `range` must be \[low, high\]",
        ),
        ([_attribute(gold=["weekly"])], r"registry attribute 'line': `gold` must list some of hourly"),
        ([_attribute(default=None)], r"registry attribute 'line': a required attribute needs a `default`"),
        ([_attribute(type="long", default=2.5)], r"registry attribute 'line': `default` 2.5 is not a long"),
        (
            [_attribute(type="double", default=200.0, range=[0, 90])],
            r"registry attribute 'line': `default` 200.0 is outside its range",
        ),
        ([_attribute(name="flow_rate")], r"registry attribute 'flow_rate' clashes with channel 'flow_rate'"),
        ([_attribute(name="flow_rate_avg_5min")], r"registry attribute 'flow_rate_avg_5min' clashes with channel"),
        ([_attribute(name="event_time")], r"registry attribute 'event_time' clashes with the layers' own columns"),
        ([_attribute(name="reading_count")], r"registry attribute 'reading_count' clashes with the layers' own"),
    ],
)
def test_a_bad_registry_attribute_is_refused_naming_the_file_and_the_attribute(tmp_path, registry, message):
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump({"channels": [_channel(roles=["model_feature", "rolling_average"])], "registry": registry})
    )
    with pytest.raises(CatalogueError, match=re.escape(str(path)) + ": " + message):
        load_catalogue(path)


_BANDS = {"column": "flow_band", "levels": ["low", "high"], "bounds": [5], "top_count": "high_flow_count"}


def _channel(**over) -> dict:
    return {"name": "flow_rate", "unit": "m3/h", "range": [0, 10], "roles": ["model_feature"], **over}


@pytest.mark.parametrize(
    ("channels", "message"),
    [
        ([_channel(range=[10, 0])], r"channel 'flow_rate': `range` must be \[low, high\]"),
        ([_channel(range=[0, float("inf")])], r"channel 'flow_rate': `range`"),
        ([_channel(range=[0])], r"channel 'flow_rate': `range`"),
        ([_channel(roles=["model_feature", "median"])], r"channel 'flow_rate': unknown role\(s\) median"),
        ([_channel(), _channel()], r"channel 'flow_rate' is declared twice"),
        ([_channel(name="Flow Rate")], r"channel 'Flow Rate': the name becomes a column name"),
        ([_channel(name="flow-rate")], r"channel 'flow-rate': the name becomes a column name"),
        ([_channel(name="event_hour")], r"channel 'event_hour': 'event_hour' is a column the layers already have"),
        ([_channel(name="value")], r"channel 'value': 'value' is a column the layers already have"),
        ([_channel(type="string")], r"channel 'flow_rate': type 'string' is not supported"),
        ([_channel(required="yes")], r"channel 'flow_rate': `required` must be true or false"),
        ([_channel(required=False)], r"channel 'flow_rate': an optional channel cannot have the model_feature role"),
        ([_channel(colour="red")], r"channel 'flow_rate': unknown key\(s\) colour"),
        ([_channel(roles=[])], r"at least one channel needs the model_feature role"),
        ([{"unit": "A", "range": [0, 1]}], r"channel #1: the name becomes a column name"),
        ([_channel(ten_minute=["median"])], r"channel 'flow_rate': `ten_minute`: unknown statistic\(s\) median"),
        (
            [_channel(roles=["model_feature", "ten_minute_window"], ten_minute=["min"])],
            r"channel 'flow_rate': give either the ten_minute_window",
        ),
        ([_channel(daily={"min": "Low Flow"})], r"channel 'flow_rate': daily column 'Low Flow' is not a column name"),
        (
            [_channel(daily={"min": "device_id"})],
            r"channel 'flow_rate': column 'device_id' clashes with the layers' own columns",
        ),
        (
            [_channel(bands=_BANDS | {"bounds": [5, 1]})],
            r"channel 'flow_rate': bands: `bounds` must be 1 increasing finite numbers",
        ),
        (
            [_channel(bands=_BANDS | {"levels": ["only"]})],
            r"channel 'flow_rate': bands: `levels` must list at least two",
        ),
        (
            [_channel(bands=_BANDS | {"top_count": "flow_rate"})],
            r"channel 'flow_rate': column 'flow_rate' clashes with channel 'flow_rate'",
        ),
        ([_channel(bands=_BANDS | {"colour": 1})], r"channel 'flow_rate': bands: unknown key\(s\) colour"),
        ([_channel(simulate={"colour": 1})], r"channel 'flow_rate': simulate: unknown key\(s\) colour"),
        ([_channel(simulate=[1, 2])], r"channel 'flow_rate': simulate: a mapping of the signal's parameters"),
        ([_channel(simulate={"level": [5, 1]})], r"channel 'flow_rate': simulate: `level` must be \[lo, hi\]"),
        ([_channel(simulate={"spike": [1]})], r"channel 'flow_rate': simulate: `spike` must be \[lo, hi\]"),
        ([_channel(simulate={"drift": "fast"})], r"channel 'flow_rate': simulate: `drift` must be \[lo, hi\]"),
        ([_channel(simulate={"clip": [5, 1]})], r"channel 'flow_rate': simulate: `clip` must be \[lo, hi\]"),
        ([_channel(simulate={"noise": -1})], r"channel 'flow_rate': simulate: `noise` is a standard deviation"),
        ([_channel(simulate={"digits": 2.5})], r"channel 'flow_rate': simulate: `digits` must be a whole number"),
        ([_channel(simulate={"sawtooth": {"from": 1}})], r"channel 'flow_rate': simulate: `sawtooth` must be"),
        (
            [_channel(simulate={"anomalies": ["spike"]})],
            r"channel 'flow_rate': simulate: anomaly 'spike' needs its magnitude, `spike: \[lo, hi\]`",
        ),
        (
            [_channel(simulate={"shift": [1, 2], "anomalies": ["stuck"]})],
            r"channel 'flow_rate': simulate: anomaly 'stuck' is not one of spike, level_shift, drift",
        ),
        (
            [_channel(simulate={"follows": {"rpm": 0.1}})],
            r"channel 'flow_rate': simulate: follows: channel 'rpm' is not another simulated channel",
        ),
        (
            [_channel(simulate={"cycle": {"channel": "rpm", "times": 2}})],
            r"channel 'flow_rate': simulate: cycle: channel 'rpm' is not a simulated channel with `cycle: \[lo, hi\]`",
        ),
        (
            [
                _channel(simulate={"follows": {"rpm": 0.1}}),
                _channel(name="rpm", roles=[], simulate={"follows": {"flow_rate": 2}}),
            ],
            r"channel 'flow_rate': simulate: `follows` goes round in a circle through flow_rate, rpm",
        ),
    ],
)
def test_a_bad_channel_is_refused_naming_the_file_and_the_channel(tmp_path, channels, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"channels": channels}))
    with pytest.raises(CatalogueError, match=re.escape(str(path)) + ": " + message):
        load_catalogue(path)


def test_bad_record_fields_rules_and_files_are_refused(tmp_path):
    ok = [_channel()]
    with pytest.raises(CatalogueError, match="record field 'device id' is not a valid field name"):
        parse_catalogue({"record": {"device_id": "device id"}, "channels": ok}, "x.yaml")
    with pytest.raises(CatalogueError, match="channel 'flow_rate' has the name of a record field"):
        parse_catalogue({"record": {"status": "flow_rate"}, "channels": ok}, "x.yaml")
    with pytest.raises(CatalogueError, match=r"threshold rule #1: channel 'rpm' is not in the catalogue"):
        parse_catalogue({"channels": ok, "threshold_rules": [{"channel": "rpm", "op": ">", "limit": 1}]}, "x.yaml")
    with pytest.raises(CatalogueError, match=r"threshold rule #1 \(channel 'flow_rate'\): op must be"):
        parse_catalogue({"channels": ok, "threshold_rules": [{"channel": "flow_rate", "op": ">=", "limit": 1}]})
    with pytest.raises(CatalogueError, match="`channels` must be a non-empty list"):
        parse_catalogue({"channels": []}, "x.yaml")
    with pytest.raises(CatalogueError, match="cannot read the sensor catalogue"):
        load_catalogue(tmp_path / "missing.yaml")
    (tmp_path / "broken.yaml").write_text("channels: [")
    with pytest.raises(CatalogueError, match="broken.yaml: not valid YAML"):
        load_catalogue(tmp_path / "broken.yaml")


def test_the_setting_chooses_the_catalogue(tmp_path, monkeypatch):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"channels": [_channel()]}))
    monkeypatch.setenv("IOT_SENSOR_CATALOGUE", str(path))
    assert load_catalogue().names == ("flow_rate",)
    assert load_catalogue().record == catalogue.RecordFields("device_id", "timestamp", "status")
    monkeypatch.setenv("IOT_SENSOR_CATALOGUE", "")
    assert load_catalogue().names == SIX
    assert load_catalogue().path == str(DEFAULT_PATH)
    with pytest.raises(KeyError, match="unknown role"):
        load_catalogue().with_role("median")


# Places that still name a channel of the shipped fleet, each for a reason; the catalogue is the
# only other place. File -> the strings it may hold that name a channel. None are left: the
# simulator reads its signals from the catalogue's `simulate` blocks.
ALLOWED: dict[str, set[str] | None] = {}
_CHANNEL = re.compile(r"(?<![a-z])(" + "|".join(SIX) + r")(?![a-z])")


def test_channel_names_are_written_in_the_catalogue_only():
    assert load_catalogue(DEFAULT_PATH).names == SIX
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        naming = {s for s in _string_constants(path) if _CHANNEL.search(s)}
        allowed = ALLOWED.get(rel, set())
        if allowed is not None and naming - allowed:
            found[rel] = sorted(naming - allowed)
    assert found == {}, "a channel of the shipped fleet is named outside the catalogue"
    others = [
        p for p in PACKAGE.rglob("*") if p.suffix in (".yaml", ".yml", ".json") and _CHANNEL.search(p.read_text())
    ]
    assert others == [DEFAULT_PATH]
