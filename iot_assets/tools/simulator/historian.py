"""The simulated fleet as a SQL historian holds it (`iot-assets historian seed`): long rows in
monthly tables, a tag table, and a share of samples with bad quality codes.

Each reading of a device becomes one row per field, stamped within a few milliseconds of each
other as one scan of a PLC is. The fleet is simulated without malformed records (a historian
stores typed samples, not text); its anomalies are kept.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np

from iot_assets.resources.historian import (
    FIELDS,
    GOOD_QUALITY,
    NUMERIC_FIELDS,
    epoch_ms,
    month_table,
    validate_identifier,
)
from iot_assets.tools.simulator.fleet import FleetConfig, device_registry, fleet_catalogue, simulate_hour

# OPC quality codes a historian records besides Good (192): Bad, Bad_NotConnected, Bad_CommFailure, Uncertain.
BAD_QUALITY_CODES = (0, 8, 24, 64)
LINES = 3


@dataclass(frozen=True)
class Tag:
    id: int
    tagpath: str


def fleet_tags(fleet: FleetConfig) -> list[Tag]:
    """One tag per device and field, `site/line/device/field`, numbered from 1."""
    out = []
    for i, device in enumerate(device_registry(fleet)):
        for field in FIELDS:
            out.append(Tag(len(out) + 1, f"{device.site}/line-{i % LINES + 1}/{device.device_id}/{field}"))
    return out


def create_schema(conn, prefix: str, tag_table: str, tables: Iterable[str]) -> None:
    """The tag table and the monthly tables (Ignition's columns), if missing."""
    with conn.cursor() as cur:
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {validate_identifier(tag_table)} "
            "(id integer PRIMARY KEY, tagpath varchar(255) NOT NULL, retired bigint)"
        )
        for table in tables:
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {validate_identifier(table)} (tagid integer NOT NULL, "
                "intvalue bigint, floatvalue double precision, stringvalue varchar(255), "
                "datevalue timestamp, dataintegrity integer, t_stamp bigint NOT NULL, "
                "PRIMARY KEY (tagid, t_stamp))"
            )
            cur.execute(f"CREATE INDEX IF NOT EXISTS {table}_t_stamp ON {table} (t_stamp)")
    conn.commit()


def hour_rows(
    fleet: FleetConfig, hour: datetime, tag_ids: dict[tuple[str, str], int], bad_quality_rate: float
) -> list[tuple]:
    """(tagid, floatvalue, stringvalue, dataintegrity, t_stamp) of the hour's readings."""
    cat = fleet_catalogue()
    sim = simulate_hour(hour, replace(fleet, malformed_rate=0.0), cat)
    keys = {c.name: c.key for c in cat.channels}  # a tag's field is a channel name; a record has its key
    rng = np.random.default_rng([fleet.seed, epoch_ms(hour) // 3_600_000, 5])
    rows = []
    for text in sim.records:
        record = json.loads(text)
        stamp = epoch_ms(datetime.fromisoformat(record[cat.record.timestamp].replace("Z", "+00:00")))
        jitter = rng.integers(0, 4, len(FIELDS))  # a scan's samples lie a few ms apart
        bad = rng.random(len(FIELDS)) < bad_quality_rate
        codes = rng.choice(BAD_QUALITY_CODES, len(FIELDS))
        for k, field in enumerate(FIELDS):
            number = float(record[keys[field]]) if field in NUMERIC_FIELDS else None
            text_value = None if field in NUMERIC_FIELDS else record[field]
            rows.append(
                (
                    tag_ids[(record[cat.record.device_id], field)],
                    number,
                    text_value,
                    int(codes[k]) if bad[k] else GOOD_QUALITY,
                    stamp + int(jitter[k]),
                )
            )
    return rows


_NULL = "\\N"  # COPY's text-format null


def _copy(cur, table: str, rows: list[tuple]) -> None:
    buf = io.StringIO()
    for tagid, number, text, quality, stamp in rows:
        number = _NULL if number is None else repr(number)
        buf.write(f"{tagid}\t{number}\t{_NULL if text is None else text}\t{quality}\t{stamp}\n")
    buf.seek(0)
    cur.copy_expert(
        f"COPY {validate_identifier(table)} (tagid, floatvalue, stringvalue, dataintegrity, t_stamp) FROM STDIN", buf
    )


def seed(
    conn,
    fleet: FleetConfig,
    hours: list[datetime],
    prefix: str = "sqlt_data_1",
    tag_table: str = "sqlth_te",
    bad_quality_rate: float = 0.002,
) -> dict[str, int]:
    """Load the fleet's readings of `hours` into the historian; returns rows written per table.

    Idempotent: the hours' rows are replaced, and the tag table is kept as it is when present.
    """
    tags = fleet_tags(fleet)
    tables = sorted({month_table(prefix, h) for h in hours})
    create_schema(conn, prefix, tag_table, tables)
    written: dict[str, int] = {}
    with conn.cursor() as cur:
        cur.execute(f"SELECT id, tagpath FROM {tag_table}")
        known = {path: id_ for id_, path in cur.fetchall()}
        new = [t for t in tags if t.tagpath not in known]
        next_id = max(known.values(), default=0) + 1
        for offset, tag in enumerate(new):
            cur.execute(f"INSERT INTO {tag_table} (id, tagpath) VALUES (%s, %s)", (next_id + offset, tag.tagpath))
            known[tag.tagpath] = next_id + offset
        tag_ids = {(path.split("/")[2], path.split("/")[3]): id_ for path, id_ in known.items() if path.count("/") == 3}
        for hour in hours:
            table = month_table(prefix, hour)
            cur.execute(
                f"DELETE FROM {table} WHERE t_stamp >= %s AND t_stamp < %s",
                (epoch_ms(hour), epoch_ms(hour) + 3_600_000),
            )
            rows = hour_rows(fleet, hour, tag_ids, bad_quality_rate)
            _copy(cur, table, rows)
            written[table] = written.get(table, 0) + len(rows)
    conn.commit()
    return written
