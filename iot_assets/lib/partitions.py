"""Partitions, and the one place that spells partition keys, hour bounds and S3 layouts."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from dagster import (
    DailyPartitionsDefinition,
    HourlyPartitionsDefinition,
    TimeWindow,
)

from iot_assets import settings

HOUR = timedelta(hours=1)
START = settings.get("IOT_PARTITIONS_START")

hourly_partitions = HourlyPartitionsDefinition(start_date=START, timezone="UTC")
daily_partitions = DailyPartitionsDefinition(start_date=START[:10], timezone="UTC")


def hour_key(hour: datetime) -> str:
    """Dagster partition key of the hour starting at `hour` (UTC)."""
    return hour.astimezone(UTC).strftime("%Y-%m-%d-%H:%M")


def parse_hour_key(key: str) -> datetime:
    return datetime.strptime(key, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC)


def hours_in(window: TimeWindow) -> list[datetime]:
    """Every hour start in a time window, in order."""
    start = window.start.astimezone(UTC)
    end = window.end.astimezone(UTC)
    out = []
    while start < end:
        out.append(start)
        start += HOUR
    return out


def raw_key(prefix: str, hour: datetime, name: str = "batch.jsonl.gz") -> str:
    """S3 key of an hour's object under `prefix` (the raw batch by default). Built only from a
    validated prefix, a datetime and a fixed file name."""
    h = hour.astimezone(UTC)
    return f"{settings.validate_prefix(prefix)}/dt={h:%Y-%m-%d}/hour={h:%H}/{name}"


def utc_now() -> datetime:
    """The clock that decides when an hour is complete (sensors, schedule, raw asset); tests move it."""
    return datetime.now(UTC)


def hour_of(moment: datetime) -> datetime:
    """The start of the UTC hour holding `moment`."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def ready_at(hour: datetime, lateness: timedelta) -> datetime:
    """When an hour's partition is complete: its end plus the allowed lateness."""
    return hour + HOUR + lateness


def assigned_hour(event_hour: datetime | None, arrival: datetime, home_hour: datetime, lateness: timedelta) -> datetime:
    """The raw partition of a record: one rule for every source.

    A record arrives at `arrival` into its source's hour (`home_hour`: the arrival hour of a
    Kinesis record, the hour a landed object's key names). It belongs to its own event hour when
    that hour is earlier and it arrived before the event hour ended plus `lateness`; otherwise to
    its home hour, where bronze quarantines it if its event time lies elsewhere.
    """
    if event_hour is not None and event_hour < home_hour and arrival < ready_at(event_hour, lateness):
        return event_hour
    return home_hour


def complete_hours(keys: Iterable[str], now: datetime, lateness: timedelta) -> tuple[list[str], list[str]]:
    """Split hour partition keys into (complete at `now`, still open), each sorted."""
    keys = sorted(set(keys))
    ready = [k for k in keys if now >= ready_at(parse_hour_key(k), lateness)]
    return ready, [k for k in keys if k not in ready]


def last_complete_hours(n: int, now: datetime | None = None) -> list[datetime]:
    now = (now or utc_now()).astimezone(UTC)
    current = now.replace(minute=0, second=0, microsecond=0)
    return [current - HOUR * i for i in range(n, 0, -1)]


def spark_ts(moment: datetime) -> str:
    """A UTC datetime as a Spark SQL timestamp literal (the session time zone is UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
