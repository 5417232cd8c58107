"""`iot-assets import`: history from CSV or Parquet files into raw batches, then one backfill run.

Each row becomes a record in the catalogue's record shape, so bronze parses it like any arrival.
A bad row (a timestamp that does not parse, a value that is not a number) is passed through as it
is, and bronze quarantines it with its reason: rows read = raw records. Files are read with
pandas, not Spark, so a dry run needs no JVM.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from iot_assets.lib.catalogue import Catalogue, active
from iot_assets.lib.partitions import HOUR

SUFFIXES = (".csv", ".parquet")
LAST_HOUR = "last"  # --shift-to last: the series ends in the last complete hour


class ImportError_(ValueError):
    """An input that cannot be imported, naming the file and the column at fault."""


@dataclass
class Row:
    """One input row: its time (None when the timestamp does not parse) and its record."""

    time: datetime | None
    record: dict


@dataclass
class Imported:
    """The rows of every input file, in file order, and what they were read from."""

    rows: list[Row] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def input_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in SUFFIXES)
        if not files:
            raise ImportError_(f"{path}: no .csv or .parquet files in this folder")
        return files
    if not path.exists():
        raise ImportError_(f"{path}: no such file or folder")
    if path.suffix.lower() not in SUFFIXES:
        raise ImportError_(f"{path}: not a .csv or .parquet file")
    return [path]


def read_frame(path: Path) -> pd.DataFrame:
    """The file as text cells (CSV) or typed cells (Parquet); nothing is converted or dropped."""
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False, sep=csv_separator(path))
    return pd.read_parquet(path)


def csv_separator(path: Path) -> str:
    """`,` or `;` (as many European exports use), whichever splits the header line into more columns."""
    with open(path, encoding="utf-8", errors="replace") as f:
        header = f.readline()
    return ";" if header.count(";") > header.count(",") else ","


def parse_time(cell) -> datetime | None:
    """A UTC time from an ISO-like text or a timestamp cell; naive times are UTC. None if it does not parse."""
    if cell is None or (isinstance(cell, str) and not cell.strip()):
        return None
    try:
        t = pd.Timestamp(cell.strip() if isinstance(cell, str) else cell)
    except (ValueError, TypeError):
        return None
    if pd.isna(t):
        return None
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return t.to_pydatetime()


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _text_value(text: str, whole: bool = False):
    """A cell's text as a finite number, or as the text itself (bronze quarantines it with its
    reason); blank text is absent. For a `long` channel a whole number stays exact (an integer)."""
    text = text.strip()
    if not text:
        return None
    if whole:
        try:
            return int(text)
        except ValueError:
            pass
    try:
        value = float(text)
    except ValueError:
        return text
    return value if math.isfinite(value) else text


def channel_value(cell, whole: bool = False):
    """A number as a JSON number; anything else as its text, for bronze to judge; an empty cell is
    absent. `whole`: the channel is `long`, so an integer is kept exact rather than made a double."""
    if type(cell) is str:  # a CSV cell, the common case
        return _text_value(cell, whole)
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return None
    if whole and isinstance(cell, int | np.integer) and not isinstance(cell, bool):
        return int(cell)
    if isinstance(cell, int | float) and not isinstance(cell, bool):
        value = float(cell)
        return value if math.isfinite(value) else str(cell)  # JSON has no infinity: bronze judges the text
    return _text_value(str(cell), whole)


def file_rows(
    path: Path,
    catalogue: Catalogue,
    timestamp_column: str | None = None,
    device_column: str | None = None,
    device: str | None = None,
    ignore: tuple[str, ...] = (),
) -> list[Row]:
    """One file's rows as records; raises naming the file and column when its shape is wrong."""
    frame = read_frame(path)
    fields = catalogue.record
    ts_col = timestamp_column or fields.timestamp
    if ts_col not in frame.columns:
        raise ImportError_(f"{path}: no timestamp column {ts_col!r}; columns are {', '.join(map(str, frame.columns))}")
    if device_column and device_column not in frame.columns:
        raise ImportError_(f"{path}: no device column {device_column!r}")
    # A channel's column is its source key (what the source calls it) or, failing that, its name.
    columns = {c.key: c.key if c.key in frame.columns else c.name for c in catalogue.channels}
    known = {ts_col, device_column, fields.status, *catalogue.names, *columns} - {None}
    unknown = [str(c) for c in frame.columns if c not in known and c not in ignore]
    if unknown:
        raise ImportError_(
            f"{path}: column(s) {', '.join(unknown)} are not channels of the catalogue {catalogue.path} "
            f"(its channels: {', '.join(catalogue.names)}); leave them out with --ignore-columns {','.join(unknown)}"
        )
    if frame.empty:
        raise ImportError_(f"{path}: no rows")
    whole = {c.key for c in catalogue.channels if c.type == "long"}
    channels = [(key, column, key in whole) for key, column in columns.items() if column in frame.columns]
    # A fleet export repeats each timestamp once per device: parse each distinct text once.
    times: dict[str, tuple[datetime | None, str | None]] = {}
    rows = []
    for cells in frame.to_dict("records"):
        raw_ts = cells[ts_col]
        placed = times.get(raw_ts) if isinstance(raw_ts, str) else None
        if placed is None:
            t = parse_time(raw_ts)
            placed = (t, iso(t) if t is not None else (raw_ts if isinstance(raw_ts, str) else None))
            if isinstance(raw_ts, str):
                times[raw_ts] = placed
        t = placed[0]
        record = {
            fields.device_id: str(cells[device_column]) if device_column else (device or path.stem),
            fields.timestamp: placed[1],
        }
        for key, column, is_whole in channels:
            value = channel_value(cells[column], is_whole)
            if value is not None:
                record[key] = value
        status = cells.get(fields.status)
        record[fields.status] = str(status) if status not in (None, "") else "normal"
        rows.append(Row(t, record))
    return rows


