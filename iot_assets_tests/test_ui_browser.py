"""The Dagster UI in a real browser: the webserver on the project, one materialised hour, headless Chromium.

The webserver starts first (it takes a while to load the code location) while the hour is
materialised into its instance. GraphQL gives exact assertions; the browser shows that the UI
renders them. Screenshots go to iot_assets_tests/artifacts/ (gitignored).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from iot_assets.lib.partitions import hour_key
from iot_assets.tools.demo import materialize_hours

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(__file__).parent / "artifacts"
HOUR = datetime(2026, 11, 14, 6, tzinfo=UTC)
WAIT_SECONDS = 240
SILVER_CHECKS = ("check_silver_schema", "check_silver_unique_readings", "check_silver_reconciles_bronze")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, ready, seconds: float = WAIT_SECONDS, every: float = 2.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            value = ready()
            if value:
                return value
        except Exception:  # not up yet: connection refused, page still loading
            pass
        time.sleep(every)
    raise TimeoutError(f"{what} not ready after {seconds:.0f} s")


@pytest.fixture(scope="module")
def chromium():
    """Debian's chromium and chromedriver, installed by the project's script when missing."""
    try:
        done = subprocess.run([str(ROOT / "scripts/ensure_chromium.sh")], capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        pytest.skip("chromium could not be installed: scripts/ensure_chromium.sh took over 15 minutes")
    if done.returncode != 0:
        pytest.skip(f"chromium could not be installed (scripts/ensure_chromium.sh): {done.stderr.strip()[-400:]}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=2600,1800",  # the whole graph (nine groups) in view: nodes off screen are not rendered
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def dagster_home(tmp_path_factory) -> Path:
    """A new instance with `make dev`'s configuration (dagster.yaml: no community dialog)."""
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    return home


@pytest.fixture(scope="module")
def webserver(dagster_home, local_aws):
    """`dagster-webserver` on a free loopback port, in its own process group (torn down whole)."""
    port = _free_port()
    log = open(dagster_home / "webserver.log", "w")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster-webserver"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-m",
            "iot_assets.definitions",
        ],
        cwd=ROOT,
        env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    yield f"http://127.0.0.1:{port}"
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    log.close()


def graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql", data=json.dumps({"query": query}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.load(response)
    assert "errors" not in body, body["errors"]
    return body["data"]


@pytest.fixture(scope="module")
def materialised(webserver, dagster_home, resources):
    """One hour through raw, bronze, silver and one gold table, in the webserver's instance."""
    from dagster import AssetSelection, DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    selection = AssetSelection.groups("raw", "bronze", "silver") | AssetSelection.assets("device_hourly_stats")
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home))) as instance:
        result = materialize_hours(HOUR, HOUR, instance=instance, selection=selection)
    assert result.success
    _wait("the webserver's code location", lambda: graphql(webserver, "{ assetNodes { id } }")["assetNodes"])
    return result


def _all_keys() -> set[str]:
    from iot_assets.definitions import defs

    return {k.to_user_string() for k in defs.get_repository_def().asset_graph.get_all_asset_keys()}


def test_materialisation_metadata_is_uniform(materialised):
    """Every Delta asset reports the same core entries; set-aside rows by reason; lineage where natural."""
    core = {
        "dagster/partition_row_count",
        "dagster/uri",
        "dagster/column_schema",
        "delta_version",
        "spark_seconds",
        "partition_start",
        "partition_end",
    }
    for node in ("bronze", "silver", "device_hourly_stats"):
        for mat in materialised.asset_materializations_for_node(node):
            assert core <= set(mat.metadata), (mat.asset_key, core - set(mat.metadata))
            assert mat.metadata["partition_start"].value == HOUR.isoformat()
    by_key = {
        m.asset_key.to_user_string(): m.metadata
        for n in ("bronze", "silver", "device_hourly_stats")
        for m in materialised.asset_materializations_for_node(n)
    }
    quarantine = by_key["bronze_quarantine"]
    assert sum(quarantine["rows_by_reason"].value.values()) == quarantine["dagster/partition_row_count"].value > 0
    lineage = by_key["silver_sensor_readings"]["dagster/column_lineage"].value.deps_by_column
    assert {(d.asset_key.to_user_string(), d.column_name) for d in lineage["site"]} == {("device_registry", "site")}
    assert ("bronze_sensor_readings", "temperature") in {
        (d.asset_key.to_user_string(), d.column_name) for d in lineage["temperature_avg_5min"]
    }
    stats = by_key["device_hourly_stats"]["dagster/column_lineage"].value.deps_by_column
    assert [d.column_name for d in stats["stddev_battery_level"]] == ["battery_level"]


