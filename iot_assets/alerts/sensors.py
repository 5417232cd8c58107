"""Alert sensors: failed asset checks, opened incidents and failed runs go to `AlertSinks`; anomaly
counts go to CloudWatch.

Asset checks are read from the event log's asset-check executions (indexed across runs in every
storage, including the run-sharded SQLite of `make dev`). An execution row is created when its
check is planned and completed when it is evaluated, so rows complete out of id order: the cursor
holds a watermark below which everything is handled, plus the handled ids above it.

Delivery: each item goes to each sink once. The cursor advances only past what every sink
accepted; when a sink refuses an item, the tick stops there, records which sinks already took it,
and reports the refusal in the tick's skip reason and log (a raised error would throw the
progress away and repeat what was already sent). The next tick resends the item only to the
sinks that missed it. The one remaining repeat is a crash between a send and the tick's commit:
every message carries a stable `alert_id` attribute for that, and a FIFO topic drops the repeat.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    DefaultSensorStatus,
    RunFailureSensorContext,
    SensorEvaluationContext,
    SensorResult,
    run_failure_sensor,
    sensor,
)

from iot_assets.alerts.alert import as_int, check_alert, freshness_alert, incident_alert, plain, run_failure_alert
from iot_assets.alerts.check_history import CheckExecution, executions_after, freshness_states, latest_execution_id
from iot_assets.alerts.sinks import AlertSinks, Outgoing, SinkError, anomaly_metrics, check_metrics
from iot_assets.assets.verdicts import ANOMALY_LOG, INCIDENTS

MAX_ITEMS_PER_TICK = 100
HISTORY_PAGE = 100
MAX_HISTORY_PAGES = 20
# A planned check whose run ended at least this long before the query will never be evaluated.
RUN_END_GRACE_SECONDS = 2.0
# A check planned this long ago in a run that never ended (a lost process) stops holding the cursor.
MAX_PLANNED_WAIT_SECONDS = 24 * 3600
RECENT_RUNS_KEPT = 200
ANOMALY_ASSET = ANOMALY_LOG.key
INCIDENT_ASSET = INCIDENTS.key
# Incident ids already alerted, kept so a re-materialised hour does not alert its incidents again.
RECENT_INCIDENTS_KEPT = 5000
# Run tags Dagster sets for a single partition and for a single-run range backfill.
PARTITION_TAG = "dagster/partition"
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")

# Alerts should flow in `make dev` without a click in the UI: the sensors only read the event log
# and write to the configured sinks (local ones by default), and start no runs.
ALERT_SENSOR_STATUS = DefaultSensorStatus.RUNNING


def run_partition(instance: DagsterInstance, run_id: str) -> str | None:
    """The run's partition, or its range as `start..end`, from the run's tags."""
    run = instance.get_run_by_id(run_id)
    tags = run.tags if run else {}
    if PARTITION_TAG in tags:
        return tags[PARTITION_TAG]
    start, end = (tags.get(t) for t in RANGE_TAGS)
    return (start if start == end else f"{start}..{end}") if start else None


def _timestamp(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def _finish(context: SensorEvaluationContext, cursor: dict, summary: str, error: str | None) -> SensorResult:
    if error:
        context.log.error(f"alert delivery refused ({error}); {summary}; the rest is retried next tick")
        summary = f"delivery refused, retried next tick: {error}; {summary}"
    return SensorResult(cursor=json.dumps(cursor, sort_keys=True), skip_reason=summary)


def _never_evaluated(instance: DagsterInstance, row: CheckExecution, queried_at: float, log) -> bool:
    record = instance.get_run_record_by_id(row.run_id)
    if record is None:
        return True
    if row.created < queried_at - MAX_PLANNED_WAIT_SECONDS:
        log.warning(
            f"check execution {row.id} ({row.key.to_user_string()}) was planned more than "
            f"{MAX_PLANNED_WAIT_SECONDS // 3600} h ago in run {row.run_id} and never evaluated; "
            "no longer waiting for it"
        )
        return True
    return (
        record.dagster_run.is_finished
        and record.end_time is not None
        and record.end_time < queried_at - RUN_END_GRACE_SECONDS
    )


def _check_item(row: CheckExecution, instance: DagsterInstance, sinks: AlertSinks) -> Outgoing:
    ev = row.evaluation
    asset, meta = ev.asset_key.to_user_string(), ev.metadata
    failed_rows, passed_rows = as_int(meta.get("failed_rows")), as_int(meta.get("passed_rows"))
    alert = None
    if not ev.passed:
        alert = check_alert(
            asset=asset,
            check=ev.check_name,
            severity=ev.severity.value,
            metadata=meta,
            partition=ev.partition or row.partition or run_partition(instance, row.run_id),
            description=ev.description,
            run_id=row.run_id,
            ui_url=sinks.ui_url,
        )
    metrics = check_metrics(asset, ev.check_name, ev.passed, failed_rows, passed_rows, _timestamp(row.evaluated_at))
    return Outgoing(key=str(row.id), alert=alert, metrics=metrics)


@sensor(minimum_interval_seconds=30, default_status=ALERT_SENSOR_STATUS)
def asset_check_alert_sensor(context: SensorEvaluationContext, alert_sinks: AlertSinks) -> SensorResult:
    """Sends each failed asset check once to SNS (and Slack), and every check's row counts to CloudWatch."""
    keys = sorted(context.repository_def.asset_graph.asset_check_keys, key=lambda k: k.to_user_string())
    if not context.cursor:
        start = latest_execution_id(context.instance, keys)
        return _finish(
            context,
            {"after": start, "done": [], "partial": {}},
            f"started: alerting on check executions after {start}",
            None,
        )
    state = json.loads(context.cursor)
    after, done = state["after"], set(state["done"])
    queried_at = time.time()
    rows = sorted(
        executions_after(context.instance, keys, after, HISTORY_PAGE, MAX_HISTORY_PAGES, context.log),
        key=lambda r: r.id,
    )
    items, waiting, handled = [], [], set()
    for row in rows:
        if row.id in done:
            continue
        if row.planned:
            if _never_evaluated(context.instance, row, queried_at, context.log):
                handled.add(row.id)
            else:
                waiting.append(row.id)
        elif len(items) < MAX_ITEMS_PER_TICK:
            items.append(_check_item(row, context.instance, alert_sinks))
        else:
            waiting.append(row.id)
    delivery = alert_sinks.deliver(items, state["partial"])
    handled |= {int(k) for k in delivery.done}
    pending = waiting + [int(i.key) for i in items if int(i.key) not in handled]
    new_after = min(pending) - 1 if pending else max([after] + [r.id for r in rows])
    cursor = {
        "after": new_after,
        "done": sorted(i for i in done | handled if i > new_after),
        "partial": delivery.partial,
    }
    summary = f"{delivery.alerts_sent} failed checks alerted, {len(delivery.done)} evaluations recorded"
    return _finish(context, cursor, summary, delivery.error)


