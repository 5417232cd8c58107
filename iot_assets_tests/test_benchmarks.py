"""The benchmark harness's bookkeeping (results merge, README table, memory sampling helpers);
the measurements themselves run with `make bench`, never in the tests."""

import json
import os
import subprocess
import sys

import pytest

from benchmarks import run
from benchmarks.common import children, rss_bytes


def _result(name: str, scale: str, ratio: float, met: bool | None) -> dict:
    r = run.measurement(name, scale, {"seconds": 1.5, "step_seconds": {"bronze": 1.0}}, ratio, "a target", met)
    r["load_average_1m_before"] = 0.5
    return r


def test_save_merges_by_name_and_scale_and_rewrites_only_the_table(tmp_path, monkeypatch):
    results, readme = tmp_path / "latest.json", tmp_path / "README.md"
    readme.write_text(f"intro\n{run.TABLE_START}\nold table\n{run.TABLE_END}\noutro\n")
    monkeypatch.setattr(run, "RESULTS", results)
    monkeypatch.setattr(run, "README", readme)

    run.save([_result("backfill", "full", 6.0, True), _result("memory", "full", 0.5, True)])
    run.save([_result("backfill", "full", 4.0, False), _result("backfill", "small", 3.0, False)])

    saved = json.loads(results.read_text())
    assert [(r["name"], r["scale"], r["ratio"], r["met"]) for r in saved] == [
        ("backfill", "full", 4.0, False),
        ("backfill", "small", 3.0, False),
        ("memory", "full", 0.5, True),
    ]
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old table" not in text
    table = text.split(run.TABLE_START)[1].split(run.TABLE_END)[0].strip().splitlines()
    assert len(table) == 2 + 3
    assert "| backfill | full | seconds 1.5 | 4.0 | a target | **no** | 0.5 ->" in table[2]
    assert "step_seconds" not in text  # per-step timings stay in the JSON


def test_unknown_benchmark_is_refused():
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--only", "nonsense"],
        capture_output=True,
        text=True,
        cwd=run.ROOT,
        timeout=60,
    )
    assert proc.returncode == 2 and "unknown benchmark(s): nonsense" in proc.stderr


def test_memory_helpers_read_proc():
    assert rss_bytes(os.getpid()) > 10 * 1024 * 1024
    assert rss_bytes(2**22 + 1) == 0  # above pid_max's default: no such process
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in children(os.getpid())
    finally:
        child.kill()
        child.wait()


def test_the_results_table_lives_in_benchmarks_readme_and_matches_latest_json():
    text = run.README.read_text()
    assert run.README == run.ROOT / "benchmarks" / "README.md" and run.TABLE_START in text and run.TABLE_END in text
    table = text.split(run.TABLE_START)[1].split(run.TABLE_END)[0].strip()
    assert table == run.render(json.loads(run.RESULTS.read_text()))


def _size(devices: int, readings: int, seconds: float, rss: float) -> dict:
    return {
        "devices": devices,
        "readings_per_hour": 3600,
        "raw_records": readings,
        "pipeline_seconds": seconds,
        "step_seconds": {"bronze": seconds / 2},
        "memory": {"peak_driver_rss_gib": rss},
    }


def test_growth_reports_seconds_per_million_readings_and_the_largest_against_the_next_size_down():
    from benchmarks import growth

    sizes = [_size(3000, 10_800_000, 1296.0, 3.5), _size(100, 360_000, 54.0, 1.2), _size(1000, 3_600_000, 360.0, 2.4)]
    f = growth.summarise(sizes, warm_up=_size(100, 360_000, 81.0, 1.1))
    assert f["warm_up_pipeline_seconds"] == 81.0 and f["warm_up_devices"] == 100
    assert [f[f"seconds_per_million_{n}_devices"] for n in (100, 1000, 3000)] == [150.0, 100.0, 120.0]
    assert f["growth_ratio"] == 1.2 and f["smallest_seconds"] == 54.0
    assert f["peak_driver_rss_gib_3000_devices"] == 3.5 and list(f["step_seconds"]) == ["100", "1000", "3000"]
    assert growth.met(f)
    assert not growth.met({**f, "smallest_seconds": 61.0}) and not growth.met({**f, "growth_ratio": 1.21})


