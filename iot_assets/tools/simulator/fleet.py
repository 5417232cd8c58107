"""A simulated fleet of industrial sensors, deterministic for each (hour, device).

Each channel's signal is declared in the catalogue (its `simulate` block, docs/catalogue.md) as
physical parameters: a per-device level, a daily cycle, slow calibration drift, coupling to a latent
machine load shared by the device's channels, coupling to another channel, and noise. Signals are
functions of absolute time, so consecutive hours join smoothly. Each device-hour may carry one
injected anomaly (labelled), and a small share of records is malformed in known ways, each with the
reason the pipeline is expected to give.
"""

from __future__ import annotations

import functools
import json
import math
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from iot_assets.lib import catalogue as catalogues
from iot_assets.lib import reasons
from iot_assets.lib.catalogue import DEFAULT_PATH, Catalogue, Channel, load_catalogue, simulation_order

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


@functools.cache
def _shipped() -> Catalogue:
    return load_catalogue(DEFAULT_PATH)


def fleet_catalogue() -> Catalogue:
    """The fleet the simulator produces: the active catalogue's when all its channels declare `simulate`,
    else the shipped catalogue's."""
    current = catalogues.active()
    return current if current.simulated else _shipped()


@dataclass(frozen=True)
class _Fleet:
    """What the simulator needs of a catalogue, worked out once."""

    catalogue: Catalogue
    order: tuple[Channel, ...]  # a channel after the channels it follows
    targeted: tuple[str, ...]  # channels that carry spike, level_shift or drift anomalies
    stuck: tuple[str, ...]  # channels with anomaly magnitudes: a stuck sensor freezes them
    dropout: tuple[tuple[str, float], ...]  # (channel, its reading) during a dropout
    kinds: tuple[str, ...]  # the anomaly kinds some channel can carry, in ANOMALY_KINDS order
    typed: tuple[str, ...]  # payload keys of the double channels (wrong_type, non_numeric)


@functools.cache
def _fleet(cat: Catalogue) -> _Fleet:
    if not cat.simulated:
        raise ValueError(f"{cat.path}: every channel needs a `simulate` block to be simulated")
    sims = {c.name: c.simulate for c in cat.channels}
    stuck = tuple(n for n, s in sims.items() if s.magnitudes)
    dropout = tuple(
        (n, 0.0 if s.dropout is None else s.dropout) for n, s in sims.items() if s.magnitudes or s.dropout is not None
    )
    carried = {k for s in sims.values() for k in s.anomalies}
    if stuck:
        carried.add("stuck")
    if dropout:
        carried.add("dropout")
    doubles = tuple(c.key for c in cat.channels if c.type == "double")
    return _Fleet(
        catalogue=cat,
        order=simulation_order(cat.channels, cat.path),
        targeted=tuple(n for n, s in sims.items() if s.anomalies),
        stuck=stuck,
        dropout=dropout,
        kinds=tuple(k for k in ANOMALY_KINDS if k in carried),
        typed=doubles or tuple(c.key for c in cat.channels),
    )


@dataclass(frozen=True)
class _Profile:
    """A device's drawn parameters, by channel name."""

    level: dict[str, float]
    amplitude: dict[str, float]  # of the daily cycle
    phase: dict[str, float]  # hours into the sawtooth
    drift_rate: dict[str, float]
    load_periods: tuple[float, float, float]
    load_phases: tuple[float, float, float]


def _profile(fleet: _Fleet, config: FleetConfig, index: int) -> _Profile:
    rng = _rng(config.seed, index, 2)
    channels = fleet.catalogue.channels
    # Levels and amplitudes, then sawtooth phases, then drift rates: the order the shipped fleet's
    # parameters were drawn in before the catalogue declared them, so its devices keep their signals.
    level, amplitude = {}, {}
    for c in channels:
        if c.simulate.level is not None:
            level[c.name] = rng.uniform(*c.simulate.level)
        if c.simulate.cycle is not None:
            amplitude[c.name] = rng.uniform(*c.simulate.cycle)
    phase = {c.name: rng.uniform(0, c.simulate.sawtooth[2]) for c in channels if c.simulate.sawtooth is not None}
    drift = {c.name: rng.uniform(*c.simulate.drift) for c in channels if c.simulate.drift is not None}
    load_periods = tuple(rng.uniform(lo, hi) for lo, hi in ((900, 1800), (5400, 9000), (20000, 30000)))
    load_phases = tuple(rng.uniform(0, 2 * np.pi, 3))
    for c in channels:
        if c.simulate.cycle_of is not None:
            other, times = c.simulate.cycle_of
            amplitude[c.name] = times * amplitude[other]
    return _Profile(level, amplitude, phase, drift, load_periods, load_phases)


