"""The fleet simulator: deterministic, continuous across hours, labelled, and honest about malformed records."""

import json
from collections import Counter
from datetime import UTC, datetime

from iot_assets.lib.partitions import HOUR
from iot_assets.tools.simulator import FleetConfig, device_registry, simulate_hour
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
