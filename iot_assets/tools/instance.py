"""The local Dagster instance `make dev` and `make demo` use: `$DAGSTER_HOME` (`.dagster_home/`).

`iot-assets instance init` copies the checkout's `dagster.yaml` into `$DAGSTER_HOME` when it is new
or changed, on a new instance primes the cursors of Dagster's run-retry daemon, and ends the runs a
stopped `make dev` left behind (`end_runs_without_a_process`).

Why the priming: `dagster.yaml` enables run retries, so the daemon's `EventLogConsumerDaemon`
watches run failures. On an instance without its cursors it logs one warning per event type
("No cursor for event type ..., ignoring older events") and starts at the newest event. On a new
instance that is event 0, so writing that cursor first is exactly what the daemon would do, without
the warnings on the first `make dev`. The cursor keys are Dagster's private names; this is their
only use, and `iot_assets_tests/test_instance.py` fails if a Dagster upgrade changes them.
"""

from __future__ import annotations

import filecmp
import logging
import os
import shutil
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._daemon.auto_run_reexecution.event_log_consumer import (
    DAGSTER_EVENT_TYPES,
    _create_cursor_key,
)

log = logging.getLogger(__name__)


def prime_run_retry_cursors(instance: DagsterInstance) -> dict[str, str]:
    """Set the run-retry daemon's missing cursors to the newest event; returns the cursors written."""
    keys = {_create_cursor_key(t) for t in DAGSTER_EVENT_TYPES}
    present = instance.daemon_cursor_storage.get_cursor_values(keys)
    newest = str(instance.event_log_storage.get_maximum_record_id() or 0)
    missing = {k: newest for k in sorted(keys - set(present))}
    if missing:
        instance.daemon_cursor_storage.set_cursor_values(missing)
    return missing


# The statuses of a run whose process should be alive.
_IN_FLIGHT = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


def _process_started_at(pid: int) -> float | None:
    """When a live process started (seconds since the epoch; Linux /proc only, else None)."""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(
            float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime")
        )
    except (OSError, IndexError, ValueError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def process_alive(pid: int, since: float) -> bool:
    """Whether the process `pid`, recorded at `since`, still runs: it exists and (where /proc tells)
    did not start after `since`, so a reused pid is not taken for it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    started = _process_started_at(pid)
    return started is None or started <= since + 2  # /proc's start time is in clock ticks


def end_runs_without_a_process(instance: DagsterInstance) -> list[str]:
    """Mark failed each run the instance holds as in flight whose processes are all gone, and free
    its slots in the concurrency pools; returns what was done, for the log.

    A run stopped without ending (its process killed with SIGKILL, out of memory, a machine that
    lost power) stays STARTED, and keeps the slot it held in the `delta_lake_writers` pool (limit
    1). Every later run that writes the lake then waits for that slot, without end: `make dev`'s
    history run sat at "Step blocked by limit for pool delta_lake_writers". The local run launcher
    has no health check the daemon could use, so `make dev` (through `iot-assets instance init`)
    ends such runs when it starts. A run's processes are the pids its engine events record
    ("Executing steps in process (pid: ...)", "Started process for run (pid: ...)"); a run with
    none recorded, or any still alive, is left alone. The run-retry daemon is told not to retry
    it: its hours are run again from the UI, or by the sensors' next runs.

    Only an instance in this machine's files (SQLite run storage) is looked at: the runs of a
    shared instance (PostgreSQL) may run on other machines, where their pids mean nothing here.
    """
    from dagster._core.storage.runs import SqliteRunStorage
    from dagster._core.storage.tags import WILL_RETRY_TAG

    if not isinstance(instance.run_storage, SqliteRunStorage):
        return []
    done = []
    for run in instance.get_runs(RunsFilter(statuses=_IN_FLIGHT)):
        pids = {}
        for record in instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT):
            data = record.dagster_event.engine_event_data if record.dagster_event else None
            pid = (data.metadata or {}).get("pid") if data else None
            if pid is not None and str(pid.value).isdigit():
                pids.setdefault(int(pid.value), record.timestamp)
        if not pids or any(process_alive(pid, since) for pid, since in pids.items()):
            continue
        listed = ", ".join(str(p) for p in sorted(pids))
        instance.add_run_tags(run.run_id, {WILL_RETRY_TAG: "false"})
        instance.report_run_failed(
            run,
            f"The run's process (pid {listed}) is gone: it was stopped without ending the run. Marked "
            "failed by `iot-assets instance init`, and its concurrency pool slots freed.",
        )
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        done.append(f"ended run {run.run_id} ({run.job_name}, {run.status.value}): its process {listed} is gone")
    return done


def init_home(home: Path, config: Path) -> list[str]:
    """Create or update the instance at `home` from `config`; returns what was done, for the log."""
    done = []
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists() or not filecmp.cmp(config, target, shallow=False):
        shutil.copyfile(config, target)
        done.append(f"copied {config} to {target}")
    with DagsterInstance.from_config(str(home)) as instance:
        primed = prime_run_retry_cursors(instance)
        ended = end_runs_without_a_process(instance)
    if primed:
        done.append(f"primed {len(primed)} run-retry cursors")
    return done + ended
