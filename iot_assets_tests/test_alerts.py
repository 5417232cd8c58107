"""Alerts end to end: a failing check, a failed run and opened incidents, read back from the local
SNS topic through a subscribed SQS queue, CloudWatch metrics read back from the local endpoint, and
Slack posts received by an HTTP server on 127.0.0.1. The Dagster instance is a temporary SQLite one
(run-sharded, like `make dev`'s), so the sensors take the production read path.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from datetime import UTC, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    BackfillPolicy,
    DagsterInstance,
    Definitions,
    FreshnessPolicy,
    HourlyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
    build_sensor_context,
    job,
    materialize,
    op,
)

from iot_assets.alerts.sensors import (
    alert_sensors,
    anomaly_metrics_sensor,
    asset_check_alert_sensor,
    freshness_alert_sensor,
    incident_alert_sensor,
    run_failure_alert_sensor,
)
from iot_assets.alerts.sinks import AlertSinks
from iot_assets.resources.aws import AwsResource, make_client

hourly = HourlyPartitionsDefinition(start_date="2026-11-01-00:00")


@asset(partitions_def=hourly, group_name="test", kinds={"python"})
def toy_readings() -> MaterializeResult:
    """A stand-in asset; its check decides pass or fail from the partition."""
    return MaterializeResult()


@asset_check(asset=toy_readings, partitions_def=hourly)
def check_toy_readings_in_range(context) -> AssetCheckResult:
    """Fails on odd hours, with the hour as the failed-row count (so each failure is distinguishable)."""
    hour = int(context.partition_key[-5:-3])
    failed = hour if hour % 2 else 0
    meta = {"failed_rows": failed, "passed_rows": 100 - failed}
    if failed:
        meta["examples"] = MetadataValue.json([{"device_id": f"dev-{hour}", "temperature": 999.0}])
    return AssetCheckResult(passed=not failed, severity=AssetCheckSeverity.ERROR, metadata=meta)


@asset(partitions_def=hourly, group_name="test", kinds={"python"})
def slow_readings() -> MaterializeResult:
    """A stand-in asset whose check, for hour 01, waits until the test lets it finish."""
    return MaterializeResult()


CHECK_STARTED, CHECK_RELEASE = threading.Event(), threading.Event()


@asset_check(asset=slow_readings, partitions_def=hourly)
def check_slow_readings(context) -> AssetCheckResult:
    hour = int(context.partition_key[-5:-3])
    if hour == 1:
        CHECK_STARTED.set()
        assert CHECK_RELEASE.wait(60), "the test never released the check"
    return AssetCheckResult(passed=False, metadata={"failed_rows": hour, "passed_rows": 10})


CRITICAL = {"n": 3}


@asset(
    name="anomaly_log",
    partitions_def=hourly,
    backfill_policy=BackfillPolicy.single_run(),
    group_name="test",
    kinds={"python"},
)
def fake_anomaly_log(context) -> MaterializeResult:
    """The real anomaly_log's metadata contract, without Spark."""
    by_severity = {"low": 5, "medium": 2, "high": 1, "critical": CRITICAL["n"]}
    summary = {
        "by_method": {"threshold": 4, "zscore": 7, "kmeans": 0},
        "by_severity": by_severity,
        "top_devices": [
            {"device_id": "dev-007", "anomalies": 6, "max_severity": "critical", "methods": ["threshold", "zscore"]}
        ],
    }
    return MaterializeResult(
        metadata={
            "anomaly_summary": MetadataValue.json(summary),
            "anomalies_by_method": MetadataValue.json(summary["by_method"]),
            "anomalies_by_severity": MetadataValue.json(by_severity),
            "critical_anomalies": CRITICAL["n"],
        }
    )


OPENED = {"incidents": []}


@asset(
    name="anomaly_incidents",
    partitions_def=hourly,
    backfill_policy=BackfillPolicy.single_run(),
    group_name="test",
    kinds={"python"},
)
def fake_anomaly_incidents(context) -> MaterializeResult:
    """The real anomaly_incidents' metadata contract, without Spark."""
    return MaterializeResult(
        metadata={
            "incidents_opened": len(OPENED["incidents"]),
            "opened_incidents": MetadataValue.json(OPENED["incidents"]),
        }
    )


