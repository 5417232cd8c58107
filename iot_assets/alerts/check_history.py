"""The one door to Dagster's private API: the event log's asset-check executions, and the
freshness states the freshness daemon records.

Dagster has no public call that pages every check execution across runs, with the executions
that were planned but not (yet) evaluated. `asset_check_alert_sensor` needs both, so it reads
them here, as plain `CheckExecution` values. Freshness states (what the UI shows for a
`FreshnessPolicy`) are read here too, as plain `FreshnessStatus` values, for
`freshness_alert_sensor`. `iot_assets_tests/test_check_history.py` runs real checks and records
freshness states on an ephemeral instance, and fails loudly if a Dagster upgrade changes any of this.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from dagster import AssetCheckEvaluation, AssetCheckKey, AssetKey, DagsterInstance
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus


@dataclass(frozen=True)
class CheckExecution:
    """One execution of one asset check: planned when its step started, evaluated when it ran."""

    id: int  # increases with creation, across runs
    key: AssetCheckKey
    run_id: str
    partition: str | None
    created: float  # when it was planned (epoch seconds)
    evaluation: AssetCheckEvaluation | None  # None while only planned
    evaluated_at: float | None

    @property
    def planned(self) -> bool:
        return self.evaluation is None


def _execution(row) -> CheckExecution:
    planned = row.status == AssetCheckExecutionRecordStatus.PLANNED
    return CheckExecution(
        id=row.id,
        key=row.key,
        run_id=row.run_id,
        partition=row.partition,
        created=row.create_timestamp,
        evaluation=None if planned else row.evaluation,
        evaluated_at=None if planned or row.event is None else row.event.timestamp,
    )


def latest_execution_id(instance: DagsterInstance, keys: list[AssetCheckKey]) -> int:
    """The newest execution id among `keys` (0 when none ran)."""
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    return max((r.id for r in latest.values()), default=0)


def executions_after(
    instance: DagsterInstance, keys: list[AssetCheckKey], after: int, page: int, max_pages: int, log
) -> Iterator[CheckExecution]:
    """Every execution with id > after, newest pages first, per check key (at most max_pages pages each)."""
    storage = instance.event_log_storage
    for key in keys:
        before = None
        for _ in range(max_pages):
            rows = storage.get_asset_check_execution_history(key, limit=page, cursor=before)
            fresh = [r for r in rows if r.id > after]
            yield from (_execution(r) for r in fresh)
            if len(fresh) < len(rows) or len(rows) < page:
                break
            before = rows[-1].id
        else:
            log.warning(
                f"more than {page * max_pages} new executions of {key.to_user_string()}; older ones are skipped"
            )


@dataclass(frozen=True)
class FreshnessStatus:
    """An asset's freshness state (PASS, WARN, FAIL or UNKNOWN) and when it last changed."""

    key: AssetKey
    state: str
    since: datetime


def freshness_states(instance: DagsterInstance, keys: list[AssetKey]) -> dict[AssetKey, FreshnessStatus]:
    """The recorded freshness state of each of `keys` that has one (the freshness daemon writes them)."""
    records = instance.get_freshness_state_records(list(keys))
    return {k: FreshnessStatus(k, r.freshness_state.value, r.updated_at) for k, r in records.items()}