def test_webserver_serves_every_asset_and_the_partition_with_its_checks(materialised, webserver):
    nodes = graphql(webserver, "{ assetNodes { assetKey { path } owners { ... on TeamAssetOwner { team } } } }")
    assert {"/".join(n["assetKey"]["path"]) for n in nodes["assetNodes"]} == _all_keys()
    assert all(n["owners"] for n in nodes["assetNodes"])
    silver = graphql(
        webserver,
        f"""{{ assetNodes(assetKeys: [{{path: ["silver_sensor_readings"]}}]) {{
        assetMaterializations(partitions: ["{hour_key(HOUR)}"]) {{ partition runId }}
        assetChecksOrError {{ ... on AssetChecks {{ checks {{ name
            executionForLatestMaterialization {{ status partition }} }} }} }} }} }}""",
    )["assetNodes"][0]
    assert [m["partition"] for m in silver["assetMaterializations"]] == [hour_key(HOUR)]
    checks = {c["name"]: c["executionForLatestMaterialization"] for c in silver["assetChecksOrError"]["checks"]}
    assert set(SILVER_CHECKS) == set(checks)
    assert all(checks[c] and checks[c]["status"] == "SUCCEEDED" for c in SILVER_CHECKS), checks


def _node_labels(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, "[class*='AssetNode_assetName']") if e.text]


def _shown(key: str, label: str) -> bool:
    """The graph shortens long names to `start…end` when zoomed out."""
    head, _, tail = label.partition("…")
    return label == key or (bool(tail) and key.startswith(head) and key.endswith(tail))


def _check_labels(text: str) -> dict[str, str]:
    """Each check's status as the Checks tab lists it: the line after the check's name."""
    lines = text.splitlines()
    return {c: lines[lines.index(c) + 1] for c in SILVER_CHECKS if c in lines[:-1]}


def test_browser_shows_the_asset_graph_and_the_partition_checks(materialised, webserver, chromium):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    ARTIFACTS.mkdir(exist_ok=True)
    keys = _all_keys()
    chromium.get(f"{webserver}/asset-groups")
    # With many groups the graph opens with every group collapsed: wait for asset or group nodes.
    graph = "[class*='AssetNode_'], [class*='CollapsedGroupNode_'], [class*='ExpandedGroupNode_']"
    _wait("the asset graph", lambda: chromium.find_elements(By.CSS_SELECTOR, graph), 120, 1)
    for skip in chromium.find_elements(By.XPATH, "//button[normalize-space()='Skip']"):
        skip.click()  # the first-visit community dialog
    # Groups start collapsed; Alt+E is the UI's own "expand all groups".
    ActionChains(chromium).key_down(Keys.ALT).send_keys("e").key_up(Keys.ALT).perform()

    def expanded():
        for late in chromium.find_elements(By.XPATH, "//button[normalize-space()='Skip']"):
            late.click()  # the dialog can open after the graph did
        # Any group still collapsed (Alt+E may land before the graph listens) opens on a click.
        for box in chromium.find_elements(By.CSS_SELECTOR, "[class*='CollapsedGroupNode_collapsedGroupNodeBox']"):
            try:
                box.click()
            except Exception:  # re-rendered under the pointer: the next round finds it again
                pass
        got = _node_labels(chromium)
        if len(got) < len(keys):  # nodes outside the view are not rendered: zoom out one step
            for icon in chromium.find_elements(By.CSS_SELECTOR, "[aria-label='zoom_out']")[:1]:
                try:
                    icon.click()
                except Exception:
                    pass
        return got if len(got) >= len(keys) else None

    try:
        labels = _wait("every asset node", expanded, 90, 2)
    finally:
        chromium.save_screenshot(str(ARTIFACTS / "asset_graph.png"))
    assert len(labels) == len(keys), labels
    assert all(sum(_shown(k, label) for label in labels) == 1 for k in keys), (sorted(keys), labels)

    # The hour's page shows its materialisation metadata; the Checks tab, each check's latest result.
    body = lambda: chromium.find_element(By.TAG_NAME, "body").text  # noqa: E731
    chromium.get(f"{webserver}/assets/silver_sensor_readings?view=partitions&partition={hour_key(HOUR)}")
    _wait("the partition's metadata", lambda: "delta_version" in body() and "partition_start" in body(), 120, 1)
    assert "Materialized (1)" in body() and HOUR.isoformat() in body()
    chromium.save_screenshot(str(ARTIFACTS / "silver_partition.png"))
    chromium.get(f"{webserver}/assets/silver_sensor_readings?view=checks")
    try:
        labels = _wait(
            "the checks' results",
            lambda: (
                lambda got: (
                    got if all(got.get(c) not in (None, "In Progress", "Running") for c in SILVER_CHECKS) else None
                )
            )(_check_labels(body())),
            120,
            1,
        )
    finally:
        chromium.save_screenshot(str(ARTIFACTS / "silver_checks.png"))
        (ARTIFACTS / "silver_checks.txt").write_text(body())
    assert all(labels[c] == "Succeeded" for c in SILVER_CHECKS), labels


