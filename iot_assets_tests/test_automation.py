"""Automation conditions: one new raw partition flows to the anomaly log, a new hour's models wait for
the hour's own run, the daily summary waits for its 24 hours, and the hourly schedule is only a
fallback. Materialisations are reported, not computed."""

from datetime import UTC, datetime, timedelta

import pytest
from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    build_schedule_context,
    evaluate_automation_conditions,
    instance_for_test,
)

from iot_assets.automation.schedules import MINUTE, hourly_pipeline_schedule
from iot_assets.definitions import defs
from iot_assets.lib.partitions import HOUR, hour_key

H = datetime(2026, 11, 21, 10, tzinfo=UTC)
SENSOR_RUN = (
    "raw_sensor_batches",
    "bronze_sensor_readings",
    "bronze_quarantine",
    "silver_sensor_readings",
    "silver_rejected_readings",
    "device_hourly_stats",
    "sensor_aggregates_10min",
)


def report(instance, asset, *hours):
    for h in hours or [None]:
        instance.report_runless_asset_event(AssetMaterialization(asset, partition=hour_key(h) if h else None))


def requested(result):
    return {
        k.to_user_string(): sorted(p for p in result.get_requested_partitions(k))
        for k in (
            AssetKey(n)
            for n in (
                "device_hourly_stats",
                "sensor_aggregates_10min",
                "daily_device_summary",
                "device_anomaly_models",
                "anomaly_log",
                "device_registry",
            )
        )
        if result.get_num_requested(k)
    }


@pytest.fixture()
def instance():
    with DagsterInstance.ephemeral() as inst:
        report(inst, "device_registry")
        yield inst


def test_one_new_raw_partition_flows_to_the_anomaly_log(instance):
    history = [H - HOUR * i for i in range(24, 0, -1)]
    for asset in ("silver_sensor_readings", "device_hourly_stats"):
        report(instance, asset, *history)
    report(instance, "device_anomaly_models", H)
    at = H + HOUR + timedelta(minutes=12)
    first = evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=at)
    assert "anomaly_log" not in requested(first)  # silver H is not there yet

    for asset in SENSOR_RUN:  # the run the Kinesis sensor requested for H
        report(instance, asset, H)
    second = evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=at + timedelta(seconds=30), cursor=first.cursor
    )
    assert requested(second) == {"anomaly_log": [hour_key(H)]}
    third = evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=at + timedelta(seconds=60), cursor=second.cursor
    )
    assert requested(third) == {}


@pytest.mark.parametrize("silver_hours,expected", [(1, [hour_key(H + HOUR)]), (0, None)], ids=["one-hour", "none"])
def test_models_do_not_wait_for_history_a_new_deployment_lacks(instance, silver_hours, expected):
    at = H + HOUR + timedelta(minutes=1)
    first = evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=at)
    if silver_hours:
        report(instance, "silver_sensor_readings", H)  # the only hour there is
        report(instance, "device_hourly_stats", H)
    # No run trained hour H + 1's models by the schedule's minute: the automation does.
    nxt = evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=at + HOUR + timedelta(minutes=MINUTE), cursor=first.cursor
    )
    assert requested(nxt).get("device_anomaly_models") == expected


@pytest.mark.parametrize("hour_end_run", [True, False], ids=["hour-end-run", "no-run"])
def test_a_new_hours_models_wait_for_the_hours_own_run(instance, hour_end_run):
    """At an hour's end its models are not trained by a run of their own, which would hold the lake's
    writer slot while the hour's run waits: the hour's run trains them. If none has by the schedule's
    minute, the automation trains them, and the anomaly log follows."""
    history = [H - HOUR * i for i in range(24, 0, -1)]
    for asset in ("silver_sensor_readings", "device_hourly_stats"):
        report(instance, asset, *history)
    report(instance, "device_anomaly_models", H - HOUR)
    report(instance, "anomaly_log", H - HOUR)
    before = evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=H + timedelta(minutes=59))
    ended = evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=H + HOUR + timedelta(seconds=30), cursor=before.cursor
    )
    assert requested(ended) == {}
    if hour_end_run:  # the run the Kinesis sensor requested for H (hour_end_job)
        for asset in (*SENSOR_RUN, "device_anomaly_models", "anomaly_log", "anomaly_incidents"):
            report(instance, asset, H)
    at_minute = evaluate_automation_conditions(
        defs=defs,
        instance=instance,
        evaluation_time=H + HOUR + timedelta(minutes=MINUTE, seconds=30),
        cursor=ended.cursor,
    )
    assert requested(at_minute) == ({} if hour_end_run else {"device_anomaly_models": [hour_key(H)]})


@pytest.mark.parametrize("missing_hour,expected", [(None, ["2026-11-21"]), (5, [])])
def test_daily_summary_waits_for_all_24_hours(instance, missing_hour, expected):
    day = datetime(2026, 11, 21, tzinfo=UTC)
    at = day + timedelta(days=1, minutes=12)
    report(instance, "silver_sensor_readings", *[day + HOUR * i for i in range(23) if i != missing_hour])
    first = evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=at)
    assert "daily_device_summary" not in requested(first)
    report(instance, "silver_sensor_readings", day + HOUR * 23)
    second = evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=at + timedelta(seconds=30), cursor=first.cursor
    )
    assert requested(second).get("daily_device_summary", []) == expected


def test_schedule_runs_the_previous_hour_only_when_no_sensor_has():
    with instance_for_test() as instance:
        _schedule_checks(instance)


def _schedule_checks(instance):
    tick = H + HOUR + timedelta(minutes=MINUTE)
    result = hourly_pipeline_schedule(build_schedule_context(instance=instance, scheduled_execution_time=tick))
    assert (result.partition_key, result.run_key) == (hour_key(H), f"schedule:{hour_key(H)}")
    report(instance, "device_hourly_stats", H)
    skipped = hourly_pipeline_schedule(build_schedule_context(instance=instance, scheduled_execution_time=tick))
    assert "already" in skipped.skip_message
