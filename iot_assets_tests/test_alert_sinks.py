"""The alert value and the sinks' configuration: fast, no Dagster instance."""

from __future__ import annotations

import pytest
from dagster import EnvVar, MetadataValue

from iot_assets.alerts.alert import check_alert, incident_alert, run_failure_alert
from iot_assets.alerts.sinks import AlertSinks, Outgoing, _check_webhook
from iot_assets.resources.aws import AwsResource

UI = "http://127.0.0.1:3000/"


def test_check_alert_reads_the_row_count_contract():
    alert = check_alert(
        asset="silver_sensor_readings",
        check="check_silver_ranges",
        partition="2026-11-21-10:00",
        severity="WARN",
        description=None,
        run_id="r1",
        ui_url=UI,
        metadata={
            "failed_rows": MetadataValue.int(25),
            "passed_rows": 975,
            "examples": MetadataValue.json([{"device_id": "d1", "humidity": 140}] * 9),
        },
    )
    assert "25 of 1,000 rows failed (2.5%)" in alert.what
    assert (alert.failed_rows, alert.passed_rows, len(alert.examples)) == (25, 975, 5)
    assert alert.run_url == "http://127.0.0.1:3000/runs/r1"
    assert alert.attributes()["severity"] == "WARN"


def test_check_alert_over_a_range_names_the_failing_hours():
    hours = [f"2026-11-21-{h:02d}:00" for h in range(14)]
    alert = check_alert(
        asset="silver_sensor_readings",
        check="check_silver_schema",
        partition="2026-11-21-00:00..2026-11-21-23:00",
        severity="ERROR",
        description=None,
        run_id="r",
        ui_url=UI,
        metadata={"failing_partitions": MetadataValue.json(hours)},
    )
    assert "Failing partitions: 2026-11-21-00:00, " in alert.text() and "2026-11-21-11:00 (+2 more)" in alert.text()


def test_check_alert_without_counts_still_says_what_failed():
    alert = check_alert(
        asset="a",
        check="c",
        partition=None,
        severity="ERROR",
        metadata={},
        description="no rows",
        run_id="r",
        ui_url=UI,
    )
    assert alert.what == "check `c` on `a` failed. no rows"
    assert "Failed rows" not in alert.text() and "Partition" not in alert.text()
    assert "partition" not in alert.attributes()  # SNS refuses empty attribute values


def test_the_alert_id_is_stable_and_specific():
    def make(partition):
        return check_alert(
            asset="a",
            check="c",
            partition=partition,
            severity="ERROR",
            metadata={},
            description=None,
            run_id="r",
            ui_url=UI,
        )

    assert make("p1").alert_id == make("p1").alert_id != make("p2").alert_id


def test_subject_fits_sns():
    alert = run_failure_alert(job="j" * 200 + "é\n", run_id="r", partition=None, failed_steps={}, error=None, ui_url=UI)
    assert len(alert.subject) <= 100 and alert.subject.isascii() and "\n" not in alert.subject


def test_run_failure_alert_trims_the_error():
    alert = run_failure_alert(
        job="hourly_pipeline_job",
        run_id="r",
        partition="2026-11-21-10:00",
        failed_steps={"silver_sensor_readings": "boom\n" + "x" * 5000},
        error=None,
        ui_url=UI,
    )
    error = dict(alert.details)["Error"]
    assert len(error) <= 1501 and alert.what.endswith("silver_sensor_readings: boom")


INCIDENT = {
    "incident_id": "d9@2026-11-21T10:04:00.000000",
    "device_id": "d9",
    "opened_at": "2026-11-21T10:04:00",
    "peak_severity": "high",
    "methods": "kmeans,zscore",
    "metrics": "temperature",
    "first_detected_by": "zscore",
    "readings": 7,
    "hour": "2026-11-21T10:00:00",
}


def test_incident_alert_names_device_severity_and_methods_and_is_the_same_from_any_run():
    alert = incident_alert(asset="anomaly_incidents", incident=INCIDENT, run_id="r1", ui_url=UI)
    again = incident_alert(asset="anomaly_incidents", incident=INCIDENT, run_id="r2", ui_url=UI)
    assert alert.severity == "CRITICAL" and alert.title == "Incident opened: d9 (high)"
    assert "peak severity high, 7 confirmed readings" in alert.what and "kmeans,zscore" in alert.text()
    assert alert.alert_id == again.alert_id
    low = incident_alert(
        asset="anomaly_incidents", incident={**INCIDENT, "peak_severity": "low"}, run_id="r", ui_url=UI
    )
    assert low.severity == "WARN"


@pytest.mark.parametrize("url", ["http://hooks.slack.com/services/x", "ftp://127.0.0.1/x", "file:///etc/passwd"])
def test_webhook_must_be_https_except_on_loopback(url):
    with pytest.raises(ValueError) as err:
        _check_webhook(url)
    assert url not in str(err.value)


def test_a_bare_topic_name_is_only_resolved_locally():
    sinks = AlertSinks(aws=AwsResource(endpoint_url="aws"), sns_topic="iot-alerts")
    with pytest.raises(ValueError):
        _ = sinks.topic_arn
    arn = "arn:aws:sns:eu-west-1:123456789012:iot-alerts"
    assert AlertSinks(aws=AwsResource(endpoint_url="aws"), sns_topic=arn).topic_arn == arn


def test_empty_settings_disable_their_sinks():
    item = Outgoing(
        key="k",
        alert=run_failure_alert(job="j", run_id="r", partition=None, failed_steps={}, error=None, ui_url=UI),
        metrics=({"MetricName": "x"},),
    )
    aws = AwsResource()
    assert AlertSinks(aws=aws, slack_webhook_url="https://hooks.slack.com/x").sinks_for(item) == [
        "sns",
        "slack",
        "cloudwatch",
    ]
    assert AlertSinks(aws=aws, sns_topic="", metrics_namespace="").sinks_for(item) == []


def test_the_webhook_reaches_the_resource_as_an_envvar(monkeypatch):
    from iot_assets.resources.config import build_resources

    monkeypatch.setenv("IOT_ALERT_SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/secret")
    sinks = build_resources()["alert_sinks"]
    assert sinks.slack_webhook_url == EnvVar("IOT_ALERT_SLACK_WEBHOOK_URL")
    assert "secret" not in repr(sinks)