def read_history(
    path: Path,
    catalogue: Catalogue | None = None,
    timestamp_column: str | None = None,
    device_column: str | None = None,
    device: str | None = None,
    ignore: tuple[str, ...] = (),
) -> Imported:
    catalogue = catalogue or active()
    out = Imported()
    for f in input_files(Path(path)):
        out.rows.extend(file_rows(f, catalogue, timestamp_column, device_column, device, ignore))
        out.files.append(f)
    return out


def time_map(
    times: list[datetime], scale: float = 1.0, shift: timedelta | None = None, shift_to: datetime | None = None
):
    """The replay time of each time of a series whose readings fall at `times`: compressed `scale`
    times around the series' first hour, then shifted by `shift`, or so that the last reading falls
    in the hour of `shift_to`."""
    origin = min(times).replace(minute=0, second=0, microsecond=0)
    compressed = lambda t: origin + (t - origin) / scale if scale != 1.0 else t  # noqa: E731
    if shift_to is not None:
        last = compressed(max(times))
        shift = shift_to.replace(minute=0, second=0, microsecond=0) - last.replace(minute=0, second=0, microsecond=0)
    return lambda t: compressed(t) + (shift or timedelta(0))


def retime(
    rows: list[Row],
    timestamp_field: str,
    scale: float = 1.0,
    shift: timedelta | None = None,
    shift_to: datetime | None = None,
) -> None:
    """Move the rows' times as `time_map` says, and rewrite the records' timestamps (ISO-8601 UTC)."""
    times = [r.time for r in rows if r.time is not None]
    if not times or (scale == 1.0 and not shift and shift_to is None):
        return  # the records already hold their times in ISO-8601 UTC
    moved = time_map(times, scale, shift, shift_to)
    for r in rows:
        if r.time is not None:
            r.time = moved(r.time)
            r.record[timestamp_field] = iso(r.time)


def by_hour(rows: list[Row]) -> dict[datetime, list[dict]]:
    """Records by hour, every hour from the first to the last (an empty hour is an empty batch).
    A row whose time does not parse goes to the hour of the row before it (the first hour if none)."""
    placed = [r.time for r in rows if r.time is not None]
    if not placed:
        raise ImportError_("no row has a timestamp that parses: nothing places the records in hours")
    hour_of = lambda t: t.replace(minute=0, second=0, microsecond=0)  # noqa: E731
    first, last = hour_of(min(placed)), hour_of(max(placed))
    out: dict[datetime, list[dict]] = {first + HOUR * i: [] for i in range(int((last - first) / HOUR) + 1)}
    current = first
    for r in rows:
        current = hour_of(r.time) if r.time is not None else current
        out[current].append(r.record)
    return out


def store_batches(batches: dict[datetime, list[dict]], raw_io, device_field: str, progress=None) -> int:
    """Each hour's records as one raw batch through the raw IO manager (storing again is a no-op)."""
    from iot_assets.resources.io_managers import RawBatch

    stored = 0
    for done, (hour, records) in enumerate(sorted(batches.items()), 1):
        payloads = [json.dumps(r).encode() for r in records]
        keys = [str(r.get(device_field, "")) for r in records]
        raw_io.store(RawBatch(hour=hour, source="import", payloads=payloads, partition_keys=keys))
        stored += len(payloads)
        if progress:
            progress.update(done=done, records=stored, force=done == len(batches))
    return stored


def plan_lines(batches: dict[datetime, list[dict]], rows: list[Row]) -> list[str]:
    times = [r.time for r in rows if r.time is not None]
    lines = [f"{h:%Y-%m-%d-%H:00}  {len(rs)}" for h, rs in sorted(batches.items())]
    lines.append(
        f"{len(rows)} records in {len(batches)} hours; first {min(times):%Y-%m-%dT%H:%M:%SZ}, "
        f"last {max(times):%Y-%m-%dT%H:%M:%SZ}"
    )
    return lines