def incident(device, minute, severity="critical"):
    return {
        "incident_id": f"{device}@2026-11-02T00:{minute:02d}:00.000000",
        "device_id": device,
        "opened_at": f"2026-11-02T00:{minute:02d}:00",
        "peak_severity": severity,
        "methods": "threshold,zscore",
        "metrics": "temperature",
        "first_detected_by": "threshold",
        "readings": 4,
        "hour": "2026-11-02T00:00:00",
    }


@asset(
    group_name="test",
    kinds={"python"},
    check_specs=[AssetCheckSpec("check_gate", asset="gated_readings", blocking=True)],
)
def gated_readings():
    """A stand-in for silver: written, then its blocking check fails."""
    yield MaterializeResult()
    yield AssetCheckResult(check_name="check_gate", passed=False, metadata={"failed_rows": 4, "passed_rows": 6})


@asset(deps=[gated_readings], group_name="test", kinds={"python"})
def gated_summary() -> None:
    """A stand-in for gold; never runs after the failed gate."""


@op
def broken_step():
    raise RuntimeError("sensor feed went away")


@job
def flaky_job():
    broken_step()


@pytest.fixture()
def instance(tmp_path):
    inst = DagsterInstance.local_temp(str(tmp_path))
    yield inst
    inst.dispose()


@pytest.fixture()
def sinks(local_aws):
    """The settings' sinks (topic `iot-alerts`, created by local-aws) with a namespace of this test's own."""
    return AlertSinks(
        aws=AwsResource(endpoint_url=local_aws),
        sns_topic="iot-alerts",
        metrics_namespace=f"IotTest{uuid.uuid4().hex[:8]}",
        ui_url="http://dagster.test:3000",
    )


