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

from iot_assets.tools.instance import end_runs_without_a_process, init_home, prime_run_retry_cursors, process_alive

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


def test_a_run_whose_process_is_gone_is_ended_and_frees_its_pool_slot(tmp_path):
    """A run killed without ending (SIGKILL) kept its slot of the lake writers' pool (limit 1), and
    every later lake-writing run waited for it without end; a run whose process lives is left alone."""
    from dagster import DagsterRun, DagsterRunStatus, MetadataValue
    from dagster._core.events import EngineEventData
    from dagster._core.storage.tags import WILL_RETRY_TAG

    gone = subprocess.Popen(["true"])
    gone.wait()
    with DagsterInstance.local_temp(str(tmp_path)) as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots("delta_lake_writers", 1)
        runs = {}
        for name, pid in (("killed", gone.pid), ("running", os.getpid()), ("no_pid", None)):
            run = instance.add_run(DagsterRun(job_name=name, run_id=uuid.uuid4().hex, status=DagsterRunStatus.STARTED))
            if pid is not None:
                instance.report_engine_event(
                    f"Executing steps in process (pid: {pid})",
                    run,
                    EngineEventData(metadata={"pid": MetadataValue.text(str(pid))}),
                )
            runs[name] = run.run_id
        assert storage.claim_concurrency_slot("delta_lake_writers", runs["killed"], "bronze").is_claimed
        assert not storage.claim_concurrency_slot("delta_lake_writers", runs["running"], "bronze").is_claimed

        done = end_runs_without_a_process(instance)

        assert done == [f"ended run {runs['killed']} (killed, STARTED): its process {gone.pid} is gone"]
        killed = instance.get_run_by_id(runs["killed"])
        assert killed.status == DagsterRunStatus.FAILURE and killed.tags[WILL_RETRY_TAG] == "false"
        assert instance.get_run_by_id(runs["running"]).status == DagsterRunStatus.STARTED
        assert instance.get_run_by_id(runs["no_pid"]).status == DagsterRunStatus.STARTED
        # The slot is free, and the run that waited for it now gets it.
        assert storage.get_concurrency_info("delta_lake_writers").claimed_slots == []
        assert storage.claim_concurrency_slot("delta_lake_writers", runs["running"], "bronze").is_claimed
        assert end_runs_without_a_process(instance) == []


def test_a_shared_instance_is_left_alone():
    """Runs of an instance on PostgreSQL may run on other machines: their pids mean nothing here."""

    class Shared:
        run_storage = object()

        def get_runs(self, *args, **kwargs):
            raise AssertionError("a shared instance's runs were looked at")

    assert end_runs_without_a_process(Shared()) == []


def test_a_reused_pid_is_not_taken_for_the_run_it_was_recorded_for():
    assert process_alive(os.getpid(), time.time())
    # This process started before now: recorded an hour before it started, the pid is someone else's.
    assert not process_alive(os.getpid(), time.time() - 10 * 365 * 86400)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def _processes() -> dict[int, tuple[int, str]]:
    """Every live process: pid -> (parent pid, command line)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z":  # state, ppid, ...
                cmd = (stat.parent / "cmdline").read_bytes()[:160].replace(b"\0", b" ").decode(errors="replace")
                found[int(stat.parent.name)] = (int(fields[1]), cmd)
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    return found


def _tree(root: int) -> dict[int, str]:
    """A process and its descendants: pid -> command line."""
    every, tree, grew = _processes(), {}, True
    if root in every:
        tree[root] = every[root][1]
    while grew:
        grew = False
        for pid, (ppid, cmd) in every.items():
            if ppid in tree and pid not in tree:
                tree[pid], grew = cmd, True
    return tree


@pytest.mark.e2e
@pytest.mark.parametrize(
    "how",
    [
        # A supervisor or a background job; a terminal's Ctrl-C.
        pytest.param("sigterm", id="sigterm-to-the-script-started-with-sigint-ignored"),
        pytest.param("ctrl-c", id="sigint-to-the-process-group"),
    ],
)
def test_dev_script_stops_everything_it_started(tmp_path, local_aws, how):
    """`scripts/dev.sh` (what `make dev` runs), without the producer and the Connect server, on a
    new instance made by `iot-assets instance init`, up to its Dagster UI, with no Dagster warning;
    then one signal stops Dagster and everything else the script started.

    Before: a SIGTERM to the script waited for `dg dev` to end (bash defers a trap while a
    foreground command runs), and `dg dev` started with SIGINT ignored ignored SIGTERM as well.
    """
    home = tmp_path / "dagster_home"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DAGSTER_PORT": str(_free_port()),
        "IOT_DEV_DIR": str(tmp_path / "dev"),
        "IOT_PARTITIONS_START": "2026-11-01-00:00",
        "IOT_DEV_SPARK": "local",
        # Your own catalogue: no simulated producer and no history to seed.
        "IOT_SENSOR_CATALOGUE": str(ROOT / "iot_assets/lib/default_catalogue.yaml"),
        "IOT_BUCKET": f"dev-{uuid.uuid4().hex[:8]}",
    }
    subprocess.run([str(Path(sys.executable).parent / "iot-assets"), "instance", "init"], cwd=ROOT, env=env, check=True)
    log_path = tmp_path / "dev.log"

    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    started: dict[int, str] = {}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [str(ROOT / "scripts/dev.sh")],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=ignore_sigint if how == "sigterm" else None,
        )
        try:
            deadline = time.monotonic() + 240
            while "Serving dagster-webserver" not in log_path.read_text():
                assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(1)
            started.update(_tree(proc.pid))
            assert any("dagster_webserver" in c for c in started.values()), started
            if how == "sigterm":
                os.kill(proc.pid, signal.SIGTERM)
            else:
                os.killpg(proc.pid, signal.SIGINT)
            deadline = time.monotonic() + 90
            alive = lambda: {p: c for p, c in started.items() if p in _processes()}  # noqa: E731
            while alive() and time.monotonic() < deadline:
                time.sleep(1)
            assert alive() == {}, f"still running after 90 s: {alive()}\n{log_path.read_text()[-3000:]}"
            assert proc.wait(timeout=5) == (143 if how == "sigterm" else 130)
        finally:
            for pid in {**started, **_tree(proc.pid)}.keys() & _processes().keys():
                os.kill(pid, signal.SIGKILL)
            proc.wait(timeout=10)
    text = re.sub(r"\x1b\[[0-9;]*m", "", log_path.read_text())
    assert "Dagster services shut down." in text
    # Dagster prints its start-up warnings before the webserver serves.
    warnings = [line for line in text.splitlines() if " - WARNING - " in line or "Warning:" in line]
    assert warnings == [], text