# make dev's first start: a day of history through gold, then the anomaly group. At the third
# hour every device is still learning; at the last, every device has a day of history.
SEED_FIRST = datetime(2026, 11, 15, 0, tzinfo=UTC)
SEED_LEARNING = SEED_FIRST + timedelta(hours=3)
SEED_LAST = SEED_FIRST + timedelta(hours=25)


@pytest.fixture(scope="module")
def first_start(webserver, dagster_home, resources, spark):
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    from iot_assets import settings
    from iot_assets.automation.jobs import ANOMALY_DETECTION
    from iot_assets.resources.config import resolved
    from iot_assets.resources.io_managers import S3KinesisRawIOManager
    from iot_assets.tools.demo import land_history

    with DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home))) as instance:
        assert land_history(SEED_FIRST, SEED_LAST, instance).success  # the anomaly group for SEED_LAST too
        # History is stored, not sent to Kinesis: the live sensor would read it into the current hour.
        raw_io = S3KinesisRawIOManager(aws=resolved("aws"), bucket=settings.get("IOT_BUCKET"))
        s3 = raw_io.aws.s3
        for o in raw_io.hour_objects(SEED_FIRST):
            lines = gzip.decompress(s3.get_object(Bucket=raw_io.bucket, Key=o.key)["Body"].read()).splitlines()
            assert lines and not any(json.loads(line)["kinesis_sequence_number"] for line in lines), o.key
        selection = ANOMALY_DETECTION
        assert materialize_hours(
            SEED_LEARNING, SEED_LEARNING, instance=instance, include_registry=False, selection=selection
        ).success
    return resources


def test_after_a_day_of_history_every_device_has_a_model_and_none_alerts_while_learning(first_start, spark):
    from iot_assets.lib.tables import named
    from iot_assets.resources.config import resolved

    lake = resolved("lake")
    models = lake.read(spark, named("device_anomaly_models"))
    status = lambda h: {r["status"] for r in models.where(f"event_hour = '{h:%Y-%m-%d %H:%M:%S}'").collect()}  # noqa: E731
    assert status(SEED_LEARNING) == {"learning"}
    assert status(SEED_LAST) == {"trained"}
    log = lake.read(spark, named("anomaly_log"))
    learning_hour = log.where(f"event_hour = '{SEED_LEARNING:%Y-%m-%d %H:%M:%S}'")
    # A learning device is flagged only by the fixed threshold rules, and no incident opens on anything else.
    assert {r["method"] for r in learning_hour.select("method").distinct().collect()} <= {"threshold"}
    incidents = lake.read(spark, named("anomaly_incidents")).where(f"event_hour = '{SEED_LEARNING:%Y-%m-%d %H:%M:%S}'")
    assert all(set(r["methods"].split(",")) <= {"threshold"} for r in incidents.collect())


def test_browser_shows_trained_models_after_the_first_start(first_start, webserver, chromium):
    from selenium.webdriver.common.by import By

    ARTIFACTS.mkdir(exist_ok=True)
    body = lambda: chromium.find_element(By.TAG_NAME, "body").text  # noqa: E731
    chromium.get(f"{webserver}/assets/device_anomaly_models?view=partitions&partition={hour_key(SEED_LAST)}")
    try:
        _wait("the models' metadata", lambda: "devices_trained" in body(), 120, 1)
    finally:
        chromium.save_screenshot(str(ARTIFACTS / "models_partition.png"))
        (ARTIFACTS / "models_partition.txt").write_text(body())
    devices = int(os.environ["IOT_DEVICE_COUNT"])
    assert re.search(rf"devices_trained\s+{devices}\b", body()), body()
    assert re.search(r"devices_learning\s+0\b", body()), body()