def _anomaly_metrics_item(run_id: str, records: list) -> Outgoing:
    meta = records[0].asset_materialization.metadata
    by_severity = plain(meta.get("anomalies_by_severity")) or {}
    by_method = plain(meta.get("anomalies_by_method")) or {}
    metrics = anomaly_metrics(ANOMALY_ASSET.to_user_string(), by_severity, by_method, _timestamp(records[0].timestamp))
    return Outgoing(key=run_id, metrics=metrics)


def _new_materialisations(instance: DagsterInstance, key: AssetKey, after: int) -> list:
    return instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, after_storage_id=after), limit=MAX_ITEMS_PER_TICK, ascending=True
    ).records


def _start(context: SensorEvaluationContext, key: AssetKey, state: dict) -> SensorResult:
    latest = context.instance.fetch_materializations(AssetRecordsFilter(asset_key=key), limit=1).records
    start = latest[0].storage_id if latest else 0
    return _finish(
        context,
        {"after": start, **state, "partial": {}},
        f"started: reading {key.to_user_string()} materialisations after {start}",
        None,
    )


@sensor(minimum_interval_seconds=30, default_status=ALERT_SENSOR_STATUS)
def anomaly_metrics_sensor(context: SensorEvaluationContext, alert_sinks: AlertSinks) -> SensorResult:
    """Sends the anomaly log's counts by severity and method to CloudWatch, once per run.

    Operators are alerted per incident (incident_alert_sensor), not per burst of anomalous readings.
    A range run materialises every hour of the range with the same (whole-run) summary, so the
    unit here is the run, not the partition.
    """
    if not context.cursor:
        return _start(context, ANOMALY_ASSET, {"runs": []})
    state = json.loads(context.cursor)
    recent = list(state["runs"])
    records = _new_materialisations(context.instance, ANOMALY_ASSET, state["after"])
    by_run: dict[str, list] = {}
    for r in records:
        if r.run_id not in recent:
            by_run.setdefault(r.run_id, []).append(r)
    delivery = alert_sinks.deliver(
        [_anomaly_metrics_item(run_id, rs) for run_id, rs in by_run.items()], state["partial"]
    )
    recent = (recent + delivery.done)[-RECENT_RUNS_KEPT:]
    undone = [r.storage_id for r in records if r.run_id in by_run and r.run_id not in delivery.done]
    new_after = min(undone) - 1 if undone else max([state["after"]] + [r.storage_id for r in records])
    summary = f"anomaly counts of {len(delivery.done)} runs recorded"
    return _finish(context, {"after": new_after, "runs": recent, "partial": delivery.partial}, summary, delivery.error)


