"""The local Dagster instance: `iot-assets instance init`, and `make dev` starting without a Dagster warning."""

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from dagster import AssetMaterialization, DagsterInstance
from dagster._daemon.auto_run_reexecution.event_log_consumer import DAGSTER_EVENT_TYPES, _fetch_persisted_cursors

from iot_assets.tools.instance import init_home, prime_run_retry_cursors

ROOT = Path(__file__).resolve().parents[1]


def test_primed_cursors_silence_the_run_retry_daemon_and_keep_its_position(tmp_path, caplog):
    """Fails loudly if a Dagster upgrade renames the daemon's cursors: it would then warn again."""
    with DagsterInstance.local_temp(str(tmp_path)) as instance:
        logger = logging.getLogger("run-retry-test")
        with caplog.at_level(logging.WARNING, logger="run-retry-test"):
            assert set(_fetch_persisted_cursors(instance, DAGSTER_EVENT_TYPES, logger).values()) == {None}
        mine = lambda: [r for r in caplog.records if r.name == "run-retry-test"]  # noqa: E731
        assert len(mine()) == len(DAGSTER_EVENT_TYPES)  # what a new instance prints
        caplog.clear()
        instance.report_runless_asset_event(AssetMaterialization("first"))
        newest = instance.event_log_storage.get_maximum_record_id()
        assert set(prime_run_retry_cursors(instance).values()) == {str(newest)}
        with caplog.at_level(logging.WARNING, logger="run-retry-test"):
            assert set(_fetch_persisted_cursors(instance, DAGSTER_EVENT_TYPES, logger).values()) == {newest}
        assert mine() == []
        instance.report_runless_asset_event(AssetMaterialization("second"))
        assert prime_run_retry_cursors(instance) == {}  # cursors the daemon holds are never moved


def test_init_copies_the_configuration_when_it_changes(tmp_path):
    config, home = tmp_path / "dagster.yaml", tmp_path / "home"
    config.write_text((ROOT / "dagster.yaml").read_text())
    done = init_home(home, config)
    assert done[0].startswith("copied") and done[1] == f"primed {len(DAGSTER_EVENT_TYPES)} run-retry cursors"
    assert (home / "dagster.yaml").read_text() == config.read_text()
    assert init_home(home, config) == []  # nothing to do the second time
    config.write_text(config.read_text() + "\n# a local change\n")
    assert init_home(home, config) == [f"copied {config} to {home / 'dagster.yaml'}"]
    assert (home / "dagster.yaml").read_text().endswith("# a local change\n")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.e2e
def test_dev_starts_dagster_without_a_warning(tmp_path, local_aws):
    """The command `scripts/dev.sh` ends with, on a new instance made by `iot-assets instance init`.

    The raw source is the simulator and the bucket is new and empty, so the sensors the daemon starts
    find nothing to run. Dagster prints its start-up warnings before the webserver serves.
    """
    home = tmp_path / "dagster_home"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "IOT_RAW_SOURCE": "simulator",
        "IOT_BUCKET": f"dev-{uuid.uuid4().hex[:8]}",
        "PYTHONWARNINGS": "ignore::Warning:dagster.components.scaffold.scaffold",
    }
    bin_dir = Path(sys.executable).parent
    subprocess.run([str(bin_dir / "iot-assets"), "instance", "init"], cwd=ROOT, env=env, check=True)
    log_path = tmp_path / "dev.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [str(bin_dir / "dg"), "dev", "--host", "127.0.0.1", "--port", str(_free_port())]
            + ["-w", str(ROOT / "workspace.yaml")],
            cwd=home,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 240
            while "Serving dagster-webserver" not in log_path.read_text():
                assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(1)
            time.sleep(5)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
    text = re.sub(r"\x1b\[[0-9;]*m", "", log_path.read_text())
    assert "Launching Dagster services" in text
    warnings = [line for line in text.splitlines() if " - WARNING - " in line or "Warning:" in line]
    assert warnings == [], text


def test_a_resource_resolved_inside_an_instance_leaves_no_closed_instance_current(tmp_path):
    """`resolved()` once left its resource's ephemeral instance open until the garbage collector freed
    it; freeing it made an instance the caller had since closed Dagster's current one again, at a
    random later moment, and the next `materialize()` failed with 'Attempted to resolve undefined
    DagsterInstance weakref' (in CI, one or two e2e files in about one run in two)."""
    import gc

    from dagster import asset, materialize
    from dagster._core.storage.defs_state.base import DefsStateStorage

    from iot_assets.resources.config import resolved

    @asset
    def probe() -> int:
        return 1

    with DagsterInstance.local_temp(str(tmp_path)) as instance:  # one with a defs-state storage, as make dev's
        assert instance.defs_state_storage is not None
        kept = [resolved(name) for name in ("aws", "lake", "raw_source", "threshold_rules", "anomaly_config")]
        assert DefsStateStorage.get() is instance.defs_state_storage
    del instance, kept
    gc.collect()
    assert DefsStateStorage.get() is None, "a closed instance is still Dagster's current one"
    assert materialize([probe], instance=DagsterInstance.ephemeral()).success
