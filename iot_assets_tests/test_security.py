"""Nothing leaks and nothing escapes: a planted secret appears in no output, S3 keys and table paths
come only from validated parts, settings that are paths or URLs are validated, and the local AWS
endpoint listens on 127.0.0.1 only."""

import json
import re
import subprocess
import threading
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import pytest
from dagster import DagsterInstance, Definitions, EnvVar, build_sensor_context, materialize
from dagster._serdes import serialize_value

from iot_assets import settings
from iot_assets.alerts.sensors import run_failure_alert_sensor
from iot_assets.alerts.sinks import AlertSinks
from iot_assets.lib.partitions import hour_key, raw_key
from iot_assets.resources.aws import AwsResource
from iot_assets.resources.lakehouse import DeltaLakehouse, window_predicate
from iot_assets.resources.landing import LandingZone

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ validated paths and URLs


@pytest.mark.parametrize(
    "build",
    [
        lambda: raw_key("../raw", datetime(2026, 11, 10, tzinfo=UTC)),
        lambda: raw_key("raw/../../x", datetime(2026, 11, 10, tzinfo=UTC)),
        lambda: DeltaLakehouse(bucket="iot-lakehouse", prefix="lake").uri("../silver"),
        lambda: DeltaLakehouse(bucket="iot-lakehouse", prefix="lake/../other").uri("silver_sensor_readings"),
        lambda: DeltaLakehouse(bucket="Bad_Bucket", prefix="lake").uri("silver_sensor_readings"),
        lambda: window_predicate("event_hour OR 1=1", datetime(2026, 11, 10), datetime(2026, 11, 11)),
        lambda: LandingZone(aws=AwsResource(), prefix="landing/../raw").objects(),
        lambda: settings.validate_stream("stream/../x"),
    ],
    ids=[
        "raw_prefix_dotdot",
        "raw_prefix_nested_dotdot",
        "table_name",
        "lake_prefix",
        "bucket",
        "sql_column",
        "landing_prefix",
        "stream",
    ],
)
def test_keys_and_paths_are_built_only_from_validated_parts(build):
    with pytest.raises(ValueError):
        build()


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "http://user:pw@ui.example", "ftp://ui.example", "http://ui.example/?next=evil", "/runs"],
)
def test_ui_url_is_validated(url):
    with pytest.raises(ValueError):
        settings.validate_link_base(url)


@pytest.mark.parametrize("url", ["http://hooks.slack.example/services/T/B/x", "file:///etc/passwd"])
def test_webhook_must_be_https_and_the_error_does_not_repeat_it(url):
    sinks = AlertSinks(aws=AwsResource(), slack_webhook_url=url)
    with pytest.raises(ValueError) as err:
        sinks.post_slack(None)
    assert url not in str(err.value) and "IOT_ALERT_SLACK_WEBHOOK_URL" in str(err.value)


def test_local_aws_listens_on_loopback_only(local_aws):
    port = urlparse(local_aws).port
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                listening.append(address)
    assert listening == ["0100007F"]  # 127.0.0.1, and no IPv6 socket


# ------------------------------------------------------------------ a planted secret appears nowhere


class _SlackCatcher(BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        self.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):  # keep the test's output to what the product prints
        pass


@pytest.fixture()
def slack():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlackCatcher)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    _SlackCatcher.bodies = []
    yield server.server_address[1], _SlackCatcher.bodies
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


SECRET_HOUR = datetime(2026, 11, 19, 5, tzinfo=UTC)


def test_a_planted_secret_appears_in_no_output(resources, slack, monkeypatch, tmp_path, capfd, caplog):
    from iot_assets.definitions import defs, executable_assets

    canary = f"CANARY{uuid.uuid4().hex}"
    port, received = slack
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", f"aws-{canary}")
    monkeypatch.setenv("IOT_ALERT_SLACK_WEBHOOK_URL", f"http://127.0.0.1:{port}/services/T0/B0/{canary}")
    sinks = AlertSinks(
        aws=defs.resources["aws"],
        sns_topic="iot-alerts",
        metrics_namespace="",
        slack_webhook_url=EnvVar("IOT_ALERT_SLACK_WEBHOOK_URL"),
        ui_url="http://127.0.0.1:3000",
    )
    res = {**defs.resources, "alert_sinks": sinks}
    alert_defs = Definitions(assets=executable_assets, sensors=[run_failure_alert_sensor], resources=res)
    (tmp_path / "home").mkdir()
    instance = DagsterInstance.local_temp(str(tmp_path / "home"))
    try:

        def tick(cursor):
            with build_sensor_context(
                instance=instance, cursor=cursor, definitions=alert_defs, resources={"alert_sinks": sinks}
            ) as context:
                return run_failure_alert_sensor.evaluate_tick(context).cursor

        cursor = tick(None)
        # A simulated hour: published to Kinesis, backed up to S3, with its metadata in the event log.
        ok = materialize(
            executable_assets,
            selection=["raw_sensor_batches"],
            partition_key=hour_key(SECRET_HOUR),
            instance=instance,
            resources=res,
        )
        # An unknown raw source fails its run: the run-failure alert goes to SNS and Slack.
        failed = materialize(
            executable_assets,
            selection=["raw_sensor_batches"],
            partition_key=hour_key(SECRET_HOUR),
            instance=instance,
            resources=res,
            raise_on_error=False,
            run_config={"resources": {"raw_source": {"config": {"source": "kafka"}}}},
        )
        assert ok.success and not failed.success
        tick(cursor)
        assert received and b"raw_sensor_batches" in received[0]  # the alert went out

        outputs = {"slack bodies": b"".join(received).decode(errors="replace")}
        for run in (ok, failed):
            record = instance.get_run_by_id(run.run_id)
            outputs[f"run config and tags {run.run_id}"] = json.dumps([record.run_config, record.tags], default=str)
            outputs[f"event log {run.run_id}"] = "\n".join(serialize_value(e) for e in instance.all_logs(run.run_id))
        for path in (tmp_path / "home").rglob("*"):  # compute logs, event and run storage
            if path.is_file():
                outputs[str(path)] = path.read_bytes().decode(errors="replace")
        captured = capfd.readouterr()
        outputs.update(stdout=captured.out, stderr=captured.err, logging=caplog.text)
        assert len(outputs) > 6
        leaks = [name for name, text in outputs.items() if canary in text]
        assert not leaks
    finally:
        instance.dispose()


# Shapes of real credentials: AWS access key ids and secrets, Slack webhooks, private keys.
SECRET_SHAPES = re.compile(
    r"AKIA[0-9A-Z]{16}|aws_secret_access_key\s*[=:]\s*['\"]?[A-Za-z0-9/+=]{40}"
    r"|hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+|-----BEGIN [A-Z ]*PRIVATE KEY-----"
)


def test_no_tracked_file_holds_a_credential():
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=30)
    hits = []
    for name in tracked.stdout.decode().split("\0"):
        path = REPO / name
        if name and path.is_file() and path.stat().st_size < 5_000_000:
            if SECRET_SHAPES.search(path.read_bytes().decode(errors="replace")):
                hits.append(name)
    assert not hits