@pytest.fixture()
def alert_queue(local_aws):
    """An SQS queue subscribed to the alert topic; yields a function returning the alerts received."""
    sns, sqs = make_client("sns", local_aws, "us-east-1"), make_client("sqs", local_aws, "us-east-1")
    topic = sns.create_topic(Name="iot-alerts")["TopicArn"]
    url = sqs.create_queue(QueueName=f"alerts-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sub = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)["SubscriptionArn"]

    def received() -> list[dict]:
        out = []
        for _ in range(20):  # bounded: at most 200 messages
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
            if not got:
                break
            for m in got:
                out.append(json.loads(m["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return out

    yield received
    sns.unsubscribe(SubscriptionArn=sub)
    sqs.delete_queue(QueueUrl=url)


def tick(sensor_def, instance, defs, sinks, cursor):
    """One evaluation of a sensor as the daemon runs it; returns (cursor, skip message)."""
    with build_sensor_context(
        instance=instance, cursor=cursor, definitions=defs, resources={"alert_sinks": sinks}
    ) as context:
        data = sensor_def.evaluate_tick(context)
    return data.cursor, data.skip_message


@asset(freshness_policy=FreshnessPolicy.cron(deadline_cron="30 * * * *", lower_bound_delta=timedelta(hours=1)))
def fresh_readings() -> None:
    """An asset with a freshness policy."""


def toy_defs(sinks):
    return Definitions(
        assets=[
            toy_readings,
            slow_readings,
            fake_anomaly_log,
            fake_anomaly_incidents,
            gated_readings,
            gated_summary,
            fresh_readings,
        ],
        asset_checks=[check_toy_readings_in_range, check_slow_readings],
        jobs=[flaky_job],
        sensors=alert_sensors,
        resources={"alert_sinks": sinks},
    )


def metric_sum(sinks, name, dims):
    cw = sinks.aws.client("cloudwatch")
    from datetime import datetime, timedelta

    now = datetime.now(UTC)
    stats = cw.get_metric_statistics(
        Namespace=sinks.metrics_namespace,
        MetricName=name,
        Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(minutes=5),
        Period=3600,
        Statistics=["Sum", "SampleCount"],
    )
    points = stats["Datapoints"]
    return sum(p["Sum"] for p in points), sum(p["SampleCount"] for p in points)


def test_each_failed_check_is_alerted_exactly_once(instance, sinks, alert_queue):
    defs = toy_defs(sinks)
    cursor, _ = tick(asset_check_alert_sensor, instance, defs, sinks, None)

    run = materialize([toy_readings, check_toy_readings_in_range], instance=instance, partition_key="2026-11-02-03:00")
    cursor, message = tick(asset_check_alert_sensor, instance, defs, sinks, cursor)
    alerts = alert_queue()
    assert len(alerts) == 1, message
    text, attrs = alerts[0]["Message"], alerts[0]["MessageAttributes"]
    for part in (
        "toy_readings",
        "2026-11-02-03:00",
        "check_toy_readings_in_range",
        "ERROR",
        "Failed rows: 3",
        "Passed rows: 97",
        "3 of 100 rows failed",
        "dev-3",
        f"http://dagster.test:3000/runs/{run.run_id}",
    ):
        assert part in text, part
    assert alerts[0]["Subject"].startswith("[ERROR] Asset check failed: toy_readings")
    assert attrs["partition"]["Value"] == "2026-11-02-03:00" and attrs["run_id"]["Value"] == run.run_id

    cursor, _ = tick(asset_check_alert_sensor, instance, defs, sinks, cursor)
    assert alert_queue() == []

    materialize([toy_readings, check_toy_readings_in_range], instance=instance, partition_key="2026-11-02-04:00")
    materialize([toy_readings, check_toy_readings_in_range], instance=instance, partition_key="2026-11-02-05:00")
    cursor, _ = tick(asset_check_alert_sensor, instance, defs, sinks, cursor)
    cursor, _ = tick(asset_check_alert_sensor, instance, defs, sinks, cursor)
    again = alert_queue()
    assert [a["MessageAttributes"]["partition"]["Value"] for a in again] == ["2026-11-02-05:00"]
    assert "Failed rows: 5" in again[0]["Message"]


def test_a_check_still_running_is_not_skipped_by_later_ones(instance, sinks, alert_queue):
    """The early run's execution row is planned first but evaluated last; it must still be alerted."""
    defs = toy_defs(sinks)
    cursor, _ = tick(asset_check_alert_sensor, instance, defs, sinks, None)
    CHECK_STARTED.clear()
    CHECK_RELEASE.clear()
    slow = threading.Thread(
        target=materialize,
        args=([slow_readings, check_slow_readings],),
        kwargs={"instance": instance, "partition_key": "2026-11-02-01:00"},
    )
    slow.start()
    try:
        assert CHECK_STARTED.wait(60)
        materialize([slow_readings, check_slow_readings], instance=instance, partition_key="2026-11-02-03:00")
        cursor, _ = tick(asset_check_alert_sensor, instance, defs, sinks, cursor)
        assert [a["MessageAttributes"]["partition"]["Value"] for a in alert_queue()] == ["2026-11-02-03:00"]
    finally:
        CHECK_RELEASE.set()
        slow.join(60)
    cursor, _ = tick(asset_check_alert_sensor, instance, defs, sinks, cursor)
    tick(asset_check_alert_sensor, instance, defs, sinks, cursor)
    assert [a["MessageAttributes"]["partition"]["Value"] for a in alert_queue()] == ["2026-11-02-01:00"]


def test_passing_checks_send_metrics_but_no_alert(instance, sinks, alert_queue):
    defs = toy_defs(sinks)
    cursor, _ = tick(asset_check_alert_sensor, instance, defs, sinks, None)
    for hour in ("02", "04"):
        materialize(
            [toy_readings, check_toy_readings_in_range], instance=instance, partition_key=f"2026-11-02-{hour}:00"
        )
    materialize([toy_readings, check_toy_readings_in_range], instance=instance, partition_key="2026-11-02-07:00")
    tick(asset_check_alert_sensor, instance, defs, sinks, cursor)

    assert len(alert_queue()) == 1  # only hour 07 fails
    dims = {"Asset": "toy_readings", "Check": "check_toy_readings_in_range"}
    assert metric_sum(sinks, "PassedRows", dims) == (100 + 100 + 93, 3)
    assert metric_sum(sinks, "FailedRows", dims) == (7, 3)
    assert metric_sum(sinks, "CheckFailures", dims) == (1, 3)


class _Webhook(BaseHTTPRequestHandler):
    """Answers 500 to the first `fail_first` posts, then 200; keeps every body."""

    bodies: list
    fail_first = 0

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        failing = len(self.server.bodies) < self.server.fail_first
        self.server.bodies.append((failing, body))
        self.send_response(500 if failing else 200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture()
def webhook():
    server = HTTPServer(("127.0.0.1", 0), _Webhook)
    server.bodies, server.fail_first = [], 1
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_refused_sink_is_retried_without_repeating_the_others(instance, sinks, alert_queue, webhook, caplog):
    secret = f"T0/B0/{uuid.uuid4().hex}"
    url = f"http://127.0.0.1:{webhook.server_port}/services/{secret}"
    sinks = AlertSinks(
        aws=sinks.aws,
        sns_topic="iot-alerts",
        metrics_namespace=sinks.metrics_namespace,
        slack_webhook_url=url,
        ui_url=sinks.ui_url,
    )
    defs = toy_defs(sinks)
    caplog.set_level(logging.DEBUG)
    cursor, _ = tick(asset_check_alert_sensor, instance, defs, sinks, None)
    materialize([toy_readings, check_toy_readings_in_range], instance=instance, partition_key="2026-11-02-09:00")

    cursor, message = tick(asset_check_alert_sensor, instance, defs, sinks, cursor)
    assert "delivery refused" in message and "slack" in message
    assert len(alert_queue()) == 1 and [f for f, _ in webhook.bodies] == [True]
    assert metric_sum(sinks, "FailedRows", {"Asset": "toy_readings", "Check": "check_toy_readings_in_range"}) == (0, 0)

    cursor, message = tick(asset_check_alert_sensor, instance, defs, sinks, cursor)
    assert alert_queue() == []  # SNS already had it
    assert [f for f, _ in webhook.bodies] == [True, False]
    posted = webhook.bodies[-1][1]["text"]
    assert "check_toy_readings_in_range" in posted and "2026-11-02-09:00" in posted
    assert metric_sum(sinks, "FailedRows", {"Asset": "toy_readings", "Check": "check_toy_readings_in_range"}) == (9, 1)

    tick(asset_check_alert_sensor, instance, defs, sinks, cursor)
    assert len(webhook.bodies) == 2
    for where, text in [
        ("logs", caplog.text),
        ("tick", message + cursor),
        ("resource", repr(sinks)),
        ("slack text", json.dumps(webhook.bodies)),
    ]:
        assert secret not in text, where


def test_a_failed_run_is_alerted_once(instance, sinks, alert_queue):
    defs = toy_defs(sinks)
    cursor, _ = tick(run_failure_alert_sensor, instance, defs, sinks, None)
    result = defs.resolve_job_def("flaky_job").execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success

    cursor, _ = tick(run_failure_alert_sensor, instance, defs, sinks, cursor)
    tick(run_failure_alert_sensor, instance, defs, sinks, cursor)
    alerts = alert_queue()
    assert len(alerts) == 1
    text = alerts[0]["Message"]
    for part in (
        "Run failed: flaky_job",
        "broken_step",
        "sensor feed went away",
        f"http://dagster.test:3000/runs/{result.run_id}",
    ):
        assert part in text, part


def test_a_run_stopped_by_a_blocking_check_is_alerted_once_as_the_check(instance, sinks, alert_queue):
    defs = toy_defs(sinks)
    check_cursor, _ = tick(asset_check_alert_sensor, instance, defs, sinks, None)
    run_cursor, _ = tick(run_failure_alert_sensor, instance, defs, sinks, None)
    result = materialize([gated_readings, gated_summary], instance=instance, raise_on_error=False)
    assert not result.success

    tick(asset_check_alert_sensor, instance, defs, sinks, check_cursor)
    tick(run_failure_alert_sensor, instance, defs, sinks, run_cursor)
    alerts = alert_queue()
    assert len(alerts) == 1 and "check_gate" in alerts[0]["Message"]


def test_anomaly_counts_go_to_cloudwatch_once_per_run_and_raise_no_alert(instance, sinks, alert_queue):
    """Changed on purpose (issue 16): a burst of critical anomalies no longer alerts; incidents do."""
    defs = toy_defs(sinks)
    cursor, _ = tick(anomaly_metrics_sensor, instance, defs, sinks, None)
    range_tags = {
        "dagster/asset_partition_range_start": "2026-11-02-00:00",
        "dagster/asset_partition_range_end": "2026-11-02-05:00",
    }
    CRITICAL["n"] = 3
    materialize([fake_anomaly_log], instance=instance, tags=range_tags)
    CRITICAL["n"] = 0
    materialize([fake_anomaly_log], instance=instance, partition_key="2026-11-02-06:00")

    cursor, _ = tick(anomaly_metrics_sensor, instance, defs, sinks, cursor)
    tick(anomaly_metrics_sensor, instance, defs, sinks, cursor)
    assert alert_queue() == []
    # Counted once per run (the range's 6 events carry one summary), for both runs.
    assert metric_sum(sinks, "AnomalyCount", {"Asset": "anomaly_log", "Severity": "critical"}) == (3, 2)
    assert metric_sum(sinks, "AnomalyCount", {"Asset": "anomaly_log", "Method": "zscore"}) == (14, 2)


def test_each_incident_is_alerted_once_when_it_opens(instance, sinks, alert_queue):
    defs = toy_defs(sinks)
    cursor, _ = tick(incident_alert_sensor, instance, defs, sinks, None)
    range_tags = {
        "dagster/asset_partition_range_start": "2026-11-02-00:00",
        "dagster/asset_partition_range_end": "2026-11-02-05:00",
    }
    OPENED["incidents"] = [incident("dev-007", 4), incident("dev-012", 9, "low")]
    first = materialize([fake_anomaly_incidents], instance=instance, tags=range_tags)  # 6 hours, one list
    cursor, _ = tick(incident_alert_sensor, instance, defs, sinks, cursor)
    # The hour re-materialised (same incidents) and a later hour with no new incident: no repeat.
    materialize([fake_anomaly_incidents], instance=instance, partition_key="2026-11-02-00:00")
    OPENED["incidents"] = []
    materialize([fake_anomaly_incidents], instance=instance, partition_key="2026-11-02-06:00")
    cursor, _ = tick(incident_alert_sensor, instance, defs, sinks, cursor)
    tick(incident_alert_sensor, instance, defs, sinks, cursor)
    alerts = alert_queue()
    assert len(alerts) == 2
    texts = sorted(a["Message"] for a in alerts)
    for part in (
        "Incident opened: dev-007 (critical)",
        "dev-007@2026-11-02T00:04:00",
        "threshold,zscore",
        f"/runs/{first.run_id}",
    ):
        assert part in texts[0], part
    assert "Incident opened: dev-012 (low)" in texts[1] and texts[1].startswith("[WARN]")
    assert sorted(a["MessageAttributes"]["kind"]["Value"] for a in alerts) == ["incident", "incident"]


def record_freshness(instance, state: str) -> None:
    """What Dagster's freshness daemon records when an asset's freshness state changes."""
    import time

    from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange

    instance._report_runless_asset_event(
        asset_event=FreshnessStateChange(
            key=fresh_readings.key,
            previous_state=FreshnessState.UNKNOWN,
            new_state=FreshnessState(state),
            state_change_timestamp=time.time(),
        )
    )


def test_each_stale_state_is_alerted_once(instance, sinks, alert_queue):
    defs = toy_defs(sinks)
    cursor, message = tick(freshness_alert_sensor, instance, defs, sinks, None)
    assert message == "0 stale assets alerted"
    record_freshness(instance, "PASS")
    cursor, _ = tick(freshness_alert_sensor, instance, defs, sinks, cursor)
    record_freshness(instance, "FAIL")
    cursor, message = tick(freshness_alert_sensor, instance, defs, sinks, cursor)
    assert message == "1 stale assets alerted"
    cursor, message = tick(freshness_alert_sensor, instance, defs, sinks, cursor)  # still stale: no repeat
    assert message == "0 stale assets alerted"
    [alert] = alert_queue()
    assert alert["Message"].startswith("[ERROR] Stale: fresh_readings")
    assert "`30 * * * *`" in alert["Message"] and "/assets/fresh_readings" in alert["Message"]
    assert alert["MessageAttributes"]["kind"]["Value"] == "freshness"
    # Fresh again, then stale again: a new alert.
    record_freshness(instance, "PASS")
    cursor, _ = tick(freshness_alert_sensor, instance, defs, sinks, cursor)
    record_freshness(instance, "FAIL")
    tick(freshness_alert_sensor, instance, defs, sinks, cursor)
    assert len(alert_queue()) == 1


def test_the_code_location_runs_the_alert_sensors_with_its_own_resources(instance, local_aws):
    from dagster import DefaultSensorStatus

    from iot_assets.definitions import defs

    names = {s.name: s for s in defs.sensors}
    for s in alert_sensors:
        sensor_def = names[s.name]
        assert sensor_def.default_status == DefaultSensorStatus.RUNNING
        cursor = None
        for _ in range(2):  # the first tick starts the cursor, the second reads after it
            with build_sensor_context(
                instance=instance, cursor=cursor, definitions=defs, resources=defs.resources
            ) as context:
                cursor = sensor_def.evaluate_tick(context).cursor
            assert cursor
