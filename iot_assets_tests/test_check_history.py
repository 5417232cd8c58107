"""The adapter over Dagster's private check-execution API, on real checks in an ephemeral instance.

If a Dagster upgrade moves or changes what `iot_assets.alerts.check_history` reads, this fails."""

import logging

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    DagsterInstance,
    Output,
    asset,
    materialize,
)

from iot_assets.alerts.check_history import executions_after, freshness_states, latest_execution_id


@asset(check_specs=[AssetCheckSpec("probe_check", asset="probe")])
def probe(context):
    passed = context.run.tags.get("outcome") == "pass"
    yield Output(1)
    yield AssetCheckResult(
        check_name="probe_check",
        passed=passed,
        severity=AssetCheckSeverity.WARN,
        metadata={"failed_rows": 0 if passed else 3},
    )


def test_executions_are_read_in_order_with_their_evaluations():
    instance = DagsterInstance.ephemeral()
    key = next(iter(probe.check_keys))
    assert latest_execution_id(instance, [key]) == 0
    runs = [materialize([probe], instance=instance, tags={"outcome": o}) for o in ("pass", "fail")]
    got = sorted(
        executions_after(instance, [key], 0, page=1, max_pages=10, log=logging.getLogger()), key=lambda e: e.id
    )
    assert [e.run_id for e in got] == [r.run_id for r in runs]
    assert [e.evaluation.passed for e in got] == [True, False] and not any(e.planned for e in got)
    assert (
        got[1].evaluation.metadata["failed_rows"].value == 3 and got[1].evaluation.severity == AssetCheckSeverity.WARN
    )
    assert got[0].id < got[1].id == latest_execution_id(instance, [key])
    assert all(e.key == key and e.evaluated_at >= e.created > 0 for e in got)
    assert [e.id for e in executions_after(instance, [key], got[0].id, 100, 1, logging.getLogger())] == [got[1].id]


def test_freshness_states_are_read_as_the_daemon_records_them():
    import time

    from dagster import AssetKey, DagsterInstance
    from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange

    key = AssetKey("fresh")
    with DagsterInstance.ephemeral() as instance:
        assert freshness_states(instance, [key]) == {}
        before = time.time()
        instance._report_runless_asset_event(
            asset_event=FreshnessStateChange(
                key=key,
                previous_state=FreshnessState.UNKNOWN,
                new_state=FreshnessState.FAIL,
                state_change_timestamp=time.time(),
            )
        )
        [status] = freshness_states(instance, [key, AssetKey("other")]).values()
    assert (status.key, status.state) == (key, "FAIL")
    assert status.since.tzinfo is not None and status.since.timestamp() >= before - 1
