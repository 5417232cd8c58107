"""A simulated fleet of industrial sensors, deterministic for each (hour, device).

Signals are functions of absolute time, so consecutive hours join smoothly: a daily temperature
cycle, slow calibration drift, noise, and a latent machine load that moves pressure and vibration
together. Each device-hour may carry one injected anomaly (labelled), and a small share of
records is malformed in known ways, each with the reason the pipeline is expected to give.
"""

from __future__ import annotations

import json
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from iot_assets.lib import reasons
from iot_assets.lib.catalogue import DEFAULT_PATH, load_catalogue

# The simulator models the shipped catalogue's fleet: each channel's signal below is physical, so
# it is written per channel.
METRICS = load_catalogue(DEFAULT_PATH).names
SITES = ("plant-north", "plant-south", "refinery-east", "mill-west")
DEVICE_TYPES = ("pump", "compressor", "motor", "turbine")
ANOMALY_KINDS = ("spike", "level_shift", "stuck", "drift", "dropout")
MALFORMED_KINDS = (
    "broken_json",
    "missing_field",
    "wrong_type",
    "non_numeric",
    "impossible_value",
    "invalid_status",
    "duplicate",
    "late_event",
    "future_event",
    "bad_timestamp",
)


@dataclass(frozen=True)
class FleetConfig:
    device_count: int = 50
    readings_per_hour: int = 60
    seed: int = 7
    anomaly_rate: float = 0.04  # chance that a device-hour carries one anomaly event
    malformed_rate: float = 0.01  # share of readings replaced by a malformed record


@dataclass(frozen=True)
class Device:
    device_id: str
    device_name: str
    site: str
    device_type: str
    latitude: float
    longitude: float


@dataclass(frozen=True)
class AnomalyLabel:
    event_id: str
    device_id: str
    kind: str
    metric: str  # the metric the anomaly moves; "all" for a dropout
    event_time: str  # ISO-8601 UTC, one label per affected reading


@dataclass
class SimulatedHour:
    hour: datetime
    records: list[str]  # one JSON text per record, as a device sends it
    partition_keys: list[str]  # the sending device of each record
    labels: list[AnomalyLabel]
    send_times: list[float] = field(default_factory=list)  # epoch seconds each record is sent
    malformed: Counter = field(default_factory=Counter)  # kind -> count
    expected_quarantine: Counter = field(default_factory=Counter)  # bronze reason -> count
    expected_rejected: Counter = field(default_factory=Counter)  # silver reason -> count

    @property
    def valid_readings(self) -> int:
        return len(self.records) - sum(self.expected_quarantine.values()) - sum(self.expected_rejected.values())


def _rng(*parts: int) -> np.random.Generator:
    return np.random.default_rng([abs(int(p)) for p in parts])


def device_id(index: int) -> str:
    return f"dev-{index:04d}"


