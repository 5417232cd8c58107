"""`iot-assets`: run the local AWS endpoint, and a headless demo of the pipeline."""

from __future__ import annotations

import argparse
import signal
import sys
import threading


def cmd_local_aws(args: argparse.Namespace) -> int:
    from iot_assets import local_aws

    port = local_aws.local_port()
    if local_aws.is_listening(local_aws.LOOPBACK, port):
        print(f"something already listens on {local_aws.LOOPBACK}:{port}; making sure the bucket and stream exist")
        local_aws.ensure_from_settings()
        return 0
    server = local_aws.start_server(port)
    local_aws.ensure_from_settings()
    print(f"local AWS (moto) on http://{local_aws.LOOPBACK}:{port}: S3, Kinesis, SNS, SQS, CloudWatch. Ctrl-C stops it.",
          flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1):
            pass
    except KeyboardInterrupt:
        pass
    server.stop()
    return 0


def cmd_jars(args: argparse.Namespace) -> int:
    """Start Spark once so the Delta and s3a jars land in the Ivy cache."""
    import time

    from iot_assets.resources.spark import SPARK_PACKAGES, get_or_create_session, spark_conf

    began = time.monotonic()
    session = get_or_create_session(spark_conf("local[1]", None, "us-east-1", 1, "512m"))
    session.range(1).count()
    session.stop()
    print(f"Spark jars ready ({', '.join(SPARK_PACKAGES)}) in {time.monotonic() - began:.1f} s")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from iot_assets.demo import run_demo

    return run_demo(hours=args.hours)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="iot-assets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("local-aws", help="run the local AWS endpoint (moto) on 127.0.0.1 in the foreground") \
        .set_defaults(func=cmd_local_aws)
    sub.add_parser("jars", help="download the Spark jars into the Ivy cache (first run only)").set_defaults(func=cmd_jars)
    demo = sub.add_parser("demo", help="materialise the last complete hours end to end and print row counts")
    demo.add_argument("--hours", type=int, default=3)
    demo.set_defaults(func=cmd_demo)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
