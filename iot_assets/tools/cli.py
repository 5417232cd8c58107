"""`iot-assets`: run the local AWS endpoint, a local SQL historian, and a headless demo of the pipeline."""

from __future__ import annotations

import argparse
import signal
import sys
import threading


def cmd_local_aws(args: argparse.Namespace) -> int:
    from iot_assets.tools import local_aws

    port = local_aws.local_port()
    if local_aws.is_listening(local_aws.LOOPBACK, port):
        print(f"something already listens on {local_aws.LOOPBACK}:{port}; making sure the bucket and stream exist")
        local_aws.ensure_from_settings()
        return 0
    server = local_aws.start_server(port)
    local_aws.ensure_from_settings()
    print(
        f"local AWS (moto) on http://{local_aws.LOOPBACK}:{port}: S3, Kinesis, SNS, SQS, CloudWatch. Ctrl-C stops it.",
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1):
            pass
    except KeyboardInterrupt:
        pass
    server.stop()
    return 0


def cmd_connect_server(args: argparse.Namespace) -> int:
    """Spark's own Connect server for the local stack, in the foreground; runs reach it with
    IOT_SPARK_REMOTE (deployments/connect/README.md)."""
    from pathlib import Path

    from iot_assets.resources.config import resolved
    from iot_assets.tools import connect_server

    server = connect_server.start(resolved("spark").conf(), args.port, Path(args.log))
    print(f"Spark Connect on {server.url} (log: {args.log}); export IOT_SPARK_REMOTE={server.url}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1) and server.process.poll() is None:
            pass
    except KeyboardInterrupt:
        pass
    server.stop()
    return 0 if server.process.returncode in (0, -15, 143) else 1


def parse_duration(text: str) -> float:
    """Seconds from `90`, `90s`, `15m` or `2h`; 0 means until stopped."""
    text = text.strip().lower()
    scale = {"s": 1, "m": 60, "h": 3600}.get(text[-1:], None)
    value = float(text[:-1] if scale else text) * (scale or 1)
    if value < 0:
        raise argparse.ArgumentTypeError(f"duration must not be negative: {text!r}")
    return value


def cmd_simulate(args: argparse.Namespace) -> int:
    """Send the simulated fleet's readings to Kinesis as they happen, until Ctrl-C or --duration."""
    from iot_assets import settings
    from iot_assets.lib.catalogue import active

    if not active().simulated:
        print(
            f"iot-assets simulate: the simulated fleet has the shipped catalogue's channels, not those of "
            f"{active().path} (IOT_SENSOR_CATALOGUE); send your own records, or use `iot-assets import` "
            "(or give each of its channels a `simulate` block)",
            file=sys.stderr,
        )
        return 2
    from iot_assets.lib.partitions import last_complete_hours
    from iot_assets.resources.aws import make_client
    from iot_assets.tools.progress import Progress
    from iot_assets.tools.simulator import FleetConfig
    from iot_assets.tools.simulator.live import land_hours, produce

    fleet = FleetConfig(
        device_count=args.devices,
        readings_per_hour=args.rate,
        seed=int(settings.get("IOT_SIMULATOR_SEED")),
        anomaly_rate=float(settings.get("IOT_SIMULATOR_ANOMALY_RATE")),
        malformed_rate=float(settings.get("IOT_SIMULATOR_MALFORMED_RATE")),
    )
    stream = settings.validate_stream(settings.get("IOT_KINESIS_STREAM"))
    endpoint, region = settings.endpoint_url(), settings.get("IOT_AWS_REGION")
    if args.land_hours:
        landed = land_hours(
            make_client("s3", endpoint, region),
            settings.get("IOT_BUCKET"),
            settings.get("IOT_LANDING_PREFIX"),
            fleet,
            last_complete_hours(args.land_hours),
        )
        print(
            f"landed {len(landed)} past hours under s3://{settings.get('IOT_BUCKET')}/"
            f"{settings.get('IOT_LANDING_PREFIX')}/ for the S3 sensor",
            flush=True,
        )
    client = make_client("kinesis", endpoint, region)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # stop between sends, never in the middle of one
        signal.signal(sig, lambda *_: stop.set())
    until = f"for {args.duration:.0f} s" if args.duration else "until Ctrl-C"
    print(
        f"sending {fleet.device_count} devices x {fleet.readings_per_hour} readings/hour "
        f"(~{fleet.device_count * fleet.readings_per_hour / 3600:.1f} records/s) to {stream} {until}",
        flush=True,
    )
    progress = Progress(f"simulate -> {stream}", unit=None)
    stats = produce(
        client,
        stream,
        fleet,
        args.duration or None,
        stop,
        report=lambda running: progress.update(records=running.records),
    )
    print(
        f"sent {stats.records} records in {stats.stopped - stats.started:.0f} s "
        f"({stats.resent} resent after throttling)",
        flush=True,
    )
    return 0


def cmd_instance_init(args: argparse.Namespace) -> int:
    """Create or update the local Dagster instance ($DAGSTER_HOME) from the checkout's dagster.yaml."""
    import os
    from pathlib import Path

    from iot_assets.tools.instance import init_home

    home = os.environ.get("DAGSTER_HOME")
    if not home:
        print("DAGSTER_HOME is not set (make sets it to .dagster_home/)", file=sys.stderr)
        return 2
    for line in init_home(Path(home).resolve(), Path(args.config).resolve()):
        print(f"Dagster instance: {line}")
    return 0


def cmd_seed_history(args: argparse.Namespace) -> int:
    from iot_assets.tools.demo import seed_history

    return seed_history(args.hours)


def cmd_jars(args: argparse.Namespace) -> int:
    """Start Spark once so the Delta and s3a jars land in the Ivy cache (skipped when they are there)."""
    import time
    from pathlib import Path

    from iot_assets.resources.spark import SPARK_PACKAGES, get_or_create_session, spark_conf

    cache = Path.home() / ".ivy2.5.2" / "jars"
    wanted = [cache / "{}_{}-{}.jar".format(*p.split(":")) for p in SPARK_PACKAGES]
    if all(w.exists() for w in wanted):
        print(f"Spark jars already in the Ivy cache ({cache})")
        return 0
    began = time.monotonic()
    session = get_or_create_session(spark_conf("local[1]", None, "us-east-1", 1, "512m"))
    session.range(1).count()
    session.stop()
    print(f"Spark jars ready ({', '.join(SPARK_PACKAGES)}) in {time.monotonic() - began:.1f} s")
    return 0


def cmd_historian_seed(args: argparse.Namespace) -> int:
    """Load the simulated fleet of the last N months (up to the last complete hour) into the historian."""
    from datetime import timedelta

    from iot_assets import settings
    from iot_assets.lib import partitions
    from iot_assets.resources.config import historian_source
    from iot_assets.tools.simulator import FleetConfig

    end = partitions.hour_of(partitions.utc_now())
    start = end.replace(day=1, hour=0)
    for _ in range(args.months - 1):
        start = (start - timedelta(days=1)).replace(day=1)
    fleet = FleetConfig(
        device_count=args.devices,
        readings_per_hour=args.rate,
        seed=int(settings.get("IOT_SIMULATOR_SEED")),
        anomaly_rate=float(settings.get("IOT_SIMULATOR_ANOMALY_RATE")),
    )
    hours = [start + partitions.HOUR * i for i in range(int((end - start) / partitions.HOUR))]
    with historian_source().process_config_and_initialize_cm() as historian:
        return _seed(historian, fleet, hours, args.bad_quality_rate)


def _seed(historian, fleet, hours, bad_quality_rate: float) -> int:
    from iot_assets.resources.historian import connection_params
    from iot_assets.tools.simulator.historian import seed

    params = connection_params(historian.jdbc_url)
    print(
        f"seeding {len(hours)} hours of {fleet.device_count} devices x {fleet.readings_per_hour} readings/hour "
        f"into {params['host']}:{params['port']}/{params['dbname']} ({historian.table_prefix}_YYYY_MM, "
        f"{historian.tag_table})",
        flush=True,
    )
    written: dict[str, int] = {}
    with historian.connect() as conn:
        for day in range(0, len(hours), 24):
            for table, n in seed(
                conn, fleet, hours[day : day + 24], historian.table_prefix, historian.tag_table, bad_quality_rate
            ).items():
                written[table] = written.get(table, 0) + n
    for table, n in sorted(written.items()):
        print(f"{table:32} {n:>10} rows")
    return 0


def cmd_historian_server(args: argparse.Namespace) -> int:
    """Start (or stop) a throwaway PostgreSQL for the historian; prints the settings to export."""
    from iot_assets.tools import local_postgres

    if args.action == "stop":
        local_postgres.stop(args.dir)
        return 0
    server = local_postgres.start(args.dir, args.port, user="historian", db="historian")
    print(f"export IOT_HISTORIAN_JDBC_URL=jdbc:postgresql://{server.host}:{server.port}/{server.db}")
    print(f"export IOT_HISTORIAN_USER={server.user}")
    print(f"export IOT_HISTORIAN_PASSWORD={server.password}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from iot_assets.tools.demo import run_demo

    return run_demo(hours=args.hours)


def cmd_evaluate(args: argparse.Namespace) -> int:
    import json
    import os
    from pathlib import Path

    from iot_assets.lib.catalogue import active

    if "simulator" in args.source and not active().simulated:
        print(
            f"iot-assets evaluate: the simulator's fleet has the shipped catalogue's channels, not those of "
            f"{active().path} (IOT_SENSOR_CATALOGUE); use --source nab (or give each of its channels a "
            "`simulate` block)",
            file=sys.stderr,
        )
        return 2
    if "nab" in args.source:
        # NAB's series is from 2013-2015: its hours must be valid partitions in this process.
        os.environ["IOT_PARTITIONS_START"] = "2013-07-01-00:00"
    from iot_assets.tools import local_aws
    from iot_assets.tools.evaluation import (
        evaluate_nab,
        evaluate_simulator,
        nab_catalogue_active,
        print_nab_table,
        print_table,
    )

    server = None
    port = local_aws.local_port()
    if not local_aws.is_listening(local_aws.LOOPBACK, port):
        server = local_aws.start_server(port)
    local_aws.ensure_from_settings()
    results = {}
    if "simulator" in args.source:
        results["simulator"] = evaluate_simulator(eval_hours=args.hours)
    if "nab" in args.source and not nab_catalogue_active():
        results["nab"] = evaluate_nab_in_child(args)
    elif "nab" in args.source:
        files = tuple(args.nab_files.split(",")) if args.nab_files else None
        results["nab"] = evaluate_nab(
            Path(args.nab_dir) if args.nab_dir else None, files=files, speedup=args.nab_speedup
        )
    print_table({k: v for k, v in results.items() if k != "nab"})
    if "simulator" in results:
        print("simulator incidents:", json.dumps(results["simulator"]["incidents"]))
    if "nab" in results:
        print_nab_table(results["nab"])
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
        print(f"wrote {args.out}")
    if server:
        server.stop()
    return 0


def evaluate_nab_in_child(args: argparse.Namespace) -> dict:
    """The NAB part of `evaluate`, in a process whose catalogue is the NAB one (a process reads its
    catalogue once), against the same local AWS and lake; its figures come back as JSON."""
    import json
    import os
    import subprocess
    import tempfile

    from iot_assets.tools.evaluation import NAB_CATALOGUE

    with tempfile.TemporaryDirectory(prefix="iot-nab-") as tmp:
        out = os.path.join(tmp, "nab.json")
        argv = [sys.executable, "-m", "iot_assets.tools.cli", "evaluate", "--source", "nab", "--out", out]
        for flag, value in (("--nab-dir", args.nab_dir), ("--nab-files", args.nab_files)):
            argv += [flag, value] if value else []
        argv += ["--nab-speedup", str(args.nab_speedup)] if args.nab_speedup else []
        env = {**os.environ, "IOT_SENSOR_CATALOGUE": str(NAB_CATALOGUE)}
        subprocess.run(argv, env=env, check=True)
        with open(out) as f:
            return json.load(f)["nab"]


def cmd_import(args: argparse.Namespace) -> int:
    import os
    from datetime import timedelta
    from pathlib import Path

    from dagster import DagsterInstance

    from iot_assets.tools import importer

    shift_to = None
    if args.shift_to == importer.LAST_HOUR:
        shift_to = importer.last_complete_hour()
    elif args.shift_to:
        shift_to = importer.parse_time(args.shift_to)
        if shift_to is None:
            print(f"--shift-to: {args.shift_to!r} is not an ISO-8601 time or {importer.LAST_HOUR!r}", file=sys.stderr)
            return 2
    server = None
    if not args.dry_run:
        from iot_assets.tools import local_aws

        port = local_aws.local_port()
        if not local_aws.is_listening(local_aws.LOOPBACK, port):
            server = local_aws.start_server(port)
        local_aws.ensure_from_settings()
    try:
        _, result = importer.run_import(
            Path(args.path),
            device_column=args.device_column,
            device=args.device,
            timestamp_column=args.timestamp_column,
            scale=args.time_scale,
            shift=timedelta(seconds=args.time_shift) if args.time_shift else None,
            shift_to=shift_to,
            dry_run=args.dry_run,
            backfill_after=not args.no_backfill,
            register=not args.no_register,
            ignore=tuple(c.strip() for c in args.ignore_columns.split(",") if c.strip()),
            # With DAGSTER_HOME set (make dev's instance), the backfill's run shows in the UI.
            instance=DagsterInstance.get() if os.environ.get("DAGSTER_HOME") and not args.dry_run else None,
        )
    except importer.ImportError_ as e:
        print(f"iot-assets import: {e}", file=sys.stderr)
        return 2
    finally:
        if server:
            server.stop()
    return 0 if result is None or result.success else 1


def parse_signed_duration(text: str) -> float:
    """Seconds from `90s`, `-15m`, `2h` or `-3d`."""
    text = text.strip().lower()
    sign = -1 if text.startswith("-") else 1
    text = text.lstrip("+-")
    days = text.endswith("d")
    return sign * (float(text[:-1]) * 86400 if days else parse_duration(text))


def main(argv: list[str] | None = None) -> int:
    import warnings

    from dagster import BetaWarning, PreviewWarning

    warnings.filterwarnings("ignore", category=BetaWarning)
    warnings.filterwarnings("ignore", category=PreviewWarning)
    parser = argparse.ArgumentParser(prog="iot-assets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("local-aws", help="run the local AWS endpoint (moto) on 127.0.0.1 in the foreground").set_defaults(
        func=cmd_local_aws
    )
    connect = sub.add_parser("connect-server", help="run a Spark Connect server for the local stack in the foreground")
    connect.add_argument("--port", type=int, default=15002, help="port on 127.0.0.1 (Spark's default, 15002)")
    connect.add_argument("--log", default=".dev/spark-connect.log", help="the server's log file")
    connect.set_defaults(func=cmd_connect_server)
    sub.add_parser("jars", help="download the Spark jars into the Ivy cache (first run only)").set_defaults(
        func=cmd_jars
    )
    inst = sub.add_parser("instance", help="the local Dagster instance ($DAGSTER_HOME)").add_subparsers(
        dest="instance_command", required=True
    )
    init = inst.add_parser("init", help="create or update $DAGSTER_HOME from dagster.yaml (make dev and demo run it)")
    init.add_argument("--config", default="dagster.yaml", help="the instance configuration (default ./dagster.yaml)")
    init.set_defaults(func=cmd_instance_init)
    from iot_assets import settings

    sim = sub.add_parser("simulate", help="send the simulated fleet's readings to Kinesis continuously")
    sim.add_argument(
        "--devices",
        type=int,
        default=int(settings.get("IOT_DEVICE_COUNT")),
        help="number of devices (default IOT_DEVICE_COUNT)",
    )
    sim.add_argument(
        "--rate",
        type=int,
        default=int(settings.get("IOT_READINGS_PER_HOUR")),
        help="readings each device sends per hour (default IOT_READINGS_PER_HOUR)",
    )
    sim.add_argument(
        "--duration",
        type=parse_duration,
        default=0.0,
        help="how long to run: 90, 90s, 15m or 2h; 0 (default) runs until Ctrl-C",
    )
    sim.add_argument(
        "--land-hours",
        type=int,
        default=0,
        help="first land the last N complete hours as files under IOT_LANDING_PREFIX (default 0)",
    )
    sim.set_defaults(func=cmd_simulate)
    hist = sub.add_parser("historian", help="a local SQL historian (PostgreSQL) for IOT_RAW_SOURCE=historian")
    hist_sub = hist.add_subparsers(dest="historian_command", required=True)
    hseed = hist_sub.add_parser("seed", help="load the simulated fleet into the historian's monthly tables")
    hseed.add_argument(
        "--months",
        type=int,
        default=1,
        help="this month and the N-1 before it, up to the last complete hour (default 1)",
    )
    hseed.add_argument(
        "--devices",
        type=int,
        default=int(settings.get("IOT_DEVICE_COUNT")),
        help="number of devices (default IOT_DEVICE_COUNT)",
    )
    hseed.add_argument(
        "--rate",
        type=int,
        default=int(settings.get("IOT_READINGS_PER_HOUR")),
        help="readings per device per hour (default IOT_READINGS_PER_HOUR)",
    )
    hseed.add_argument(
        "--bad-quality-rate",
        type=float,
        default=0.002,
        help="share of samples stored with a bad quality code (default 0.002)",
    )
    hseed.set_defaults(func=cmd_historian_seed)
    hserver = hist_sub.add_parser("server", help="start or stop a throwaway PostgreSQL on 127.0.0.1 (no Docker)")
    hserver.add_argument("action", choices=("start", "stop"))
    hserver.add_argument("--dir", default=".dev/historian", help="its data directory (default .dev/historian)")
    hserver.add_argument("--port", type=int, default=5433, help="port on 127.0.0.1 (default 5433)")
    hserver.set_defaults(func=cmd_historian_server)
    seed = sub.add_parser(
        "seed-history",
        help="land the simulated fleet's previous hours through gold as one run, unless the lake has silver "
        "(make dev's first start)",
    )
    seed.add_argument("--hours", type=int, default=26, help="hours before the current one (default 26: a day + 2)")
    seed.set_defaults(func=cmd_seed_history)
    demo = sub.add_parser("demo", help="materialise the last complete hours end to end and print row counts")
    demo.add_argument("--hours", type=int, default=3)
    demo.set_defaults(func=cmd_demo)
    ev = sub.add_parser("evaluate", help="replay labelled data through the pipeline and score the anomaly log")
    ev.add_argument("--source", default="simulator,nab", help="simulator, nab, or both (comma-separated)")
    ev.add_argument("--hours", type=int, default=6, help="simulator hours scored (after 24 hours of history)")
    ev.add_argument("--nab-dir", help="folder with the NAB csv and anomaly_windows.json (default ../shared/data/nab)")
    ev.add_argument(
        "--nab-speedup",
        type=int,
        default=None,
        help="replay NAB this many times faster than real time (default: each reading becomes a minute)",
    )
    ev.add_argument("--nab-files", help="comma-separated NAB files (default: every file anomaly_windows.json labels)")
    ev.add_argument("--out", help="write the figures as JSON to this file")
    ev.set_defaults(func=cmd_evaluate)
    imp = sub.add_parser("import", help="import history from CSV or Parquet into raw batches, then backfill its hours")
    imp.add_argument("path", help="a .csv or .parquet file, or a folder of them")
    who = imp.add_mutually_exclusive_group()
    who.add_argument("--device-column", help="the column that holds the device id")
    who.add_argument("--device", help="the device id of every row (default: each file's name without suffix)")
    imp.add_argument("--timestamp-column", help="the time column (default: the catalogue's timestamp field)")
    when = imp.add_mutually_exclusive_group()
    when.add_argument("--time-shift", type=parse_signed_duration, help="move every time by this: 90s, -15m, 2h, -3d")
    when.add_argument("--shift-to", help="move the series so its last reading falls in this hour (ISO, or 'last')")
    imp.add_argument(
        "--time-scale", type=float, default=1.0, help="replay this many times faster, around the first hour"
    )
    imp.add_argument(
        "--ignore-columns",
        default="",
        help="comma-separated columns to leave out (labels, notes); any other column must be a channel",
    )
    imp.add_argument("--dry-run", action="store_true", help="print the hours and record counts; write nothing")
    imp.add_argument("--no-backfill", action="store_true", help="store the raw batches only")
    imp.add_argument(
        "--no-register",
        action="store_true",
        help="do not add the files' devices to the registry's reference list (silver rejects unknown devices)",
    )
    imp.set_defaults(func=cmd_import)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
