"""The sensor catalogue: the one declaration of a fleet's channels, which every layer reads.

A catalogue is a YAML file (the shipped default, `default_catalogue.yaml`, describes the simulated
fleet; `IOT_SENSOR_CATALOGUE` points at another). Each channel has a name, a unit, a type, a valid
range, whether it is required, and its roles; the catalogue also names the record's own fields, the
device registry's attributes (which silver joins onto each reading) and the threshold detector's
default limits. Bronze's parse schema, the pandera models of bronze, silver
and gold, silver's ranges and rolling averages, gold's statistics, the model features and the
z-score metrics are derived from it, and so is the fleet simulator's signal of each channel that
declares one (`simulate`). See docs/catalogue.md.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pyspark.sql.types as T
import yaml

from iot_assets import settings

DEFAULT_PATH = Path(__file__).with_name("default_catalogue.yaml")

ROLLING_AVERAGE = "rolling_average"  # silver: trailing 5-minute mean
GOLD_STATISTICS = "gold_statistics"  # gold: hourly avg/min/max/stddev
TEN_MINUTE_WINDOW = "ten_minute_window"  # gold: 10-minute avg/min/max
ZSCORE = "zscore"  # anomaly log: z-score and shift detectors
MODEL_FEATURE = "model_feature"  # per-device KMeans models
ROLES = (ROLLING_AVERAGE, GOLD_STATISTICS, TEN_MINUTE_WINDOW, ZSCORE, MODEL_FEATURE)
# The statistics a channel may ask for in the 10-minute and the daily gold tables.
WINDOW_STATS = ("avg", "min", "max")
# A channel's type is its column's type in every layer that keeps readings. `long` takes whole
# numbers only: bronze quarantines 3.5 (invalid_type) rather than truncate it.
TYPES = {"double": T.DoubleType(), "long": T.LongType()}
THRESHOLD_OPS = (">", "<")

# A channel's name becomes a column name, so it follows the rule for table names.
_COLUMN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# A record field name is a JSON key that Spark reads as `p.<name>`.
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# Columns the layers add beside the channels; a channel of the same name would shadow one.
RESERVED_COLUMNS = frozenset(
    {
        "device_id",
        "event_time",
        "event_hour",
        "status",
        "extra_fields",
        "source",
        "source_object",
        "record_index",
        "ingest_time",
        "reason",
        "reason_detail",
        "kinesis_shard_id",
        "kinesis_sequence_number",
        "kinesis_partition_key",
        "kinesis_arrival_time",
        # Gold's own columns.
        "window_start",
        "window_end",
        "event_date",
        "reading_count",
        "record_count",
        "hours_reporting",
        # The anomaly log's own columns: its KMeans scoring and verdict select them by name.
        "metric",
        "value",
        "method",
        "score",
        "limit",
        "severity",
        "confirmed",
        "model_version",
    }
)


class CatalogueError(ValueError):
    """A catalogue that cannot be used, with the file and the channel at fault."""


@dataclass(frozen=True)
class Bands:
    """A channel's named bands: silver labels each reading, gold counts readings in the top band."""

    column: str  # silver's label column, e.g. vibration_category
    levels: tuple[str, ...]  # lowest first: a value below bounds[i] is levels[i], else the last level
    bounds: tuple[float, ...]
    top_count: str  # the 10-minute and daily tables' count of readings in the last (top) level


Range = tuple[float, float]
# The anomalies a channel's simulation may name; stuck and dropout hit every channel with magnitudes.
SIMULATED_ANOMALIES = ("spike", "level_shift", "drift")


@dataclass(frozen=True)
class Simulation:
    """A channel's simulated signal, as physical parameters (see docs/catalogue.md, `simulate`).

    value = level + cycle amplitude x daily cycle + drift + load x machine load
            + sum(factor x (other channel - its level)) + sawtooth + noise, then clipped and rounded.
    Ranges are drawn uniformly once per device.
    """

    level: Range | None = None
    cycle: Range | None = None  # amplitude of the daily cycle
    cycle_of: tuple[str, float] | None = None  # (channel, factor): follow that channel's drawn amplitude
    drift: Range | None = None  # calibration drift per two weeks
    load: float = 0.0
    follows: tuple[tuple[str, float], ...] = ()
    noise: float = 0.0
    clip: tuple[float | None, float | None] = (None, None)
    digits: int | None = None
    whole: bool = False
    sawtooth: tuple[float, float, float] | None = None  # (from, to, hours)
    spike: Range | None = None
    shift: Range | None = None
    anomalies: tuple[str, ...] = ()  # which of SIMULATED_ANOMALIES the channel can carry
    dropout: float | None = None  # its reading during a dropout; None: 0.0 if it has magnitudes, else unchanged

    @property
    def magnitudes(self) -> bool:
        """Declares anomaly magnitudes, so stuck and dropout readings hit it."""
        return self.spike is not None or self.shift is not None