def _signals(fleet: _Fleet, p: _Profile, t: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Normal operation at epoch seconds `t`, before anomalies, range limits and whole-number rounding."""
    day = 2 * np.pi * ((t % 86400) / 86400.0)
    load = (
        sum(np.sin(2 * np.pi * t / period + phase) for period, phase in zip(p.load_periods, p.load_phases, strict=True))
        / 3
    )
    cycle = np.sin(day - 3 * np.pi / 4)  # warmest mid-afternoon UTC
    since_calibration = ((t / 3600.0) % 336) / 336  # re-calibrated every two weeks
    hours = t / 3600.0
    n = len(t)
    sig: dict[str, np.ndarray] = {}
    for c in fleet.order:
        s, name = c.simulate, c.name
        v = np.full(n, p.level.get(name, 0.0))
        if name in p.amplitude:
            v = v + p.amplitude[name] * cycle
        if name in p.drift_rate:
            v = v + p.drift_rate[name] * since_calibration
        if s.load:
            v = v + s.load * load
        for other, factor in s.follows:
            v = v + factor * (sig[other] - p.level.get(other, 0.0))
        if s.sawtooth is not None:
            top, bottom, period = s.sawtooth
            v = v + (top - (top - bottom) * ((hours + p.phase[name]) % period) / period)
        if s.noise:
            v = v + rng.normal(0, s.noise, n)
        if s.clip != (None, None):
            v = np.clip(v, *s.clip)
        sig[name] = v
    return sig


def _inject(fleet: _Fleet, kind: str, metric: str, sig: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Apply one anomaly in place; return the indices of the readings it affects."""
    n = len(next(iter(sig.values())))
    spec = fleet.catalogue.channel(metric).simulate if metric != "all" else None
    if kind == "spike":
        width = int(rng.integers(1, 4))
        start = int(rng.integers(0, n - width))
        idx = np.arange(start, start + width)
        sig[metric][idx] += rng.uniform(*spec.spike)
    elif kind == "level_shift":
        start = int(rng.integers(n // 6, n // 2))
        idx = np.arange(start, n)
        sig[metric][idx] += rng.uniform(*spec.shift)
    elif kind == "drift":
        start = int(rng.integers(0, n // 3))
        idx = np.arange(start, n)
        sig[metric][idx] += np.linspace(0, 2.0 * spec.shift[1], len(idx))
    elif kind == "stuck":
        width = max(n // 3, 3)
        start = int(rng.integers(0, n - width))
        idx = np.arange(start, start + width)
        for m in fleet.stuck:
            sig[m][idx] = sig[m][start]
    else:  # dropout: the sensor front end fails and reads zero (or the channel's dropout reading)
        width = int(rng.integers(max(n // 12, 2), max(n // 4, 3)))
        start = int(rng.integers(0, n - width))
        idx = np.arange(start, start + width)
        for m, value in fleet.dropout:
            sig[m][idx] = value
    return idx


def _choose_anomaly(fleet: _Fleet, rng: np.random.Generator) -> tuple[str, str]:
    """An anomaly kind and the channel it moves ("all" for stuck and dropout)."""
    kind = fleet.kinds[int(rng.integers(0, len(fleet.kinds)))]
    if kind in ("dropout", "stuck"):
        return kind, "all"
    metric = fleet.targeted[int(rng.integers(0, len(fleet.targeted)))]
    if kind not in fleet.catalogue.channel(metric).simulate.anomalies:  # e.g. drift only where declared
        metric = next(m for m in fleet.targeted if kind in fleet.catalogue.channel(m).simulate.anomalies)
    return kind, metric


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


_COMPACT = json.JSONEncoder(separators=(",", ":"))  # one encoder for every record, not one per call


def _sent(c: Channel, v: np.ndarray) -> list:
    """A channel's readings as a device sends them: clipped to its range, whole or rounded."""
    v = np.clip(v, *c.valid_range)
    if c.whole:
        return np.round(v).astype(np.int64).tolist()
    return (v if c.simulate.digits is None else np.round(v, c.simulate.digits)).tolist()


def _outside(c: Channel, rng: np.random.Generator) -> float | int:
    """A value outside the channel's range, half the range's span beyond one of its ends."""
    lo, hi = c.valid_range
    span = hi - lo
    value = math.ceil(hi + span / 2) if rng.random() < 0.5 else math.floor(lo - span / 2)
    return value if c.type == "long" else float(value)


def _malform(fleet: _Fleet, kind: str, rec: dict, rng: np.random.Generator) -> tuple[list[str], str | None, str | None]:
    """A malformed variant of `rec`: its texts, and the bronze or silver reason it must get."""
    cat, keys = fleet.catalogue, fleet.catalogue.record
    text = json.dumps(rec, separators=(",", ":"))
    if kind == "broken_json":
        return [text[: int(rng.integers(5, len(text) - 5))]], reasons.MALFORMED_JSON, None
    if kind == "missing_field":
        first_required = next(c.key for c in cat.channels if c.required)
        field_ = (first_required, keys.device_id, keys.timestamp)[int(rng.integers(0, 3))]
        return [json.dumps({k: v for k, v in rec.items() if k != field_})], reasons.MISSING_FIELD, None
    if kind == "wrong_type":
        key = fleet.typed[int(rng.integers(0, len(fleet.typed)))]
        bad = ("12,5", True, "hot")[int(rng.integers(0, 3))]
        return [json.dumps({**rec, key: bad})], reasons.INVALID_TYPE, None
    if kind == "non_numeric":
        key = json.dumps(fleet.typed[int(rng.integers(0, len(fleet.typed)))])
        return [text.replace(f"{key}:{json.dumps(rec[json.loads(key)])}", f"{key}:NaN")], reasons.INVALID_TYPE, None
    if kind == "impossible_value":
        channel = cat.channels[int(rng.integers(0, len(cat.channels)))]
        return [json.dumps({**rec, channel.key: _outside(channel, rng)})], None, reasons.OUT_OF_RANGE
    if kind == "invalid_status":
        return [json.dumps({**rec, keys.status: "bogus"})], None, reasons.INVALID_STATUS
    if kind == "duplicate":
        return [text, text], None, reasons.DUPLICATE
    if kind in ("late_event", "future_event"):
        moved = timedelta(hours=-3) if kind == "late_event" else timedelta(hours=5)
        ts = datetime.strptime(rec[keys.timestamp], "%Y-%m-%dT%H:%M:%S.%fZ") + moved
        return (
            [json.dumps({**rec, keys.timestamp: ts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"})],
            reasons.LATE_EVENT if kind == "late_event" else reasons.FUTURE_EVENT,
            None,
        )
    # bad_timestamp
    return [json.dumps({**rec, keys.timestamp: "21/11/2026 10h"})], reasons.INVALID_TIMESTAMP, None


def simulate_device_hour(
    config: FleetConfig, index: int, hour: datetime, out: SimulatedHour, catalogue: Catalogue | None = None
) -> None:
    fleet = _fleet(catalogue or fleet_catalogue())
    hour = hour.astimezone(UTC)
    h_epoch = int(hour.timestamp())
    rng = _rng(config.seed, index, h_epoch // 3600, 3)
    n = config.readings_per_hour
    interval = 3600.0 / n
    offset = _rng(config.seed, index, 4).uniform(0, interval * 0.5)
    t = h_epoch + offset + np.arange(n) * interval + rng.uniform(0, interval * 0.25, n)
    sig = _signals(fleet, _profile(fleet, config, index), t, rng)
    dev = device_id(index)

    anomalous = np.zeros(n, dtype=bool)
    if rng.random() < config.anomaly_rate and fleet.kinds:
        kind, metric = _choose_anomaly(fleet, rng)
        idx = _inject(fleet, kind, metric, sig, rng)
        anomalous[idx] = True
        event_id = f"{dev}/{hour:%Y%m%dT%H}/{kind}"
        out.labels.extend(AnomalyLabel(event_id, dev, kind, metric, _iso(t[i])) for i in idx)

    malformed = (rng.random(n) < config.malformed_rate) & ~anomalous
    kinds = rng.integers(0, len(MALFORMED_KINDS), n)
    # Rounded per array, then plain Python numbers: rounding numpy scalars one by one was 40% of the time.
    channels = fleet.catalogue.channels
    columns = [_sent(c, sig[c.name]) for c in channels]
    keys = fleet.catalogue.record
    channel_keys = [c.key for c in channels]
    for i, row in enumerate(zip(*columns, strict=True)):
        rec = {keys.device_id: dev, keys.timestamp: _iso(t[i]), **dict(zip(channel_keys, row, strict=True))}
        rec[keys.status] = "normal"
        if not malformed[i]:
            out.records.append(_COMPACT.encode(rec))
            out.partition_keys.append(dev)
            out.send_times.append(float(t[i]))
            continue
        kind = MALFORMED_KINDS[kinds[i]]
        texts, quarantine, rejected = _malform(fleet, kind, rec, rng)
        out.records.extend(texts)
        out.partition_keys.extend([dev] * len(texts))
        out.send_times.extend([float(t[i])] * len(texts))  # a late or future timestamp is still sent now
        out.malformed[kind] += 1
        if quarantine:
            out.expected_quarantine[quarantine] += 1
        if rejected:
            out.expected_rejected[rejected] += 1


def simulate_hour(hour: datetime, config: FleetConfig, catalogue: Catalogue | None = None) -> SimulatedHour:
    """The fleet's records for one hour, in device order; identical on every call.

    `catalogue` (by default `fleet_catalogue()`) gives the channels, their signals and the record's keys.
    """
    catalogue = catalogue or fleet_catalogue()
    out = SimulatedHour(hour=hour.astimezone(UTC), records=[], partition_keys=[], labels=[])
    for index in range(config.device_count):
        simulate_device_hour(config, index, hour, out, catalogue)
    return out


def checksum(records: list[str]) -> int:
    return zlib.crc32("\n".join(records).encode())