def check_partitions(batches: dict[datetime, list[dict]]) -> None:
    from iot_assets.lib.partitions import START, hour_key, parse_hour_key

    first = min(batches)
    if first < parse_hour_key(START).replace(tzinfo=first.tzinfo):
        raise ImportError_(
            f"the import starts at {hour_key(first)}, before the first partition {START}: "
            "set IOT_PARTITIONS_START earlier, or shift the series (--time-shift / --shift-to)"
        )


def backfill(first: datetime, last: datetime, resources: dict | None = None, selection=None, instance=None):
    """One run over the imported hours, reading the stored raw batches (raw is not re-materialised)."""
    from dagster import AssetSelection

    from iot_assets.automation.jobs import HOURLY_PIPELINE
    from iot_assets.tools.demo import materialize_hours

    no_raw = HOURLY_PIPELINE - AssetSelection.assets("raw_sensor_batches")
    # The registry is rebuilt first, so silver knows the devices just registered.
    return materialize_hours(
        first, last, instance=instance, resources=resources, selection=selection or no_raw, include_registry=True
    )


def register_devices(aws, bucket: str, devices: list[str], catalogue: Catalogue | None = None) -> list[str]:
    """Add the devices the registry's reference file (`s3://<bucket>/reference/devices.jsonl`) does
    not list yet, each with the catalogue's registry defaults, and return them; the entries already
    there are kept as they are. Silver rejects a reading of an unregistered device
    (`unknown_device`), so an import registers its devices."""
    from botocore.exceptions import ClientError

    from iot_assets.assets.registry import REFERENCE_KEY

    catalogue = catalogue or active()
    try:
        text = aws.s3.get_object(Bucket=bucket, Key=REFERENCE_KEY)["Body"].read().decode()
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
            raise
        text = ""
    known = {json.loads(line)["device_id"] for line in text.splitlines() if line.strip()}
    added = [d for d in dict.fromkeys(devices) if d not in known]
    if added:
        lines = [json.dumps(catalogue.device_entry(d)) for d in added]
        body = (text if not text or text.endswith("\n") else text + "\n") + "\n".join(lines) + "\n"
        aws.s3.put_object(Bucket=bucket, Key=REFERENCE_KEY, Body=body.encode())
    return added


def default_raw_io():
    from iot_assets import settings
    from iot_assets.resources.config import resolved
    from iot_assets.resources.io_managers import S3KinesisRawIOManager

    return S3KinesisRawIOManager(
        aws=resolved("aws"), bucket=resolved("lake").bucket, stream=settings.get("IOT_KINESIS_STREAM")
    )


def last_complete_hour() -> datetime:
    from iot_assets.lib.partitions import last_complete_hours

    return last_complete_hours(1)[0].replace(tzinfo=UTC)


def run_import(
    path: Path,
    device_column: str | None = None,
    device: str | None = None,
    timestamp_column: str | None = None,
    scale: float = 1.0,
    shift: timedelta | None = None,
    shift_to: datetime | None = None,
    dry_run: bool = False,
    backfill_after: bool = True,
    register: bool = True,
    raw_io=None,
    resources: dict | None = None,
    selection=None,
    instance=None,
    ignore: tuple[str, ...] = (),
    out=print,
):
    """Read, retime, and (unless a dry run) store the raw batches and backfill their hours.
    Returns the records by hour, and the backfill's result when there was one."""
    import time

    from iot_assets.tools.progress import Progress

    if not scale > 0:
        raise ImportError_(f"--time-scale must be a positive factor; got {scale}")
    began = time.monotonic()
    catalogue = active()
    imported = read_history(path, catalogue, timestamp_column, device_column, device, ignore)
    Progress(f"import read {len(imported.files)} file(s)", unit=None).update(records=len(imported.rows), force=True)
    retime(imported.rows, catalogue.record.timestamp, scale, shift, shift_to)
    batches = by_hour(imported.rows)
    check_partitions(batches)
    if dry_run:
        for line in plan_lines(batches, imported.rows):
            out(line)
        return batches, None
    stored = store_batches(
        batches,
        raw_io or default_raw_io(),
        catalogue.record.device_id,
        Progress("import store raw batches", total=len(batches), unit="raw batches"),
    )
    out(f"stored {stored} records as {len(batches)} hourly raw batches ({time.monotonic() - began:.0f} s)")
    if register:
        from iot_assets.resources.config import resolved

        # Resources handed in may hold EnvVars (resolved only inside a run): the lake's bucket is
        # taken from them when it is a plain value, the AWS client from the settings.
        aws, lake = resolved("aws"), (resources or {}).get("lake")
        bucket = lake.bucket if lake is not None and isinstance(lake.bucket, str) else resolved("lake").bucket
        devices = [r.record.get(catalogue.record.device_id) for r in imported.rows]
        added = register_devices(aws, bucket, [d for d in devices if isinstance(d, str) and d], catalogue)
        out(f"registered {len(added)} new devices in s3://{bucket}/reference/devices.jsonl")
    if not backfill_after:
        return batches, None
    result = backfill(min(batches), max(batches), resources, selection, instance)
    out(f"backfill {'succeeded' if result.success else 'FAILED'} ({time.monotonic() - began:.0f} s)")
    return batches, result
