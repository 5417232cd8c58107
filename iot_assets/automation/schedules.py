"""The hourly schedule: the fallback that runs the previous hour when no sensor has."""

from dagster import (
    DagsterRunStatus,
    DefaultScheduleStatus,
    RunRequest,
    RunsFilter,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from iot_assets import settings
from iot_assets.assets.gold import HOURLY_STATS
from iot_assets.automation.jobs import hour_end_job, hourly_pipeline_job
from iot_assets.lib.partitions import HOUR, hour_key, hour_of, hourly_partitions

MINUTE = int(settings.get("IOT_SCHEDULE_MINUTE"))
LAST_ASSET = HOURLY_STATS.key
ACTIVE = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]


@schedule(
    job=hourly_pipeline_job,
    cron_schedule=hourly_partitions.get_cron_schedule(minute_of_hour=MINUTE),
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description=f"At minute {MINUTE}, runs hourly_pipeline_job for the previous hour unless a sensor "
    "already has (the hour is in gold, or a run for it is queued or running).",
)
def hourly_pipeline_schedule(context: ScheduleEvaluationContext):
    key = hour_key(hour_of(context.scheduled_execution_time) - HOUR)
    if key in context.instance.get_materialized_partitions(LAST_ASSET):
        return SkipReason(f"{key} is already in {LAST_ASSET.to_user_string()}")
    # A sensor's run for the hour is an hour_end_job run; one started by hand may be either.
    active = [
        run
        for job in (hour_end_job, hourly_pipeline_job)
        for run in context.instance.get_runs(
            RunsFilter(job_name=job.name, tags={"dagster/partition": key}, statuses=ACTIVE), limit=1
        )
    ]
    if active:
        return SkipReason(f"run {active[0].run_id} for {key} is {active[0].status.value.lower()}")
    return RunRequest(run_key=f"schedule:{key}", partition_key=key, tags={"iot/trigger": "schedule"})
