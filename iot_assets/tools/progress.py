"""Progress lines on stderr for long commands (`demo`, `simulate`, `evaluate`).

A line at most every `interval` seconds, so a long run shows it is alive without flooding the
terminal: `[label] 12/30 partitions, 3,600 records, 41 s`.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

from dagster import DagsterEventType, DagsterInstance, RunsFilter


class Progress:
    """Counts toward a total and prints a line when `interval` seconds have passed since the last."""

    def __init__(
        self,
        label: str,
        total: int | None = None,
        unit: str | None = "partitions",
        interval: float = 10.0,
        write: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.label, self.total, self.unit, self.interval = label, total, unit, interval
        self.write = write or (lambda line: print(line, file=sys.stderr, flush=True))
        self.clock = clock
        self.began = self.last = clock()
        self.done = 0
        self.records = 0

    def line(self) -> str:
        done = f"{self.done}/{self.total}" if self.total is not None else f"{self.done}"
        parts = [f"{done} {self.unit}"] if self.unit else []
        if self.records or not self.unit:
            parts.append(f"{self.records:,} records")
        parts.append(f"{self.clock() - self.began:.0f} s")
        return f"[{self.label}] " + ", ".join(parts)

    def update(self, done: int | None = None, records: int | None = None, force: bool = False) -> None:
        """Record the new counts; print when the interval has passed (or `force`)."""
        self.done = self.done if done is None else done
        self.records = self.records if records is None else records
        now = self.clock()
        if force or now - self.last >= self.interval:
            self.last = now
            self.write(self.line())


def materialized_in_run(instance: DagsterInstance, tag: tuple[str, str]) -> int:
    """Asset partitions materialised so far by the run carrying `tag` (0 before it starts)."""
    runs = instance.get_runs(RunsFilter(tags={tag[0]: tag[1]}), limit=1)
    if not runs:
        return 0
    records = instance.get_records_for_run(
        runs[0].run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION, limit=100_000
    ).records
    return len(records)


@contextmanager
def watch_run(instance: DagsterInstance, tag: tuple[str, str], progress: Progress, poll: float = 2.0):
    """While the block runs, poll the instance for the tagged run's materialisations and report them."""
    stop = threading.Event()

    def count() -> int | None:
        try:
            return materialized_in_run(instance, tag)
        except Exception as e:  # progress is a courtesy: it must never fail the run it reports on
            progress.write(f"[{progress.label}] progress unavailable: {e!r}")
            stop.set()
            return None

    def poll_loop() -> None:
        while not stop.wait(poll):
            done = count()
            if done is not None:
                progress.update(done=done)

    # An ephemeral instance keeps its storage in an in-memory SQLite database that only its own
    # thread may use: there the count is taken once, when the run is over.
    thread = None if instance.is_ephemeral else threading.Thread(target=poll_loop, name="progress", daemon=True)
    if thread:
        thread.start()
    try:
        yield progress
    finally:
        stop.set()
        if thread:
            thread.join(timeout=poll + 5)
        progress.update(done=count(), force=True)
