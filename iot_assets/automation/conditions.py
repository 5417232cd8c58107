"""How gold, the models and the anomaly log follow their upstream, with no one starting a run.

`eager()` requests the latest partition when an upstream partition updates (or when the
partition first appears), once no upstream is missing or running. Two assets read a trailing
window of 24 upstream hours: there a missing hour must not hold the asset back (a new deployment
has no history yet), so missing partitions of that trailing dependency are ignored as long as one
of them is there, and the asset records what it lacked (`insufficient_data`,
`devices_without_zscore_baseline`).

A new hour's models are trained by the run that completes the hour (`hour_end_job`, which the
arrival sensors request), not by a run of their own the moment the hour ends: that run took the
lake's single writer slot for minutes just as the hour's own run was ready to start. The models
follow updates of their training window as before; a new hour's models that no run has trained by
the schedule's minute (`IOT_SCHEDULE_MINUTE`: the hour came through the schedule, a historian
range or a run by hand) are trained then, and the anomaly log follows them.
"""

from dagster import (
    AssetKey,
    AssetSelection,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
)

from iot_assets import settings

FOLLOW_UPSTREAM = AutomationCondition.eager()

# eager() only reacts to a partition that *becomes* missing, never to one missing from the start;
# the registry must exist before silver can run, so it is built whenever it is missing.
BUILD_WHEN_MISSING = (
    AutomationCondition.missing() & ~AutomationCondition.in_progress() & ~AutomationCondition.execution_failed()
).with_label("build when missing")


def follow_upstream_despite_gaps_in(*trailing: AssetKey, new_hour_waits: bool = False) -> AutomationCondition:
    """eager(), except that missing partitions of the `trailing` dependencies do not hold it back,
    as long as at least one of them is there (with none, there is no table to read yet).

    With `new_hour_waits`, a partition that has just appeared is not requested straight away, but
    at the schedule's minute if it is still missing then (updates upstream still request it)."""
    window = AssetSelection.assets(*trailing)
    names = ", ".join(k.to_user_string() for k in trailing)
    some_history = AutomationCondition.any_deps_match(~AutomationCondition.missing()).allow(window)
    condition = AutomationCondition.eager().replace(
        "any_deps_missing",
        AutomationCondition.any_deps_missing().ignore(window),
    )
    label = f"eager, despite gaps in {names}"
    if new_hour_waits:
        minute = int(settings.get("IOT_SCHEDULE_MINUTE"))
        still_missing = (
            AutomationCondition.missing() & AutomationCondition.cron_tick_passed(f"{minute} * * * *", "UTC")
        ).with_label(f"still missing at minute {minute}")
        condition = condition.replace("newly_missing", still_missing)
        label += f"; a new hour waits for its run, or minute {minute}"
    return (condition & some_history.with_label(f"any of {names} present")).with_label(label)


automation_condition_sensor = AutomationConditionSensorDefinition(
    "automation_condition_sensor",
    target=AssetSelection.all(),
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=int(settings.get("IOT_AUTOMATION_INTERVAL_SECONDS")),
    description="Evaluates the assets' automation conditions: gold, models and the anomaly log follow silver.",
)
