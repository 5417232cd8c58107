"""The throughput hour over Spark Connect, against the same hour in classic mode.

Both sides run the pipeline after raw (bronze through the anomaly log) on the same raw files, each
in a fresh interpreter as a Dagster run process would: classic starts its own JVM (`local[*]`),
Connect talks to Spark's own Connect server on 127.0.0.1 (started here, configured like a run's
session). The registry is written first on each side, so JVM start and the Connect session's
first round trips are counted on neither side.

`python -m benchmarks.connect <prefix> <hour> <devices> <readings per hour>` is one side's child.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import uuid
from datetime import datetime
from pathlib import Path

from benchmarks.common import (
    PIPELINE_AFTER_RAW,
    bench_hour,
    ensure_registry,
    resources_for,
    run_assets,
    run_child,
    write_raw_hours,
)


def _side(env: dict, prefix: str, hour: datetime, fleet, log: Path) -> dict:
    args = [prefix, hour.isoformat(), str(fleet.device_count), str(fleet.readings_per_hour)]
    return run_child("benchmarks.connect", args, log, env=env).reported


def compare(fleet, progress=print) -> dict:
    from iot_assets.resources.config import resolved
    from iot_assets.tools import connect_server

    hour = bench_hour(3)  # its own hour: not the throughput or first-hour measurement's
    records = write_raw_hours([hour], fleet, progress)
    logs = Path(tempfile.mkdtemp(prefix="iot-bench-connect-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = connect_server.start(resolved("spark").conf(), port, logs / "server.log")
    tag = uuid.uuid4().hex[:8]
    env = {k: v for k, v in os.environ.items() if k != "IOT_SPARK_REMOTE"}
    try:
        classic = _side(env, f"bench/classic-{tag}", hour, fleet, logs / "classic.log")
        progress(f"   classic (own JVM): {classic['seconds']:.1f} s; steps {classic['steps']}")
        remote = _side({**env, "IOT_SPARK_REMOTE": server.url}, f"bench/connect-{tag}", hour, fleet, logs / "c.log")
        progress(f"   Spark Connect: {remote['seconds']:.1f} s; steps {remote['steps']}")
    finally:
        server.stop()
    return {
        "devices": fleet.device_count,
        "readings_per_hour": fleet.readings_per_hour,
        "raw_records": records,
        "classic_seconds": round(classic["seconds"], 1),
        "connect_seconds": round(remote["seconds"], 1),
        "classic_step_seconds": classic["steps"],
        "connect_step_seconds": remote["steps"],
    }


def main(argv: list[str]) -> int:
    from dagster import DagsterInstance

    from iot_assets.tools.simulator import FleetConfig

    prefix, hour, devices, per_hour = argv
    fleet = FleetConfig(device_count=int(devices), readings_per_hour=int(per_hour))
    resources, instance = resources_for(prefix, fleet), DagsterInstance.ephemeral()
    ensure_registry(resources, instance)
    run = run_assets(PIPELINE_AFTER_RAW, resources, instance, datetime.fromisoformat(hour))
    print(json.dumps({"seconds": run.seconds, "steps": run.steps}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
