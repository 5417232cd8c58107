"""The fleet simulator: deterministic, continuous across hours, labelled, and honest about malformed records."""

import json
import math
from collections import Counter, defaultdict
from datetime import UTC, datetime

import numpy as np
import pytest

from iot_assets.lib import catalogue, reasons
from iot_assets.lib.catalogue import DEFAULT_PATH, load_catalogue, parse_catalogue, simulation_order
from iot_assets.lib.partitions import HOUR
from iot_assets.tools.simulator import FleetConfig, device_registry, fleet, simulate_hour
from iot_assets.tools.simulator.fleet import checksum

H = datetime(2026, 11, 12, 6, tzinfo=UTC)
CFG = FleetConfig(device_count=20, readings_per_hour=60)


def test_same_hour_same_records():
    a, b = simulate_hour(H, CFG), simulate_hour(H, CFG)
    assert checksum(a.records) == checksum(b.records) and a.labels == b.labels
    assert checksum(simulate_hour(H + HOUR, CFG).records) != checksum(a.records)


def test_each_device_is_independent_of_fleet_size():
    small = simulate_hour(H, FleetConfig(device_count=3))
    large = simulate_hour(H, FleetConfig(device_count=10))
    first = [
        r for r, k in zip(large.records, large.partition_keys, strict=True) if k in {"dev-0000", "dev-0001", "dev-0002"}
    ]
    assert first == small.records


def _clean(sim):
    out = []
    for text in sim.records:
        try:
            out.append(json.loads(text))
        except json.JSONDecodeError:
            pass
    return out


def test_signals_join_smoothly_across_hours():
    labelled = {label.device_id for h in (H, H + HOUR) for label in simulate_hour(h, CFG).labels}
    a, b = _clean(simulate_hour(H, CFG)), _clean(simulate_hour(H + HOUR, CFG))
    for dev in {r["device_id"] for r in a} - labelled:
        last = [r for r in a if r["device_id"] == dev and isinstance(r.get("temperature"), float)][-1]
        first = [r for r in b if r["device_id"] == dev and isinstance(r.get("temperature"), float)][0]
        assert abs(last["temperature"] - first["temperature"]) < 3.0


def test_fields_and_registry():
    rec = _clean(simulate_hour(H, CFG))[0]
    assert set(rec) == {
        "device_id",
        "timestamp",
        "temperature",
        "humidity",
        "pressure",
        "vibration",
        "battery_level",
        "signal_strength",
        "status",
    }
    reg = device_registry(CFG)
    assert len(reg) == 20 and len({d.device_id for d in reg}) == 20 and all(d.site and d.device_type for d in reg)


def test_anomalies_and_malformed_are_labelled():
    kinds, malformed = Counter(), Counter()
    cfg = FleetConfig(device_count=50, readings_per_hour=60)
    hours = 24
    for i in range(hours):
        sim = simulate_hour(H + HOUR * i, cfg)
        kinds.update({label.kind for label in sim.labels})
        malformed.update(sim.malformed)
        expected_records = cfg.device_count * cfg.readings_per_hour + sim.malformed["duplicate"]
        assert len(sim.records) == expected_records
    assert set(kinds) == {"spike", "level_shift", "stuck", "drift", "dropout"}
    assert len(malformed) >= 8
    assert 0.005 < sum(malformed.values()) / (hours * 3000) < 0.02


# A second fleet, named nothing like the shipped one: its channels arrive under their own keys.
RIG = {
    "record": {"device_id": "rig", "timestamp": "ts", "status": "state"},
    "channels": [
        {
            "name": "motor_current",
            "source": "Current",
            "unit": "A",
            "range": [0, 400],
            "roles": ["model_feature"],
            "simulate": {
                "level": [80, 120],
                "cycle": [5, 10],
                "load": 20,
                "noise": 2,
                "clip": [0, None],
                "digits": 2,
                "spike": [100, 150],
                "shift": [40, 60],
                "anomalies": ["spike", "level_shift", "drift"],
            },
        },
        {
            "name": "coolant_temp",
            "unit": "degrees Celsius",
            "range": [-20, 150],
            "roles": ["model_feature"],
            "simulate": {
                "level": [30, 40],
                "cycle": {"channel": "motor_current", "times": 0.5},
                "follows": {"motor_current": 0.1},
                "noise": 0.5,
                "digits": 1,
                "shift": [10, 20],
            },
        },
        {
            "name": "rpm",
            "type": "long",
            "unit": "1/min",
            "range": [0, 3600],
            "roles": [],
            "simulate": {"sawtooth": {"from": 3000, "to": 2900, "hours": 24}, "noise": 5, "dropout": 0},
        },
    ],
}


def test_another_catalogue_with_simulate_blocks_is_simulated():
    rig = parse_catalogue(RIG, "rig.yaml")
    assert rig.simulated and load_catalogue(DEFAULT_PATH).simulated
    assert [c.name for c in simulation_order(rig.channels)] == ["motor_current", "coolant_temp", "rpm"]
    cfg = FleetConfig(device_count=10, readings_per_hour=60, anomaly_rate=0.3)
    clean = FleetConfig(device_count=10, readings_per_hour=60, malformed_rate=0.0)
    records, labels = [], []
    for h in range(12):
        records += [json.loads(r) for r in simulate_hour(H + HOUR * h, clean, rig).records]
        labels += simulate_hour(H + HOUR * h, cfg, rig).labels
    assert {tuple(r) for r in records} == {("rig", "ts", "Current", "coolant_temp", "rpm", "state")}
    for channel in rig.channels:
        values = [r[channel.key] for r in records]
        lo, hi = channel.valid_range
        assert all(lo <= v <= hi for v in values), channel.name
    assert all(isinstance(r["rpm"], int) for r in records) and all(2800 < r["rpm"] < 3100 for r in records)
    assert 80 < sum(r["Current"] for r in records) / len(records) < 120
    # coolant_temp declares a shift only: it takes level shifts, stuck and dropout, not spikes or drift.
    kinds = {(label.kind, label.metric) for label in labels}
    assert {k for k, _ in kinds} == {"spike", "level_shift", "stuck", "drift", "dropout"}
    assert {m for k, m in kinds if k in ("spike", "drift")} == {"motor_current"}
    assert {m for k, m in kinds if k == "level_shift"} == {"motor_current", "coolant_temp"}