def test_a_child_run_is_timed_from_start_to_exit_and_reports_its_last_json_line(tmp_path):
    from benchmarks.common import run_child

    (tmp_path / "in.json").write_text('{"run_seconds": 0.5}')
    done = run_child("json.tool", ["--compact", str(tmp_path / "in.json")], tmp_path / "child.log")
    assert done.reported == {"run_seconds": 0.5} and done.seconds > 0
    with pytest.raises(RuntimeError, match="failed; see"):
        run_child("json.tool", [str(tmp_path / "missing.json")], tmp_path / "failed.log")


def test_steps_on_cores_from_spark_task_timings():
    from benchmarks import cores

    def stage(kind, stage_id, submitted):
        return json.dumps(
            {"Event": kind, "Stage Info": {"Stage ID": stage_id, "Stage Attempt ID": 0, "Submission Time": submitted}}
        )

    def task(stage_id, launched, finished):
        info = {"Launch Time": launched, "Finish Time": finished}
        return json.dumps(
            {"Event": "SparkListenerTaskEnd", "Stage ID": stage_id, "Stage Attempt ID": 0, "Task Info": info}
        )

    log = [
        json.dumps({"Event": "SparkListenerJobStart", "Job ID": 0}),
        stage("SparkListenerStageSubmitted", 0, 100_000),
        task(0, 100_000, 104_000),  # ran 4 s on one core
        task(0, 100_000, 102_000),
        task(0, 102_000, 104_000),  # waited 2 s for a core
        stage("SparkListenerStageCompleted", 0, 100_000),
        stage("SparkListenerStageSubmitted", 1, 106_000),
        task(1, 106_500, 107_500),
    ]
    found = cores.tasks(log)
    assert [(t.submitted, t.launched, t.finished) for t in found][2:] == [(100.0, 102.0, 104.0), (106.0, 106.5, 107.5)]

    steps = cores.steps_on_cores(found, {"bronze": (99.0, 105.0), "silver": (105.0, 109.0)}, cores=2)
    assert steps["bronze"] == {
        "seconds": 6.0,
        "share": 0.6,
        "tasks": 3,
        "task_seconds": 8.0,
        "wait_seconds": 2.0,
        "core_use": 0.67,
    }
    assert steps["silver"]["tasks"] == 1 and steps["silver"]["wait_seconds"] == 0.5
    assert steps["silver"]["core_use"] == 0.12
    assert cores.steps_on_cores(found, {}, cores=2) == {}


def test_the_shape_floor_writes_each_layer_of_the_same_records(spark, tmp_path):
    """`shape_floor` on three raw records (one not JSON): each layer's table holds a row per record
    (gold one per device and hour), and every part is timed."""
    from pyspark.sql import functions as F

    from benchmarks.common import shape_floor

    def envelope(i: int, payload: str) -> str:
        return json.dumps(
            {"arrival_id": f"a{i}", "batch_hour": "2026-11-01T10:00:00Z", "record_index": i}
            | {"payload": payload, "source": "simulator"}
        )

    good = {"device_id": "dev-1", "timestamp": "2026-11-01T10:00:0{}Z", "temperature": 20.5, "status": "ok"}
    raw = tmp_path / "raw.jsonl"
    raw.write_text(
        "\n".join([envelope(i, json.dumps(good).replace("{}", str(i))) for i in range(2)] + [envelope(2, "not json")])
        + "\n"
    )
    seconds = shape_floor(spark, [str(raw)], str(tmp_path / "lake"))
    assert list(seconds) == ["bronze", "silver", "gold", "anomaly_log"] and all(s > 0 for s in seconds.values())
    read = lambda name: spark.read.format("delta").load(str(tmp_path / "lake" / name))  # noqa: E731
    assert [read(t).count() for t in ("bronze", "silver", "anomaly_log")] == [3, 3, 3]
    assert read("gold").where(F.col("device_id") == "dev-1").select("n", "temperature").collect()[0] == (2, 20.5)
