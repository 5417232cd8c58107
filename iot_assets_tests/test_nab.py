"""The NAB scorer reproduces NAB's published per-file scores of its reference detectors."""

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from iot_assets.lib import nab

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nab"
FILES = {
    "ambient": "ambient_temperature_system_failure.csv",
    "ec2": "ec2_request_latency_system_failure.csv",
    "cpu": "cpu_utilization_asg_misconfiguration.csv",
    "occupancy": "occupancy_6005.csv",
}
# NAB's published standard-profile scores on these files, as quoted in issue 16
PUBLISHED = {
    "ARTime": {"ambient": 91.4, "ec2": 73.2, "cpu": 37.1, "occupancy": 68.0},
    "numenta": {"ambient": 31.0, "ec2": 78.4, "cpu": 37.2, "occupancy": 93.1},
}


@pytest.mark.skipif(not DATA.exists(), reason="NAB data lives outside the repository")
@pytest.mark.parametrize("detector,file", [(d, f) for d in PUBLISHED for f in FILES])
def test_reproduces_reference_detector_scores(detector, file):
    threshold = json.loads((DATA / "detector_results" / "thresholds.json").read_text())[detector]["standard"][
        "threshold"
    ]
    times, scores = nab.read_reference(DATA / "detector_results" / f"{detector}_{FILES[file]}")
    result = nab.score(
        times, [s >= threshold for s in scores], nab.read_windows(DATA / "anomaly_windows.json", FILES[file])
    )
    assert result.normalised == pytest.approx(PUBLISHED[detector][file], abs=0.05)


def _series(n=200):
    t0 = datetime(2026, 1, 1)
    return [t0 + timedelta(minutes=5 * i) for i in range(n)]


def test_null_and_perfect_detectors_score_0_and_100():
    times = _series()
    windows = [(times[100], times[119]), (times[150], times[159])]
    assert nab.score(times, [False] * 200, windows).normalised == 0
    perfect = [i in (100, 150) for i in range(200)]
    result = nab.score(times, perfect, windows)
    assert result.normalised == pytest.approx(100)
    assert result.latencies == [timedelta(0), timedelta(0)]


def test_only_the_first_detection_in_a_window_counts_and_later_ones_are_free():
    times = _series()
    windows = [(times[100], times[119])]
    early = nab.score(times, [i == 105 for i in range(200)], windows)
    early_and_more = nab.score(times, [i in (105, 110, 115) for i in range(200)], windows)
    assert early.raw == early_and_more.raw
    assert early.latencies == [timedelta(minutes=25)]
    late = nab.score(times, [i == 118 for i in range(200)], windows)
    assert 0 < late.raw < early.raw


def test_false_positives_cost_less_just_after_a_window_and_nothing_in_probation():
    times = _series()
    windows = [(times[100], times[119])]
    base = nab.score(times, [i == 100 for i in range(200)], windows).raw
    just_after = nab.score(times, [i in (100, 121) for i in range(200)], windows).raw - base
    far_after = nab.score(times, [i in (100, 199) for i in range(200)], windows).raw - base
    before = nab.score(times, [i in (100, 60) for i in range(200)], windows).raw - base
    in_probation = nab.score(times, [i in (100, 10) for i in range(200)], windows).raw - base
    assert before == pytest.approx(-0.11)
    assert -0.11 < far_after < just_after < 0
    assert in_probation == 0


def test_detections_at_marks_the_first_reading_at_or_after_each_alarm():
    times = _series(5)
    assert nab.detections_at(times, [times[1] + timedelta(minutes=1), times[4]]) == [False, False, True, False, True]


def test_operator_scores_on_readings_and_on_incident_openings():
    from iot_assets.tools.evaluation import operator_scores

    times = _series()
    windows = [(times[100], times[119])]
    flagged = {times[i] for i in (105, 106, 107, 60)}
    result = operator_scores(times, flagged, [times[105], times[60]], windows)
    assert result["windows_hit_by_incidents"] == 1 and result["false_incidents"] == 1
    assert result["point_precision"] == 0.75 and result["point_recall"] == 0.15
    assert result["miss_rate"] == 0.85 and result["false_alarm_rate"] == round(1 / 180, 4)
    assert result["latency_hours"] == [round(25 / 60, 1)]
    assert result["nab_score_incidents"] == result["nab_score_flagged"]  # later flags in a window are free
    assert operator_scores(times, set(), [], windows)["nab_score_incidents"] == 0