def test_the_simulator_follows_the_active_catalogue_when_it_declares_every_signal(monkeypatch):
    rig = parse_catalogue(RIG, "rig.yaml")
    monkeypatch.setattr(catalogue, "active", lambda: rig)
    assert fleet.fleet_catalogue() is rig
    assert set(json.loads(simulate_hour(H, FleetConfig(device_count=1, malformed_rate=0.0)).records[0])) == {
        "rig",
        "ts",
        "Current",
        "coolant_temp",
        "rpm",
        "state",
    }
    plain = {"name": "x", "unit": "A", "range": [0, 1], "roles": ["model_feature"]}
    unsimulated = parse_catalogue({"channels": [plain]})
    monkeypatch.setattr(catalogue, "active", lambda: unsimulated)
    assert fleet.fleet_catalogue().path == str(DEFAULT_PATH)


def test_the_default_fleet_looks_as_it_always_has():
    cfg = FleetConfig(device_count=50, readings_per_hour=60)
    hours = 24
    temperature, events = defaultdict(list), Counter()
    quarantined, rejected = Counter(), Counter()
    for i in range(hours):
        sim = simulate_hour(H + HOUR * i, cfg)
        events.update({(label.event_id, label.kind, label.metric) for label in sim.labels})
        quarantined.update(sim.expected_quarantine)
        rejected.update(sim.expected_rejected)
        labelled = {label.device_id for label in sim.labels}
        for r in _clean(sim):
            value, device = r.get("temperature"), r.get("device_id")
            # Anomalous hours and malformed records left out (no device, a wrong type, an impossible value).
            if device and device not in labelled and isinstance(value, float) and -60 <= value <= 250:
                temperature[device].append(value)
    means = [sum(v) / len(v) for v in temperature.values()]
    assert len(means) == 50 and all(40 < m < 61.5 for m in means)  # a level in 40..60, plus drift
    assert 0.02 < len(events) / (hours * cfg.device_count) < 0.07  # anomaly_rate 0.04
    assert {m for _, k, m in events if k == "drift"} <= {"temperature", "vibration"}
    assert {m for _, k, m in events if k in ("stuck", "dropout")} == {"all"}
    assert set(quarantined) == {
        reasons.MALFORMED_JSON,
        reasons.MISSING_FIELD,
        reasons.INVALID_TYPE,
        reasons.LATE_EVENT,
        reasons.FUTURE_EVENT,
        reasons.INVALID_TIMESTAMP,
    }
    assert set(rejected) == {reasons.OUT_OF_RANGE, reasons.INVALID_STATUS, reasons.DUPLICATE}


@pytest.mark.parametrize(
    ("kind", "quarantine", "rejected"),
    [
        ("broken_json", reasons.MALFORMED_JSON, None),
        ("missing_field", reasons.MISSING_FIELD, None),
        ("wrong_type", reasons.INVALID_TYPE, None),
        ("non_numeric", reasons.INVALID_TYPE, None),
        ("impossible_value", None, reasons.OUT_OF_RANGE),
        ("invalid_status", None, reasons.INVALID_STATUS),
        ("duplicate", None, reasons.DUPLICATE),
        ("late_event", reasons.LATE_EVENT, None),
        ("future_event", reasons.FUTURE_EVENT, None),
        ("bad_timestamp", reasons.INVALID_TIMESTAMP, None),
    ],
)
@pytest.mark.parametrize("spec", [None, RIG], ids=["shipped", "rig"])
def test_each_malformed_kind_is_malformed_as_its_reason_says(kind, quarantine, rejected, spec):
    cat = load_catalogue(DEFAULT_PATH) if spec is None else parse_catalogue(spec, "rig.yaml")
    rec = json.loads(simulate_hour(H, FleetConfig(device_count=1, malformed_rate=0.0), cat).records[0])
    keys, channels = cat.record, {c.key: c for c in cat.channels}
    for seed in range(20):
        texts, q, r = fleet._malform(fleet._fleet(cat), kind, rec, np.random.default_rng(seed))
        assert (q, r) == (quarantine, rejected)
        if kind == "broken_json":
            continue
        got = json.loads(texts[0])  # Python's json reads NaN
        changed = {k for k in rec if got.get(k) != rec[k]} | (set(got) ^ set(rec))
        if kind == "missing_field":
            assert changed & set(rec) and len(changed) == 1
            assert changed <= {next(c.key for c in cat.channels if c.required), keys.device_id, keys.timestamp}
        elif kind in ("wrong_type", "non_numeric"):
            (key,) = changed
            assert channels[key].type == "double"
            assert not isinstance(got[key], float) or math.isnan(got[key])
        elif kind == "impossible_value":
            (key,) = changed
            lo, hi = channels[key].valid_range
            assert not lo <= got[key] <= hi
        elif kind == "invalid_status":
            assert changed == {keys.status}
        elif kind in ("late_event", "future_event", "bad_timestamp"):
            assert changed == {keys.timestamp}
        else:
            assert texts == [texts[0]] * 2 and changed == set()