@dataclass(frozen=True)
class Channel:
    """One sensor channel: a column in every layer that carries readings."""

    name: str
    unit: str
    type: str
    valid_range: tuple[float, float]  # silver rejects a value outside [low, high]
    required: bool  # a reading without a required channel is quarantined; an optional one is null
    roles: tuple[str, ...]
    source: str = ""  # the payload key (or import column) the channel arrives under; empty: its name
    ten_minute: tuple[str, ...] = ()  # statistics in the 10-minute table: `<stat>_<name>`
    daily: tuple[tuple[str, str], ...] = ()  # (statistic, column) in the daily summary
    bands: Bands | None = None
    simulate: Simulation | None = None  # the simulator's signal of this channel

    @property
    def whole(self) -> bool:
        """Sent as a whole number: a `long` channel, or one whose simulation says `whole`."""
        return self.type == "long" or (self.simulate is not None and self.simulate.whole)

    @property
    def key(self) -> str:
        """The payload key a record carries this channel under."""
        return self.source or self.name

    @property
    def spark_type(self) -> T.DataType:
        return TYPES[self.type]


@dataclass(frozen=True)
class RecordFields:
    """The payload keys of a record's device id, event time and status."""

    device_id: str = "device_id"
    timestamp: str = "timestamp"
    status: str = "status"


# A registry attribute's type is its column's type in device_registry, silver and gold.
ATTRIBUTE_TYPES = {"string": T.StringType(), "double": T.DoubleType(), "long": T.LongType()}
# The gold tables that may carry a registry attribute: device_hourly_stats, sensor_aggregates_10min,
# daily_device_summary.
GOLD_TABLES = ("hourly", "ten_minute", "daily")
# In a text attribute's `default`, replaced by the device's id.
DEVICE_ID = "{device_id}"


@dataclass(frozen=True)
class Attribute:
    """A device registry attribute: a column of device_registry, joined onto every silver reading."""

    name: str
    type: str
    required: bool  # a registry entry without it fails the registry's schema check
    range: tuple[float, float] | None = None  # [low, high], as written (the registry's ge/le check)
    gold: tuple[str, ...] = ()  # the GOLD_TABLES that carry it, per device
    default: object = None  # what `iot-assets import` registers a new device with

    @property
    def spark_type(self) -> T.DataType:
        return ATTRIBUTE_TYPES[self.type]

    def value_for(self, device_id: str) -> object:
        """Its default for a device: a text's `{device_id}` is replaced by the device's id."""
        return self.default.replace(DEVICE_ID, device_id) if isinstance(self.default, str) else self.default


@dataclass(frozen=True)
class ThresholdLimit:
    channel: str
    op: str  # ">" or "<"
    limit: float


