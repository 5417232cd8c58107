"""The historian arrival sensor: one run for the hours the SQL historian has completed since the last.

A historian holds its history already, so there is nothing to drain: the sensor asks PostgreSQL
(without Spark) for the oldest and newest `t_stamp`. An hour is complete once the newest sample
is past the hour's end plus the allowed lateness. The cursor is the last hour requested. On its
first tick the sensor requests everything from the historian's oldest hour, so months of history
become one backfill run (the assets' single-run backfill policy); afterwards each tick requests
the hours completed since, again as one run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from iot_assets import settings
from iot_assets.automation.jobs import hourly_pipeline_job
from iot_assets.automation.kinesis_arrivals import REGISTRY_WAIT, registry_missing
from iot_assets.lib.partitions import HOUR, hour_key, hour_of, hourly_partitions, parse_hour_key
from iot_assets.resources.historian import HistorianSource
from iot_assets.resources.raw_source import RawSource

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def hours_to_request(
    last_done: datetime | None, oldest: datetime, newest: datetime, lateness: timedelta, first_partition: datetime
) -> tuple[datetime, datetime] | None:
    """(first, last) hour to run: after the last one done (or from the oldest sample's hour), up
    to the last hour whose end plus the lateness the newest sample has passed; None if none."""
    start = max(last_done + HOUR if last_done else hour_of(oldest), first_partition)
    end = hour_of(newest - lateness) - HOUR  # newest >= end + 1h + lateness
    return (start, end) if end >= start else None


@sensor(
    job=hourly_pipeline_job,
    minimum_interval_seconds=int(settings.get("IOT_HISTORIAN_SENSOR_INTERVAL_SECONDS")),
    default_status=(
        DefaultSensorStatus.RUNNING if settings.get("IOT_RAW_SOURCE") == "historian" else DefaultSensorStatus.STOPPED
    ),
    description="Requests hourly_pipeline_job, as one run, for the hours the SQL historian has completed "
    "(its newest t_stamp past the hour's end plus the allowed lateness) since the last request.",
)
def historian_arrival_sensor(context: SensorEvaluationContext, raw_source: RawSource, historian: HistorianSource):
    if raw_source.source != "historian":
        return SkipReason(
            f"the raw source is {raw_source.source!r}; set IOT_RAW_SOURCE=historian to read the historian"
        )
    if registry_missing(context.instance):
        return SkipReason(REGISTRY_WAIT)
    try:
        stamps = historian.stamp_range()
    except Exception as exc:  # noqa: BLE001 - unreachable or refusing: the cursor stays, the next tick retries
        return SkipReason(
            f"historian {historian.jdbc_url} did not answer ({type(exc).__name__}); cursor left where it was"
        )
    if stamps is None:
        return SkipReason(f"the historian holds no rows in {historian.table_prefix}_YYYY_MM tables yet")
    last_done = parse_hour_key(context.cursor) if context.cursor else None
    first_partition = hourly_partitions.start.astimezone(UTC)
    todo = hours_to_request(last_done, *stamps, raw_source.lateness, first_partition)
    if todo is None:
        return SkipReason(
            f"no hour complete since {context.cursor or 'the start'}; newest sample {stamps[1]:%Y-%m-%d %H:%M:%S}"
        )
    first, last = (hour_key(h) for h in todo)
    request = RunRequest(
        run_key=f"historian:{first}..{last}", tags={RANGE_START: first, RANGE_END: last, "iot/trigger": "historian"}
    )
    return SensorResult(run_requests=[request], cursor=last)
