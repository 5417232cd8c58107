"""Where alerts go: an SNS topic, CloudWatch metrics, and a Slack incoming webhook when configured.

Delivery keeps track of which sink accepted which item, so a sensor can record that in its cursor:
after a sink fails, the next tick sends the item only to the sinks that have not accepted it yet.
The Slack webhook URL is a secret: it is never logged, never put in metadata or errors, and the
resource hides it from its repr.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from urllib.parse import urlparse

from dagster import ConfigurableResource
from pydantic import Field

from iot_assets.alerts.alert import Alert
from iot_assets.resources.aws import AwsResource, is_local

SLACK_TIMEOUT_SECONDS = 10
# SNS FIFO topics need a group; one group keeps alerts in order.
FIFO_GROUP = "iot-alerts"


class SinkError(RuntimeError):
    """A sink refused an item. The message names the sink and never carries a secret."""


@dataclass(frozen=True)
class Outgoing:
    """One item to deliver: an alert (SNS, Slack) and/or CloudWatch metric data, under a stable key."""

    key: str
    alert: Alert | None = None
    metrics: tuple[dict, ...] = ()


@dataclass
class Delivery:
    done: list[str] = field(default_factory=list)  # keys every sink accepted
    partial: dict[str, list[str]] = field(default_factory=dict)  # the failed key -> sinks that accepted it
    error: str | None = None
    alerts_sent: int = 0


def datum(name: str, value: float, dimensions: Mapping[str, str], at: datetime) -> dict:
    return {
        "MetricName": name,
        "Value": float(value),
        "Unit": "Count",
        "Timestamp": at,
        "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
    }


def check_metrics(
    asset: str, check: str, passed: bool, failed_rows: int | None, passed_rows: int | None, at: datetime
) -> tuple[dict, ...]:
    """CheckFailures (0 or 1) for every evaluation, and row counts when the check reports them."""
    dims = {"Asset": asset, "Check": check}
    out = [datum("CheckFailures", 0 if passed else 1, dims, at)]
    if failed_rows is not None:
        out.append(datum("FailedRows", failed_rows, dims, at))
    if passed_rows is not None:
        out.append(datum("PassedRows", passed_rows, dims, at))
    return tuple(out)


def anomaly_metrics(
    asset: str, by_severity: Mapping[str, int], by_method: Mapping[str, int], at: datetime
) -> tuple[dict, ...]:
    """AnomalyCount per severity and per method, for one run of the anomaly log."""
    return tuple(
        datum("AnomalyCount", n, {"Asset": asset, "Severity": s}, at) for s, n in sorted(by_severity.items())
    ) + tuple(datum("AnomalyCount", n, {"Asset": asset, "Method": m}, at) for m, n in sorted(by_method.items()))


def _check_webhook(url: str) -> str:
    parsed = urlparse(url)
    local_http = parsed.scheme == "http" and is_local(url)
    if parsed.scheme != "https" and not local_http:
        # The URL itself is not repeated: it is a secret.
        raise ValueError("IOT_ALERT_SLACK_WEBHOOK_URL must be an https URL (http only on the loopback interface)")
    return url


class AlertSinks(ConfigurableResource):
    """Sends alerts to SNS and Slack and metrics to CloudWatch; an empty setting disables its sink."""

    aws: AwsResource
    sns_topic: str = Field(default="iot-alerts", description="Topic ARN, or a topic name on a local endpoint.")
    metrics_namespace: str = Field(default="IotAssets", description="CloudWatch namespace; empty disables metrics.")
    slack_webhook_url: str = Field(default="", repr=False, description="Slack webhook URL (secret); empty disables.")
    ui_url: str = Field(default="http://127.0.0.1:3000", description="Dagster UI base URL for run links.")

    @cached_property
    def topic_arn(self) -> str | None:
        """The topic's ARN. A bare name resolves only on a local endpoint, where creating it is harmless."""
        topic = self.sns_topic.strip()
        if not topic or topic.startswith("arn:"):
            return topic or None
        if not is_local(self.aws.endpoint):
            raise ValueError(
                "IOT_ALERT_SNS_TOPIC must be a topic ARN against real AWS; a bare topic name "
                "is resolved only on a local endpoint"
            )
        return self.aws.client("sns").create_topic(Name=topic)["TopicArn"]

    def sinks_for(self, item: Outgoing) -> list[str]:
        """The sinks an item goes to, in delivery order: SNS (what a reader relies on) first."""
        out = []
        if item.alert is not None:
            out += ["sns"] if self.sns_topic.strip() else []
            out += ["slack"] if self.slack_webhook_url.strip() else []
        if item.metrics and self.metrics_namespace.strip():
            out.append("cloudwatch")
        return out

    def publish_sns(self, alert: Alert) -> None:
        arn = self.topic_arn
        attrs = {k: {"DataType": "String", "StringValue": v} for k, v in alert.attributes().items()}
        kwargs = dict(TopicArn=arn, Subject=alert.subject, Message=alert.text(), MessageAttributes=attrs)
        if arn.endswith(".fifo"):
            # A FIFO topic drops a repeat of the same alert (e.g. after a crash before the cursor was saved).
            kwargs.update(MessageGroupId=FIFO_GROUP, MessageDeduplicationId=alert.alert_id)
        self.aws.client("sns").publish(**kwargs)

    def post_slack(self, alert: Alert) -> None:
        url = _check_webhook(self.slack_webhook_url.strip())
        body = json.dumps(
            {
                "text": f"*{alert.subject}*\n"
                + "\n".join(f"*{k}:* {v}" for k, v in alert.lines())
                + ("\n```" + "\n".join(alert.examples) + "```" if alert.examples else "")
            }
        ).encode()
        request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=SLACK_TIMEOUT_SECONDS) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            raise SinkError(f"slack webhook answered HTTP {exc.code}") from None
        except Exception as exc:  # noqa: BLE001 - other errors' text may quote the URL
            reason = getattr(exc, "reason", exc)
            raise SinkError(f"slack webhook unreachable ({type(reason).__name__})") from None

    def put_metrics(self, metrics: Sequence[dict]) -> None:
        client = self.aws.client("cloudwatch")
        for i in range(0, len(metrics), 500):
            client.put_metric_data(Namespace=self.metrics_namespace.strip(), MetricData=list(metrics[i : i + 500]))

    def _send(self, sink: str, item: Outgoing) -> None:
        if sink == "sns":
            self.publish_sns(item.alert)
        elif sink == "slack":
            self.post_slack(item.alert)
        else:
            self.put_metrics(item.metrics)

    def deliver(self, items: Sequence[Outgoing], partial: Mapping[str, Sequence[str]] | None = None) -> Delivery:
        """Send items in order, each to each of its sinks, skipping sinks that already accepted it.

        Stops at the first refusal, so the caller's cursor can stop there too; `partial` records
        which sinks accepted the refused item, so a retry does not repeat them.
        """
        partial = partial or {}
        out = Delivery()
        for item in items:
            accepted = list(partial.get(item.key, []))
            for sink in self.sinks_for(item):
                if sink in accepted:
                    continue
                try:
                    self._send(sink, item)
                except Exception as exc:  # noqa: BLE001 - any refusal stops delivery at this item
                    out.partial = {item.key: accepted} if accepted else {}
                    out.error = _describe(sink, exc)
                    return out
                accepted.append(sink)
            out.done.append(item.key)
            out.alerts_sent += item.alert is not None
        return out

    def send_everywhere(self, item: Outgoing) -> list[str]:
        """Try every sink even if one fails (a run failure has no retry); returns the errors."""
        errors = []
        for sink in self.sinks_for(item):
            try:
                self._send(sink, item)
            except Exception as exc:  # noqa: BLE001 - the other sinks still get the alert
                errors.append(_describe(sink, exc))
        return errors


def _describe(sink: str, exc: Exception) -> str:
    """A refusal for logs and tick messages. Slack's errors are SinkErrors, which never quote the URL."""
    return f"{sink}: {exc}" if isinstance(exc, SinkError) else f"{sink}: {type(exc).__name__}: {exc}"
