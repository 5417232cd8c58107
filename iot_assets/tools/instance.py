"""The local Dagster instance `make dev` and `make demo` use: `$DAGSTER_HOME` (`.dagster_home/`).

`iot-assets instance init` copies the checkout's `dagster.yaml` into `$DAGSTER_HOME` when it is new
or changed, and, on a new instance, primes the cursors of Dagster's run-retry daemon.

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
import shutil
from pathlib import Path

from dagster import DagsterInstance
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
    if primed:
        done.append(f"primed {len(primed)} run-retry cursors")
    return done
