"""Whether a run's steps keep every core busy, from Spark's own task timings.

The bench process starts its Spark session with Spark's event log on (`session`). For each task
the log records when its stage was submitted, and when the task was launched and finished. A
task's wait is launch minus its stage's submission: the time it queued for a free core (and the
scheduler). Its run is finish minus launch. Each task counts towards the Dagster step whose
window holds its launch. For a step:

- `share`: its seconds over the run's;
- `task_seconds`, `wait_seconds`: the sums over its tasks;
- `core_use`: task seconds over (step seconds x cores). 1.0 is every core busy for the whole
  step. What is missing is time in which no task ran: the driver planning, committing to Delta,
  waiting on S3, or running Python.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

_event_log: Path | None = None


def session():
    """The bench process's Spark session, configured as the Spark resource configures it, started
    with the event log on if this call starts it."""
    global _event_log
    from pyspark.sql import SparkSession

    from iot_assets.resources.config import resolved
    from iot_assets.resources.spark import get_or_create_session

    if SparkSession.getActiveSession() is None:
        directory = Path(tempfile.mkdtemp(prefix="iot-bench-eventlog-"))
        get_or_create_session(
            {
                **resolved("spark").conf(),
                "spark.eventLog.enabled": "true",
                "spark.eventLog.dir": directory.as_uri(),
                "spark.eventLog.compress": "false",
                "spark.eventLog.rolling.enabled": "true",
            }
        )
        _event_log = directory
    return resolved("spark").session


@dataclass(frozen=True)
class Task:
    submitted: float  # its stage's submission, epoch seconds
    launched: float
    finished: float


def tasks(lines) -> list[Task]:
    """The finished tasks of an event log's lines (JSON events)."""
    submitted: dict[tuple[int, int], float] = {}
    ended: list[tuple[tuple[int, int], float, float]] = []
    for line in lines:
        if '"SparkListenerStage' not in line and '"SparkListenerTaskEnd"' not in line:
            continue
        event = json.loads(line)
        kind = event["Event"]
        if kind in ("SparkListenerStageSubmitted", "SparkListenerStageCompleted"):
            info = event["Stage Info"]
            if info.get("Submission Time") is not None:
                submitted[(info["Stage ID"], info["Stage Attempt ID"])] = info["Submission Time"] / 1000
        elif kind == "SparkListenerTaskEnd":
            info = event["Task Info"]
            ended.append(
                ((event["Stage ID"], event["Stage Attempt ID"]), info["Launch Time"] / 1000, info["Finish Time"] / 1000)
            )
    return [Task(submitted.get(stage, launched), launched, finished) for stage, launched, finished in ended]


def read_tasks() -> list[Task]:
    """The finished tasks so far of this process's session (empty when it started without the
    event log). Spark flushes its log at each stage's end, after the stage's tasks."""
    if _event_log is None:
        return []
    # A rolling log: <dir>/eventlog_v2_<app>/events_<n>_<app>, n from 1.
    files = sorted(_event_log.glob("*/events_*"), key=lambda p: int(p.name.split("_")[1]))
    found: list[Task] = []
    for f in files:
        with f.open() as lines:
            found += tasks(lines)
    return found


def step_windows(instance, run_id: str) -> dict[str, tuple[float, float]]:
    """Step key -> (start, end) in epoch seconds, from the run's step events."""
    from dagster import DagsterEventType

    starts, ends = {}, {}
    for entry in instance.all_logs(run_id, of_type={DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS}):
        target = starts if entry.dagster_event.event_type == DagsterEventType.STEP_START else ends
        target[entry.step_key] = entry.timestamp
    return {k: (starts[k], ends[k]) for k in starts if k in ends}


def steps_on_cores(found: list[Task], windows: dict[str, tuple[float, float]], cores: int) -> dict[str, dict]:
    """Step key -> its share of the run, task and wait seconds, and core use (see the module)."""
    if not windows:
        return {}
    total = max(e for _, e in windows.values()) - min(s for s, _ in windows.values())
    out = {}
    for step, (start, end) in windows.items():
        mine = [t for t in found if start <= t.launched < end]
        seconds = end - start
        ran = sum(t.finished - t.launched for t in mine)
        out[step] = {
            "seconds": round(seconds, 1),
            "share": round(seconds / total, 3) if total else None,
            "tasks": len(mine),
            "task_seconds": round(ran, 1),
            "wait_seconds": round(sum(t.launched - t.submitted for t in mine), 1),
            "core_use": round(ran / (seconds * cores), 2) if seconds else None,
        }
    return out
