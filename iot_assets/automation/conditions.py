"""How gold, the models and the anomaly log follow their upstream, with no one starting a run.

`eager()` requests the latest partition when an upstream partition updates (or when the
partition first appears), once no upstream is missing or running. Two assets read a trailing
window of 24 upstream hours: there a missing hour must not hold the asset back (a new deployment
has no history yet), so missing partitions of that trailing dependency are ignored as long as one
of them is there, and the asset records what it lacked (`insufficient_data`,
`devices_without_zscore_baseline`).
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


def follow_upstream_despite_gaps_in(*trailing: AssetKey) -> AutomationCondition:
    """eager(), except that missing partitions of the `trailing` dependencies do not hold it back,
    as long as at least one of them is there (with none, there is no table to read yet)."""
    window = AssetSelection.assets(*trailing)
    names = ", ".join(k.to_user_string() for k in trailing)
    some_history = AutomationCondition.any_deps_match(~AutomationCondition.missing()).allow(window)
    return (
        AutomationCondition.eager().replace(
            "any_deps_missing",
            AutomationCondition.any_deps_missing().ignore(window),
        )
        & some_history.with_label(f"any of {names} present")
    ).with_label(f"eager, despite gaps in {names}")


automation_condition_sensor = AutomationConditionSensorDefinition(
    "automation_condition_sensor",
    target=AssetSelection.all(),
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=int(settings.get("IOT_AUTOMATION_INTERVAL_SECONDS")),
    description="Evaluates the assets' automation conditions: gold, models and the anomaly log follow silver.",
)