@dataclass(frozen=True)
class Catalogue:
    path: str
    record: RecordFields
    channels: tuple[Channel, ...]
    threshold_rules: tuple[ThresholdLimit, ...] = ()
    registry: tuple[Attribute, ...] = ()

    def in_gold(self, table: str) -> tuple[Attribute, ...]:
        """The registry attributes a gold table (one of GOLD_TABLES) carries, in catalogue order."""
        return tuple(a for a in self.registry if table in a.gold)

    def device_entry(self, device_id: str, known: dict | None = None) -> dict:
        """A device's registry entry: each attribute from `known` where it has it, else its default."""
        known = known or {}
        return {"device_id": device_id, **{a.name: known.get(a.name, a.value_for(device_id)) for a in self.registry}}

    @property
    def simulated(self) -> bool:
        """Every channel declares its simulated signal, so the simulator can produce this fleet."""
        return all(c.simulate is not None for c in self.channels)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.channels)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.channels if c.required)

    def with_role(self, role: str) -> tuple[str, ...]:
        """The channels that have `role`, in catalogue order."""
        if role not in ROLES:
            raise KeyError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        return tuple(c.name for c in self.channels if role in c.roles)

    def ten_minute_columns(self) -> tuple[tuple[str, str, Channel], ...]:
        """(column, statistic, channel) of the 10-minute table's statistics, in catalogue order."""
        return tuple((f"{stat}_{c.name}", stat, c) for c in self.channels for stat in c.ten_minute)

    def daily_columns(self) -> tuple[tuple[str, str, Channel], ...]:
        """(column, statistic, channel) of the daily summary's statistics, in catalogue order."""
        return tuple((column, stat, c) for c in self.channels for stat, column in c.daily)

    def banded(self) -> tuple[Channel, ...]:
        """The channels with bands, in catalogue order."""
        return tuple(c for c in self.channels if c.bands is not None)

    def channel(self, name: str) -> Channel:
        for c in self.channels:
            if c.name == name:
                return c
        raise KeyError(f"{self.path}: no channel named {name!r}")


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """The catalogue at `path`; by default `IOT_SENSOR_CATALOGUE`, or the shipped one when that is empty."""
    if path is None:
        path = settings.get("IOT_SENSOR_CATALOGUE").strip() or DEFAULT_PATH
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as e:
        raise CatalogueError(f"{path}: cannot read the sensor catalogue: {e}") from None
    except yaml.YAMLError as e:
        raise CatalogueError(f"{path}: not valid YAML: {e}") from None
    return parse_catalogue(doc, str(path))


@functools.cache
def active() -> Catalogue:
    """The catalogue the definitions are built from (read once per process)."""
    return load_catalogue()


def parse_catalogue(doc: object, path: str = "<catalogue>") -> Catalogue:
    """A validated catalogue from its parsed YAML document."""
    if not isinstance(doc, dict):
        raise CatalogueError(f"{path}: a catalogue is a mapping with `channels` (and optionally `record`)")
    _no_unknown_keys(doc, {"record", "channels", "registry", "threshold_rules"}, path)
    record = _record(doc.get("record") or {}, path)
    raw_channels = doc.get("channels")
    if not isinstance(raw_channels, list) or not raw_channels:
        raise CatalogueError(f"{path}: `channels` must be a non-empty list")
    channels = tuple(_channel(c, i, path) for i, c in enumerate(raw_channels))
    seen: set[str] = set()
    for c in channels:
        if c.name in seen:
            raise CatalogueError(f"{path}: channel {c.name!r} is declared twice")
        seen.add(c.name)
        if c.name in (record.device_id, record.timestamp, record.status):
            raise CatalogueError(f"{path}: channel {c.name!r} has the name of a record field")
    keys: dict[str, str] = {record.device_id: "a record field", record.timestamp: "a record field"}
    keys[record.status] = "a record field"
    for c in channels:
        if c.key in keys:
            raise CatalogueError(f"{path}: channel {c.name!r}: its payload key {c.key!r} is already {keys[c.key]}")
        keys[c.key] = f"the key of channel {c.name!r}"
    columns = _no_column_clashes(channels, path)
    registry = _registry(doc["registry"], path) if "registry" in doc else _shipped_registry()
    for a in registry:
        if a.name in columns:
            raise CatalogueError(f"{path}: registry attribute {a.name!r} clashes with {columns[a.name]}")
    _simulation_references(channels, path)
    if not any(MODEL_FEATURE in c.roles for c in channels):
        raise CatalogueError(f"{path}: at least one channel needs the {MODEL_FEATURE} role (the anomaly models' input)")
    rules = tuple(
        _rule(r, i, path, {c.name: c for c in channels}) for i, r in enumerate(doc.get("threshold_rules") or [])
    )
    return Catalogue(path, record, channels, rules, registry)


def _no_column_clashes(channels: tuple[Channel, ...], path: str) -> dict[str, str]:
    """The columns the catalogue's channels add (channels, rolling averages, bands, gold statistics) are
    distinct; returns each column with what owns it, the layers' own columns included."""
    owner: dict[str, str] = {}
    for c in channels:
        made = [c.name, f"{c.name}_avg_5min", *(f"{stat}_{c.name}" for stat in ("avg", "min", "max", "stddev"))]
        made += [column for _, column in c.daily]
        if c.bands is not None:
            made += [c.bands.column, c.bands.top_count]
        for column in made:
            if column in RESERVED_COLUMNS or column in owner:
                other = owner.get(column, "the layers' own columns")
                raise CatalogueError(f"{path}: channel {c.name!r}: column {column!r} clashes with {other}")
            owner[column] = f"channel {c.name!r}"
    return {**dict.fromkeys(RESERVED_COLUMNS, "the layers' own columns"), **owner}