@sensor(minimum_interval_seconds=30, default_status=ALERT_SENSOR_STATUS)
def incident_alert_sensor(context: SensorEvaluationContext, alert_sinks: AlertSinks) -> SensorResult:
    """Alerts each incident exactly once, when a run of anomaly_incidents reports it opened.

    A range run lists the same opened incidents on every hour of the range, and a re-materialised
    hour lists them again: the incident id, not the materialisation, is the unit here.
    """
    if not context.cursor:
        return _start(context, INCIDENT_ASSET, {"incidents": []})
    state = json.loads(context.cursor)
    alerted = list(state["incidents"])
    seen = set(alerted)
    records = _new_materialisations(context.instance, INCIDENT_ASSET, state["after"])
    items, first_record = [], {}
    for r in records:
        for incident in plain(r.asset_materialization.metadata.get("opened_incidents")) or []:
            key = incident.get("incident_id")
            if key and key not in seen:
                seen.add(key)
                first_record[key] = r.storage_id
                items.append(
                    Outgoing(
                        key=key,
                        alert=incident_alert(
                            asset=INCIDENT_ASSET.to_user_string(),
                            incident=incident,
                            run_id=r.run_id,
                            ui_url=alert_sinks.ui_url,
                        ),
                    )
                )
    delivery = alert_sinks.deliver(items, state["partial"])
    alerted = (alerted + delivery.done)[-RECENT_INCIDENTS_KEPT:]
    undone = [first_record[i.key] for i in items if i.key not in delivery.done]
    new_after = min(undone) - 1 if undone else max([state["after"]] + [r.storage_id for r in records])
    summary = f"{delivery.alerts_sent} incidents alerted"
    return _finish(
        context, {"after": new_after, "incidents": alerted, "partial": delivery.partial}, summary, delivery.error
    )


# Freshness states that page someone: FAIL (the deadline passed) and WARN (within a warn window).
STALE_STATES = ("FAIL", "WARN")


def _policy_text(policy) -> str:
    cron, window = getattr(policy, "deadline_cron", None), getattr(policy, "lower_bound_delta", None)
    if cron:
        return f"a materialisation within {window} before each deadline `{cron}` (UTC)"
    return str(policy)


@sensor(minimum_interval_seconds=30, default_status=ALERT_SENSOR_STATUS)
def freshness_alert_sensor(context: SensorEvaluationContext, alert_sinks: AlertSinks) -> SensorResult:
    """Alerts once each time an asset with a FreshnessPolicy turns stale (FAIL or WARN).

    The freshness daemon evaluates the policies and records each asset's state; this reads those
    states and sends each new stale state through the same sinks as failed checks and incidents.
    """
    graph = context.repository_def.asset_graph
    policies = {k: graph.get(k).freshness_policy for k in graph.get_all_asset_keys() if graph.get(k).freshness_policy}
    state = json.loads(context.cursor) if context.cursor else {"alerted": {}, "partial": {}}
    alerted = dict(state["alerted"])
    items = []
    for key, status in sorted(freshness_states(context.instance, list(policies)).items(), key=lambda kv: kv[0]):
        asset, since = key.to_user_string(), status.since.isoformat()
        if status.state in STALE_STATES and alerted.get(asset) != since:
            alert = freshness_alert(
                asset=asset,
                state=status.state,
                since=status.since,
                policy=_policy_text(policies[key]),
                ui_url=alert_sinks.ui_url,
            )
            items.append(Outgoing(key=f"{asset}@{since}", alert=alert))
    delivery = alert_sinks.deliver(items, state["partial"])
    for key in delivery.done:
        asset, since = key.rsplit("@", 1)
        alerted[asset] = since
    summary = f"{delivery.alerts_sent} stale assets alerted"
    return _finish(context, {"alerted": alerted, "partial": delivery.partial}, summary, delivery.error)


def _root_message(error) -> str | None:
    """The user's own exception, not Dagster's wrapper around it."""
    while error is not None and error.cause is not None:
        error = error.cause
    return error.message if error is not None else None


def _stopped_by_blocking_check(event) -> bool:
    error = event.step_failure_data.error if event.step_failure_data else None
    return error is not None and error.cls_name == "DagsterAssetCheckFailedError"


@run_failure_sensor(default_status=ALERT_SENSOR_STATUS)
def run_failure_alert_sensor(context: RunFailureSensorContext, alert_sinks: AlertSinks) -> None:
    """Sends each failed run of this code location, with its failing step and error, to every sink.

    Dagster's run-status sensors move past a run even when this function raises (so side effects
    are not repeated): a sink that refuses is reported on the failed tick and not retried, while
    the other sinks still get the alert.
    """
    run = context.dagster_run
    failures = context.get_step_failure_events()
    if failures and all(_stopped_by_blocking_check(e) for e in failures):
        # The failed checks are alerted by asset_check_alert_sensor: one alert per failure.
        context.log.info(f"run {run.run_id} stopped at a blocking check; alerted as the check")
        return
    steps = {e.step_key: _root_message(e.step_failure_data.error) or e.message or "" for e in failures}
    alert = run_failure_alert(
        job=run.job_name,
        run_id=run.run_id,
        partition=run_partition(context.instance, run.run_id),
        failed_steps=steps,
        error=context.failure_event.message,
        ui_url=alert_sinks.ui_url,
    )
    errors = alert_sinks.send_everywhere(Outgoing(key=f"run:{run.run_id}", alert=alert))
    if errors:
        raise SinkError("alert delivery refused: " + "; ".join(errors))


alert_sensors = [
    asset_check_alert_sensor,
    incident_alert_sensor,
    freshness_alert_sensor,
    anomaly_metrics_sensor,
    run_failure_alert_sensor,
]
