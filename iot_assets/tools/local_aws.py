"""The embedded local AWS endpoint: a moto server on 127.0.0.1 with the bucket, stream and alert topic created."""

from __future__ import annotations

import logging
import socket
import time
from urllib.parse import urlparse

from botocore.exceptions import ClientError

from iot_assets import settings
from iot_assets.resources.aws import make_client

LOOPBACK = "127.0.0.1"


def is_listening(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def start_server(port: int):
    """Start moto in a background thread on 127.0.0.1 only; returns the server (call .stop())."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address=LOOPBACK, port=port, verbose=False)
    server.start()
    deadline = time.monotonic() + 15
    while not is_listening(LOOPBACK, port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"moto server did not start on {LOOPBACK}:{port}")
        time.sleep(0.05)
    return server


def ensure_resources(
    endpoint: str | None, region: str, bucket: str, stream: str, shards: int, alert_topic: str = ""
) -> None:
    """Create the bucket, the Kinesis stream and the alert topic if missing; harmless when they exist."""
    s3 = make_client("s3", endpoint, region)
    try:
        kwargs = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=settings.validate_bucket(bucket), **kwargs)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    kinesis = make_client("kinesis", endpoint, region)
    try:
        kinesis.create_stream(StreamName=settings.validate_stream(stream), ShardCount=shards)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
    kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    if alert_topic and not alert_topic.startswith("arn:"):
        # A bare topic name is the local form (see IOT_ALERT_SNS_TOPIC); create_topic is idempotent.
        make_client("sns", endpoint, region).create_topic(Name=alert_topic)


def ensure_from_settings() -> None:
    ensure_resources(
        settings.endpoint_url(),
        settings.get("IOT_AWS_REGION"),
        settings.get("IOT_BUCKET"),
        settings.get("IOT_KINESIS_STREAM"),
        int(settings.get("IOT_KINESIS_SHARDS")),
        settings.get("IOT_ALERT_SNS_TOPIC").strip(),
    )


def local_port() -> int:
    """The port of the configured endpoint, which must be on the loopback interface."""
    endpoint = settings.endpoint_url()
    parsed = urlparse(endpoint or "")
    if parsed.hostname not in ("127.0.0.1", "localhost"):
        raise SystemExit(f"IOT_AWS_ENDPOINT_URL={endpoint!r} is not a local endpoint; local-aws serves 127.0.0.1 only")
    return parsed.port or 80