def _no_unknown_keys(entry: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise CatalogueError(
            f"{where}: unknown key(s) {', '.join(map(str, unknown))}; allowed: {', '.join(sorted(allowed))}"
        )


def _record(entry: object, path: str) -> RecordFields:
    if not isinstance(entry, dict):
        raise CatalogueError(f"{path}: `record` must map device_id, timestamp and status to payload field names")
    _no_unknown_keys(entry, {"device_id", "timestamp", "status"}, f"{path}: record")
    fields = RecordFields(**entry)
    names = [fields.device_id, fields.timestamp, fields.status]
    for name in names:
        if not isinstance(name, str) or not _FIELD.match(name):
            raise CatalogueError(f"{path}: record field {name!r} is not a valid field name (letters, digits, `_`)")
    if len(set(names)) != len(names):
        raise CatalogueError(f"{path}: record fields must be three different names, got {names}")
    return fields


def _channel(entry: object, index: int, path: str) -> Channel:
    name = entry.get("name") if isinstance(entry, dict) else None
    where = f"{path}: channel {name!r}" if isinstance(name, str) else f"{path}: channel #{index + 1}"
    if not isinstance(entry, dict):
        raise CatalogueError(f"{where}: a channel is a mapping with name, unit, type, range, required and roles")
    allowed = {"name", "unit", "type", "range", "required", "roles", "source", "ten_minute", "daily", "bands"}
    _no_unknown_keys(entry, allowed | {"simulate"}, where)
    if not isinstance(name, str) or not _COLUMN.match(name):
        raise CatalogueError(
            f"{where}: the name becomes a column name, so it must be lower case letters, digits and `_`, "
            "starting with a letter (at most 63 characters)"
        )
    if name in RESERVED_COLUMNS:
        raise CatalogueError(f"{where}: {name!r} is a column the layers already have")
    unit = entry.get("unit")
    if not isinstance(unit, str) or not unit.strip():
        raise CatalogueError(f"{where}: `unit` must be a non-empty text")
    type_ = _type(entry, "double", TYPES, where)
    bounds = _bounds(entry.get("range"), where)
    required = _flag(entry, "required", True, where)
    roles = entry.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise CatalogueError(f"{where}: `roles` must be a list of role names")
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise CatalogueError(f"{where}: unknown role(s) {', '.join(unknown)}; roles are {', '.join(ROLES)}")
    if len(set(roles)) != len(roles):
        raise CatalogueError(f"{where}: a role is listed twice in {roles}")
    # The models and the z-score baseline need a value in every reading.
    for role in (MODEL_FEATURE, ZSCORE):
        if role in roles and not required:
            raise CatalogueError(f"{where}: an optional channel cannot have the {role} role")
    if "ten_minute" in entry and TEN_MINUTE_WINDOW in roles:
        raise CatalogueError(
            f"{where}: give either the {TEN_MINUTE_WINDOW} role (avg, min and max) or `ten_minute`, not both"
        )
    ten_minute = (
        WINDOW_STATS if TEN_MINUTE_WINDOW in roles else _stats(entry.get("ten_minute", []), "ten_minute", where)
    )
    daily = entry.get("daily", [])
    if isinstance(daily, dict):
        daily_columns = tuple(
            (stat, column) for stat, column in zip(_stats(list(daily), "daily", where), daily.values(), strict=True)
        )
        for _, column in daily_columns:
            _column_name(column, f"{where}: daily column")
    else:
        daily_columns = tuple((stat, f"daily_{stat}_{name}") for stat in _stats(daily, "daily", where))
    source = entry.get("source", "")
    if (
        not isinstance(source, str)
        or len(source) > 128
        or any(ch in source for ch in '`"\\')
        or (source and (source != source.strip() or not source.isprintable()))
    ):
        raise CatalogueError(
            f"{where}: `source` is the payload key or column the channel arrives under: printable text without "
            f"quotes, backticks or surrounding spaces, at most 128 characters; got {source!r}"
        )
    return Channel(
        name,
        unit.strip(),
        type_,
        (float(bounds[0]), float(bounds[1])),
        required,
        tuple(roles),
        source if source != name else "",
        ten_minute,
        daily_columns,
        _bands(entry["bands"], where) if "bands" in entry else None,
        _simulation(entry["simulate"], where) if "simulate" in entry else None,
    )


@functools.cache
def _shipped_registry() -> tuple[Attribute, ...]:
    """The shipped catalogue's registry attributes: a catalogue without `registry` has these."""
    return _registry(yaml.safe_load(DEFAULT_PATH.read_text())["registry"], str(DEFAULT_PATH))


def _registry(entries: object, path: str) -> tuple[Attribute, ...]:
    if not isinstance(entries, list):
        raise CatalogueError(f"{path}: `registry` must be a list of attributes (name, type, required, range, ...)")
    attributes = tuple(_attribute(a, i, path) for i, a in enumerate(entries))
    names = [a.name for a in attributes]
    for name in names:
        if names.count(name) > 1:
            raise CatalogueError(f"{path}: registry attribute {name!r} is declared twice")
    return attributes


def _attribute(entry: object, index: int, path: str) -> Attribute:
    name = entry.get("name") if isinstance(entry, dict) else None
    where = (
        f"{path}: registry attribute {name!r}" if isinstance(name, str) else f"{path}: registry attribute #{index + 1}"
    )
    if not isinstance(entry, dict):
        raise CatalogueError(f"{where}: an attribute is a mapping with name, type and required")
    _no_unknown_keys(entry, {"name", "type", "required", "range", "gold", "default"}, where)
    _column_name(name, f"{where}: the name")
    type_ = _type(entry, "string", ATTRIBUTE_TYPES, where)
    required = _flag(entry, "required", True, where)
    bounds = entry.get("range")
    if bounds is not None:
        if type_ == "string":
            raise CatalogueError(f"{where}: a `range` needs a number type (double or long), not string")
        bounds = tuple(_bounds(bounds, where))
    gold = entry.get("gold", [])
    if not isinstance(gold, list) or not all(g in GOLD_TABLES for g in gold) or len(set(gold)) != len(gold):
        raise CatalogueError(f"{where}: `gold` must list some of {', '.join(GOLD_TABLES)}, each once; got {gold!r}")
    default = entry.get("default")
    if required and default is None:
        raise CatalogueError(f"{where}: a required attribute needs a `default`, for the devices an import registers")
    if default is not None:
        fits = {"string": isinstance(default, str), "double": _number(default), "long": type(default) is int}
        if not fits[type_]:
            raise CatalogueError(f"{where}: `default` {default!r} is not a {type_}")
        if bounds is not None and not bounds[0] <= default <= bounds[1]:
            raise CatalogueError(f"{where}: `default` {default!r} is outside its range {list(bounds)}")
    return Attribute(name, type_, required, bounds, tuple(gold), default)


def _column_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not _COLUMN.match(value):
        raise CatalogueError(f"{what} {value!r} is not a column name (lower case letters, digits and `_`)")
    return value


def _stats(value: object, key: str, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or len(set(value)) != len(value):
        raise CatalogueError(f"{where}: `{key}` must list statistics, each once; got {value!r}")
    unknown = [v for v in value if v not in WINDOW_STATS]
    if unknown:
        raise CatalogueError(
            f"{where}: `{key}`: unknown statistic(s) {', '.join(unknown)}; use {', '.join(WINDOW_STATS)}"
        )
    return tuple(value)


def _bands(entry: object, where: str) -> Bands:
    where = f"{where}: bands"
    if not isinstance(entry, dict):
        raise CatalogueError(f"{where}: a mapping with column, levels, bounds and top_count")
    _no_unknown_keys(entry, {"column", "levels", "bounds", "top_count"}, where)
    levels, bounds = entry.get("levels"), entry.get("bounds")
    if not isinstance(levels, list) or len(levels) < 2 or not all(isinstance(v, str) and v for v in levels):
        raise CatalogueError(f"{where}: `levels` must list at least two level names, lowest first; got {levels!r}")
    if len(set(levels)) != len(levels):
        raise CatalogueError(f"{where}: a level is named twice in {levels}")
    if (
        not isinstance(bounds, list)
        or len(bounds) != len(levels) - 1
        or not all(isinstance(b, int | float) and not isinstance(b, bool) and math.isfinite(b) for b in bounds)
        or any(a >= b for a, b in zip(bounds, bounds[1:], strict=False))
    ):
        raise CatalogueError(
            f"{where}: `bounds` must be {len(levels) - 1} increasing finite numbers (one fewer than the levels); "
            f"got {bounds!r}"
        )
    return Bands(
        _column_name(entry.get("column"), f"{where}: column"),
        tuple(levels),
        tuple(float(b) for b in bounds),
        _column_name(entry.get("top_count"), f"{where}: top_count"),
    )


def _type(entry: dict, default: str, types: dict, where: str) -> str:
    type_ = entry.get("type", default)
    if type_ not in types:
        raise CatalogueError(f"{where}: type {type_!r} is not supported; supported: {', '.join(types)}")
    return type_


def _flag(entry: dict, key: str, default: bool, where: str) -> bool:
    value = entry.get(key, default)
    if not isinstance(value, bool):
        raise CatalogueError(f"{where}: `{key}` must be true or false; got {value!r}")
    return value


def _bounds(value: object, where: str) -> list:
    """A valid range, [low, high] with low < high, as written."""
    if not isinstance(value, list) or len(value) != 2 or not all(map(_number, value)) or not value[0] < value[1]:
        raise CatalogueError(f"{where}: `range` must be [low, high], two finite numbers with low < high; got {value!r}")
    return value


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _range(value: object, key: str, where: str) -> Range:
    if not isinstance(value, list) or len(value) != 2 or not all(map(_number, value)) or value[0] > value[1]:
        raise CatalogueError(f"{where}: `{key}` must be [lo, hi], two finite numbers with lo <= hi; got {value!r}")
    return (float(value[0]), float(value[1]))


def _finite(value: object, key: str, where: str) -> float:
    if not _number(value):
        raise CatalogueError(f"{where}: `{key}` must be a finite number; got {value!r}")
    return float(value)


_SIMULATE_KEYS = {
    "level",
    "cycle",
    "drift",
    "load",
    "follows",
    "noise",
    "clip",
    "digits",
    "whole",
    "sawtooth",
    "spike",
    "shift",
    "anomalies",
    "dropout",
}


def _simulation(entry: object, where: str) -> Simulation:
    where = f"{where}: simulate"
    if not isinstance(entry, dict):
        raise CatalogueError(f"{where}: a mapping of the signal's parameters ({', '.join(sorted(_SIMULATE_KEYS))})")
    _no_unknown_keys(entry, _SIMULATE_KEYS, where)
    ranges = {k: _range(entry[k], k, where) if k in entry else None for k in ("level", "drift", "spike", "shift")}
    cycle, cycle_of = entry.get("cycle"), None
    if isinstance(cycle, dict):
        _no_unknown_keys(cycle, {"channel", "times"}, f"{where}: cycle")
        if not isinstance(cycle.get("channel"), str):
            raise CatalogueError(f"{where}: cycle: `channel` must name the channel whose amplitude it follows")
        cycle_of, cycle = (cycle["channel"], _finite(cycle.get("times", 1.0), "cycle: times", where)), None
    elif cycle is not None:
        cycle = _range(cycle, "cycle", where)
    follows = entry.get("follows", {})
    if not isinstance(follows, dict) or not all(isinstance(k, str) for k in follows):
        raise CatalogueError(f"{where}: `follows` must map channel names to factors; got {follows!r}")
    noise = _finite(entry.get("noise", 0.0), "noise", where)
    if noise < 0:
        raise CatalogueError(f"{where}: `noise` is a standard deviation, at least 0; got {noise}")
    clip = entry.get("clip", [None, None])
    if (
        not isinstance(clip, list)
        or len(clip) != 2
        or not all(c is None or _number(c) for c in clip)
        or (None not in clip and clip[0] > clip[1])
    ):
        raise CatalogueError(f"{where}: `clip` must be [lo, hi], numbers or null, with lo <= hi; got {clip!r}")
    digits = entry.get("digits")
    if digits is not None and (not isinstance(digits, int) or isinstance(digits, bool) or not 0 <= digits <= 12):
        raise CatalogueError(f"{where}: `digits` must be a whole number from 0 to 12; got {digits!r}")
    whole = _flag(entry, "whole", False, where)
    sawtooth = entry.get("sawtooth")
    if sawtooth is not None:
        if not isinstance(sawtooth, dict) or set(sawtooth) != {"from", "to", "hours"}:
            raise CatalogueError(f"{where}: `sawtooth` must be {{from: <value>, to: <value>, hours: <period>}}")
        sawtooth = tuple(_finite(sawtooth[k], f"sawtooth: {k}", where) for k in ("from", "to", "hours"))
        if sawtooth[2] <= 0:
            raise CatalogueError(f"{where}: sawtooth: `hours` must be above 0; got {sawtooth[2]}")
    default = [k for k, m in (("spike", "spike"), ("level_shift", "shift")) if ranges[m] is not None]
    anomalies = entry.get("anomalies", default)
    if not isinstance(anomalies, list) or len(set(anomalies)) != len(anomalies):
        raise CatalogueError(f"{where}: `anomalies` must list anomaly kinds, each once; got {anomalies!r}")
    for kind in anomalies:
        if kind not in SIMULATED_ANOMALIES:
            raise CatalogueError(f"{where}: anomaly {kind!r} is not one of {', '.join(SIMULATED_ANOMALIES)}")
        needs = "spike" if kind == "spike" else "shift"
        if ranges[needs] is None:
            raise CatalogueError(f"{where}: anomaly {kind!r} needs its magnitude, `{needs}: [lo, hi]`")
    return Simulation(
        level=ranges["level"],
        cycle=cycle,
        cycle_of=cycle_of,
        drift=ranges["drift"],
        load=_finite(entry.get("load", 0.0), "load", where),
        follows=tuple((k, _finite(v, f"follows: {k}", where)) for k, v in follows.items()),
        noise=noise,
        clip=tuple(None if c is None else float(c) for c in clip),
        digits=digits,
        whole=whole,
        sawtooth=sawtooth,
        spike=ranges["spike"],
        shift=ranges["shift"],
        anomalies=tuple(anomalies),
        dropout=_finite(entry["dropout"], "dropout", where) if "dropout" in entry else None,
    )


def _simulation_references(channels: tuple[Channel, ...], path: str) -> None:
    """The channels a simulation refers to exist, and `follows` has no cycle."""
    sims = {c.name: c.simulate for c in channels if c.simulate is not None}
    for name, sim in sims.items():
        where = f"{path}: channel {name!r}: simulate"
        if sim.cycle_of is not None:
            other = sims.get(sim.cycle_of[0])
            if other is None or other.cycle is None:
                raise CatalogueError(
                    f"{where}: cycle: channel {sim.cycle_of[0]!r} is not a simulated channel with `cycle: [lo, hi]`"
                )
        for other, _ in sim.follows:
            if other not in sims or other == name:
                raise CatalogueError(f"{where}: follows: channel {other!r} is not another simulated channel")
    simulation_order(channels, path)


def simulation_order(channels: tuple[Channel, ...], path: str = "<catalogue>") -> tuple[Channel, ...]:
    """The simulated channels in catalogue order, except that a channel comes after those it follows."""
    done: dict[str, Channel] = {}
    pending = [c for c in channels if c.simulate is not None]
    while pending:
        ready = [c for c in pending if all(o in done for o, _ in c.simulate.follows)]
        if not ready:
            raise CatalogueError(
                f"{path}: channel {pending[0].name!r}: simulate: `follows` goes round in a circle through "
                f"{', '.join(c.name for c in pending)}"
            )
        done[ready[0].name] = ready[0]
        pending.remove(ready[0])
    return tuple(done.values())


def _rule(entry: object, index: int, path: str, channels: dict[str, Channel]) -> ThresholdLimit:
    where = f"{path}: threshold rule #{index + 1}"
    if not isinstance(entry, dict):
        raise CatalogueError(f"{where}: a rule is a mapping with channel, op and limit")
    _no_unknown_keys(entry, {"channel", "op", "limit"}, where)
    channel, op, limit = entry.get("channel"), entry.get("op"), entry.get("limit")
    if channel not in channels:
        raise CatalogueError(f"{where}: channel {channel!r} is not in the catalogue")
    if op not in THRESHOLD_OPS:
        raise CatalogueError(f"{where} (channel {channel!r}): op must be one of {', '.join(THRESHOLD_OPS)}")
    if not isinstance(limit, int | float) or isinstance(limit, bool) or not math.isfinite(limit):
        raise CatalogueError(f"{where} (channel {channel!r}): limit must be a finite number; got {limit!r}")
    return ThresholdLimit(channel, op, float(limit))