def test_incident_scores_count_true_incidents_found_events_and_coverage():
    from iot_assets.tools.evaluation import incident_scores

    t = _series(20)
    events = {"e1": {("d1", t[i]) for i in range(5, 10)}, "e2": {("d2", t[15])}}
    spans = [("d1", t[6], t[8]), ("d1", t[12], t[13]), ("d3", t[15], t[15])]
    got = incident_scores(spans, events)
    assert got == {
        "incidents": 3,
        "incident_precision": round(1 / 3, 4),
        "event_recall": 0.5,
        "labelled_points_in_incidents": 0.5,
    }
    # e1, a level shift, is covered for 3 of its 5 readings; e2, a spike, is missed.
    got = incident_scores(spans, events, {"e1": "level_shift", "e2": "spike"})
    assert got["coverage_by_kind"] == {"level_shift": 0.6, "spike": 0.0}
    assert got["sustained_points_in_incidents"] == 0.6


def test_the_nab_catalogue_imports_a_nab_csv_as_one_channel(tmp_path):
    from iot_assets.lib.catalogue import ROLES, load_catalogue
    from iot_assets.tools import importer
    from iot_assets.tools.evaluation import NAB_CATALOGUE

    catalogue = load_catalogue(NAB_CATALOGUE)
    assert catalogue.names == ("nab_value",) and catalogue.threshold_rules == ()
    assert catalogue.channel("nab_value").roles == ROLES
    path = tmp_path / "x.csv"
    path.write_text("timestamp,value\n2014-04-10 00:00:00,15000\n2014-04-10 01:00:00,-3.5\n")
    rows = importer.read_history(path, catalogue, timestamp_column="timestamp", device="nab-x").rows
    importer.retime(rows, catalogue.record.timestamp, scale=60)  # an hourly series: a reading a minute
    assert [r.record for r in rows] == [
        {"device_id": "nab-x", "timestamp": "2014-04-10T00:00:00.000Z", "value": 15000.0, "status": "normal"},
        {"device_id": "nab-x", "timestamp": "2014-04-10T00:01:00.000Z", "value": -3.5, "status": "normal"},
    ]


@pytest.mark.skipif(not DATA.exists(), reason="NAB data lives outside the repository")
def test_every_nab_reading_is_inside_the_nab_channels_range():
    from iot_assets.lib.catalogue import load_catalogue
    from iot_assets.tools.evaluation import NAB_CATALOGUE, nab_readings, nab_windows

    low, high = load_catalogue(NAB_CATALOGUE).channel("nab_value").valid_range
    assert list(nab_windows(DATA)) == list(FILES.values())
    for name in FILES.values():
        assert all(low <= v <= high for _, v in nab_readings(DATA / name)), name


def test_evaluate_runs_nab_in_a_process_whose_catalogue_is_the_nab_one(monkeypatch):
    import argparse
    import subprocess

    from iot_assets.tools import cli
    from iot_assets.tools.evaluation import NAB_CATALOGUE, evaluate_nab_file

    with pytest.raises(RuntimeError, match="IOT_SENSOR_CATALOGUE"):
        evaluate_nab_file(FILES["occupancy"], DATA)  # this process has the shipped catalogue
    seen = {}

    def run(argv, env, check):
        seen.update(argv=argv, env=env)
        Path(argv[argv.index("--out") + 1]).write_text(json.dumps({"nab": {FILES["occupancy"]: {"windows": 1}}}))

    monkeypatch.setattr(subprocess, "run", run)
    args = argparse.Namespace(nab_dir=None, nab_files=FILES["occupancy"], nab_speedup=5)
    assert cli.evaluate_nab_in_child(args) == {FILES["occupancy"]: {"windows": 1}}
    argv = seen["argv"]
    assert argv[1:6] == ["-m", "iot_assets.tools.cli", "evaluate", "--source", "nab"]
    assert argv[8:] == ["--nab-files", FILES["occupancy"], "--nab-speedup", "5"]
    assert seen["env"]["IOT_SENSOR_CATALOGUE"] == str(NAB_CATALOGUE)


def test_evaluate_refuses_the_simulator_under_another_catalogue(monkeypatch, capsys):
    from iot_assets.lib import catalogue
    from iot_assets.tools.cli import main
    from iot_assets.tools.evaluation import NAB_CATALOGUE

    monkeypatch.setattr(catalogue, "active", lambda: catalogue.load_catalogue(NAB_CATALOGUE))
    assert main(["evaluate", "--source", "simulator"]) == 2
    assert "shipped catalogue" in capsys.readouterr().err