def device_registry(config: FleetConfig) -> list[Device]:
    devices = []
    for i in range(config.device_count):
        rng = _rng(config.seed, i, 1)
        site = SITES[i % len(SITES)]
        kind = DEVICE_TYPES[(i // len(SITES)) % len(DEVICE_TYPES)]
        devices.append(
            Device(
                device_id=device_id(i),
                device_name=f"{kind}-{site}-{i:04d}",
                site=site,
                device_type=kind,
                latitude=round(float(rng.uniform(40.0, 52.0)), 5),
                longitude=round(float(rng.uniform(-5.0, 15.0)), 5),
            )
        )
    return devices


@dataclass(frozen=True)
class _Profile:
    temp_base: float
    temp_amp: float
    humidity_base: float
    pressure_base: float
    vibration_base: float
    signal_base: float
    battery_phase: float
    drift_rate: float
    load_periods: tuple[float, float, float]
    load_phases: tuple[float, float, float]


def _profile(config: FleetConfig, index: int) -> _Profile:
    rng = _rng(config.seed, index, 2)
    return _Profile(
        temp_base=rng.uniform(40.0, 60.0),
        temp_amp=rng.uniform(2.0, 4.0),
        humidity_base=rng.uniform(40.0, 60.0),
        pressure_base=rng.uniform(1.8, 2.8),
        vibration_base=rng.uniform(0.8, 1.8),
        signal_base=rng.uniform(-80.0, -50.0),
        battery_phase=rng.uniform(0, 720),
        drift_rate=rng.uniform(0.0, 1.5),
        load_periods=tuple(rng.uniform(lo, hi) for lo, hi in ((900, 1800), (5400, 9000), (20000, 30000))),
        load_phases=tuple(rng.uniform(0, 2 * np.pi, 3)),
    )


def _signals(p: _Profile, t: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Normal operation at epoch seconds `t`."""
    day = 2 * np.pi * ((t % 86400) / 86400.0)
    load = (
        sum(np.sin(2 * np.pi * t / period + phase) for period, phase in zip(p.load_periods, p.load_phases, strict=True))
        / 3
    )
    cycle = np.sin(day - 3 * np.pi / 4)  # warmest mid-afternoon UTC
    drift = p.drift_rate * ((t / 3600.0) % 336) / 336  # re-calibrated every two weeks
    n = len(t)
    temperature = p.temp_base + p.temp_amp * cycle + drift + 1.5 * load + rng.normal(0, 0.3, n)
    return {
        "temperature": temperature,
        "humidity": np.clip(p.humidity_base - 2.0 * p.temp_amp * cycle + rng.normal(0, 1.0, n), 5, 95),
        "pressure": p.pressure_base + 0.25 * load + 0.01 * (temperature - p.temp_base) + rng.normal(0, 0.03, n),
        "vibration": np.clip(p.vibration_base + 0.4 * load + rng.normal(0, 0.08, n), 0.05, None),
        "battery_level": 100.0 - 60.0 * (((t / 3600.0) + p.battery_phase) % 720) / 720,
        "signal_strength": np.round(p.signal_base + rng.normal(0, 2.0, n)),
    }


_SHIFT = {"temperature": (12.0, 20.0), "pressure": (1.0, 1.8), "vibration": (2.0, 3.5), "humidity": (20.0, 30.0)}
_SPIKE = {"temperature": (25.0, 40.0), "pressure": (2.0, 3.0), "vibration": (4.0, 6.0), "humidity": (30.0, 40.0)}


def _inject(kind: str, metric: str, sig: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Apply one anomaly in place; return the indices of the readings it affects."""
    n = len(sig["temperature"])
    if kind == "spike":
        width = int(rng.integers(1, 4))
        start = int(rng.integers(0, n - width))
        idx = np.arange(start, start + width)
        sig[metric][idx] += rng.uniform(*_SPIKE[metric])
    elif kind == "level_shift":
        start = int(rng.integers(n // 6, n // 2))
        idx = np.arange(start, n)
        sig[metric][idx] += rng.uniform(*_SHIFT[metric])
    elif kind == "drift":
        start = int(rng.integers(0, n // 3))
        idx = np.arange(start, n)
        sig[metric][idx] += np.linspace(0, 2.0 * _SHIFT[metric][1], len(idx))
    elif kind == "stuck":
        width = max(n // 3, 3)
        start = int(rng.integers(0, n - width))
        idx = np.arange(start, start + width)
        for m in ("temperature", "humidity", "pressure", "vibration"):
            sig[m][idx] = sig[m][start]
    else:  # dropout: the sensor front end fails and reads zero with a collapsing signal
        width = int(rng.integers(max(n // 12, 2), max(n // 4, 3)))
        start = int(rng.integers(0, n - width))
        idx = np.arange(start, start + width)
        for m in ("temperature", "humidity", "pressure", "vibration"):
            sig[m][idx] = 0.0
        sig["signal_strength"][idx] = -120.0
    if "humidity" in sig:
        sig["humidity"] = np.clip(sig["humidity"], 0, 100)
    return idx


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# Decimal places of each rounded metric, in the order the record's fields are sent.
_DIGITS = {"temperature": 3, "humidity": 2, "pressure": 4, "vibration": 4, "battery_level": 1}
_COMPACT = json.JSONEncoder(separators=(",", ":"))  # one encoder for every record, not one per call


def _record(dev: str, ts: str, values: dict[str, float], status: str) -> dict:
    return {
        "device_id": dev,
        "timestamp": ts,
        **{m: round(values[m], d) for m, d in _DIGITS.items()},
        "signal_strength": int(values["signal_strength"]),
        "status": status,
    }


def _malform(kind: str, rec: dict, rng: np.random.Generator) -> tuple[list[str], str | None, str | None]:
    """A malformed variant of `rec`: its texts, and the bronze or silver reason it must get."""
    text = json.dumps(rec, separators=(",", ":"))
    if kind == "broken_json":
        return [text[: int(rng.integers(5, len(text) - 5))]], reasons.MALFORMED_JSON, None
    if kind == "missing_field":
        field_ = ("temperature", "device_id", "timestamp")[int(rng.integers(0, 3))]
        return [json.dumps({k: v for k, v in rec.items() if k != field_})], reasons.MISSING_FIELD, None
    if kind == "wrong_type":
        bad = ("12,5", True, "hot")[int(rng.integers(0, 3))]
        return [json.dumps({**rec, "temperature": bad})], reasons.INVALID_TYPE, None
    if kind == "non_numeric":
        return [text.replace(f'"pressure":{json.dumps(rec["pressure"])}', '"pressure":NaN')], reasons.INVALID_TYPE, None
    if kind == "impossible_value":
        field_, value = (("humidity", 140.0), ("temperature", 999.0), ("battery_level", -5.0))[int(rng.integers(0, 3))]
        return [json.dumps({**rec, field_: value})], None, reasons.OUT_OF_RANGE
    if kind == "invalid_status":
        return [json.dumps({**rec, "status": "bogus"})], None, reasons.INVALID_STATUS
    if kind == "duplicate":
        return [text, text], None, reasons.DUPLICATE
    if kind == "late_event":
        ts = datetime.strptime(rec["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ") - timedelta(hours=3)
        return (
            [json.dumps({**rec, "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"})],
            reasons.LATE_EVENT,
            None,
        )
    if kind == "future_event":
        ts = datetime.strptime(rec["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ") + timedelta(hours=5)
        return (
            [json.dumps({**rec, "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"})],
            reasons.FUTURE_EVENT,
            None,
        )
    # bad_timestamp
    return [json.dumps({**rec, "timestamp": "21/11/2026 10h"})], reasons.INVALID_TIMESTAMP, None


def simulate_device_hour(config: FleetConfig, index: int, hour: datetime, out: SimulatedHour) -> None:
    hour = hour.astimezone(UTC)
    h_epoch = int(hour.timestamp())
    rng = _rng(config.seed, index, h_epoch // 3600, 3)
    n = config.readings_per_hour
    interval = 3600.0 / n
    offset = _rng(config.seed, index, 4).uniform(0, interval * 0.5)
    t = h_epoch + offset + np.arange(n) * interval + rng.uniform(0, interval * 0.25, n)
    sig = _signals(_profile(config, index), t, rng)
    dev = device_id(index)

    anomalous = np.zeros(n, dtype=bool)
    if rng.random() < config.anomaly_rate:
        kind = ANOMALY_KINDS[int(rng.integers(0, len(ANOMALY_KINDS)))]
        metric = (
            "all"
            if kind in ("dropout", "stuck")
            else ("temperature", "pressure", "vibration", "humidity")[int(rng.integers(0, 4))]
        )
        if kind == "drift" and metric in ("humidity", "pressure"):
            metric = "temperature"
        idx = _inject(kind, metric if metric != "all" else "temperature", sig, rng)
        anomalous[idx] = True
        event_id = f"{dev}/{hour:%Y%m%dT%H}/{kind}"
        out.labels.extend(AnomalyLabel(event_id, dev, kind, metric, _iso(t[i])) for i in idx)

    malformed = (rng.random(n) < config.malformed_rate) & ~anomalous
    kinds = rng.integers(0, len(MALFORMED_KINDS), n)
    # Rounded per array, then plain floats: rounding numpy scalars one by one was 40% of the time.
    # np.round is the rounding a numpy scalar's round() applies, and _record's round() of an
    # already rounded float returns it unchanged, so the records are the same as before.
    values = [
        dict(zip(METRICS, row, strict=True))
        for row in zip(
            *(np.round(sig[m], _DIGITS[m]).tolist() if m in _DIGITS else sig[m].tolist() for m in METRICS), strict=True
        )
    ]
    for i in range(n):
        rec = _record(dev, _iso(t[i]), values[i], "normal")
        if not malformed[i]:
            out.records.append(_COMPACT.encode(rec))
            out.partition_keys.append(dev)
            out.send_times.append(float(t[i]))
            continue
        kind = MALFORMED_KINDS[kinds[i]]
        texts, quarantine, rejected = _malform(kind, rec, rng)
        out.records.extend(texts)
        out.partition_keys.extend([dev] * len(texts))
        out.send_times.extend([float(t[i])] * len(texts))  # a late or future timestamp is still sent now
        out.malformed[kind] += 1
        if quarantine:
            out.expected_quarantine[quarantine] += 1
        if rejected:
            out.expected_rejected[rejected] += 1


def simulate_hour(hour: datetime, config: FleetConfig) -> SimulatedHour:
    """The fleet's records for one hour, in device order; identical on every call."""
    out = SimulatedHour(hour=hour.astimezone(UTC), records=[], partition_keys=[], labels=[])
    for index in range(config.device_count):
        simulate_device_hour(config, index, hour, out)
    return out


def checksum(records: list[str]) -> int:
    return zlib.crc32("\n".join(records).encode())
