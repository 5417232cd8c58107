"""What the measurements share: a private local stack, simulated raw hours on S3, Dagster runs of
the pipeline's assets on a chosen lake prefix, the engine floor, and memory sampling.

`start_stack()` must run before anything imports `iot_assets.definitions`: the resources read
their settings (as `EnvVar`s) when the definitions are built.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from pathlib import Path

from iot_assets.lib.partitions import HOUR

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "iot-bench"
# BENCH_LOG_LEVEL=INFO shows each step as it ends (for profiling a run in progress).
QUIET = {"loggers": {"console": {"config": {"log_level": os.environ.get("BENCH_LOG_LEVEL", "WARNING")}}}}
# Everything after raw, through the anomaly log: bronze, silver, hourly gold, models, anomaly log.
PIPELINE_AFTER_RAW = (
    "bronze_sensor_readings",
    "bronze_quarantine",
    "silver_sensor_readings",
    "silver_rejected_readings",
    "device_hourly_stats",
    "sensor_aggregates_10min",
    "device_anomaly_models",
    "anomaly_log",
)
# The hourly pipeline job (what a backfill of hours runs) without the raw asset, whose data each
# measurement generates once beforehand so that both sides of a comparison read the same files.
HOURLY_AFTER_RAW = PIPELINE_AFTER_RAW[:6]


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def bench_hour(hours_back: int = 1) -> datetime:
    """A complete UTC hour `hours_back` hours ago; the measurements' data ends there."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return now - HOUR * hours_back


class Stack:
    """The local AWS endpoint in its own process: in this one, moto's in-memory store would count
    in the measured driver memory and its request threads would share the GIL with the run."""

    def __init__(self):
        import subprocess
        import sys

        from iot_assets.tools import local_aws

        with socket.socket() as s:
            s.bind((local_aws.LOOPBACK, 0))
            port = s.getsockname()[1]
        os.environ.update(
            {
                "IOT_AWS_ENDPOINT_URL": f"http://{local_aws.LOOPBACK}:{port}",
                "IOT_BUCKET": BUCKET,
                "IOT_KINESIS_STREAM": "iot-bench-readings",
            }
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", local_aws.LOOPBACK, "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not local_aws.is_listening(local_aws.LOOPBACK, port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"moto server did not start on {local_aws.LOOPBACK}:{port}")
            time.sleep(0.1)
        local_aws.ensure_from_settings()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except Exception:
            self.process.kill()
            self.process.wait(timeout=20)


def start_stack() -> Stack:
    """A moto server on a free 127.0.0.1 port with the bench bucket and stream (call .stop())."""
    return Stack()


# --- raw data ------------------------------------------------------------------------------


def _write_raw_hour(args: tuple[datetime, object, bool]) -> int:
    """In a worker process: simulate one hour and back it up as the raw IO manager does."""
    hour, fleet, publish = args
    from iot_assets import settings
    from iot_assets.assets.raw import simulated_batch
    from iot_assets.resources.aws import AwsResource
    from iot_assets.resources.io_managers import S3KinesisRawIOManager

    batch = simulated_batch(hour, fleet)
    batch.publish = publish
    aws = AwsResource(endpoint_url=settings.get("IOT_AWS_ENDPOINT_URL"), region=settings.get("IOT_AWS_REGION"))
    S3KinesisRawIOManager(
        aws=aws,
        bucket=settings.get("IOT_BUCKET"),
        stream=settings.get("IOT_KINESIS_STREAM"),
        part_records=int(settings.get("IOT_RAW_PART_RECORDS")),
    ).store(batch)
    return len(batch.payloads)


def write_raw_hours(hours: list[datetime], fleet, progress=print) -> int:
    """Simulate the hours and store them as raw batches, in worker processes (so the measured
    process's memory does not hold them); not published to Kinesis. Returns the record count."""
    began = time.monotonic()
    with ProcessPoolExecutor(max_workers=min(2, len(hours)), mp_context=get_context("spawn")) as pool:
        records = sum(pool.map(_write_raw_hour, [(h, fleet, False) for h in hours]))
    progress(
        f"   simulated and stored {records:,} raw records over {len(hours)} hour(s) ({time.monotonic() - began:.0f} s)"
    )
    return records


def raw_uris(hours: list[datetime]) -> list[str]:
    """The raw objects of the hours (each hour may hold several)."""
    from iot_assets import settings
    from iot_assets.resources.aws import AwsResource
    from iot_assets.resources.io_managers import S3KinesisRawIOManager

    aws = AwsResource(endpoint_url=settings.get("IOT_AWS_ENDPOINT_URL"), region=settings.get("IOT_AWS_REGION"))
    raw_io = S3KinesisRawIOManager(aws=aws, bucket=BUCKET)
    return [o.uri for h in hours for o in raw_io.hour_objects(h)]


# --- Dagster runs --------------------------------------------------------------------------


def resources_for(lake_prefix: str, fleet) -> dict:
    """The code location's resources with the lake under `lake_prefix` and the fleet of `fleet`."""
    from iot_assets import settings
    from iot_assets.definitions import defs
    from iot_assets.resources.lakehouse import DeltaLakehouse
    from iot_assets.resources.raw_source import RawSource

    lake = DeltaLakehouse(
        bucket=BUCKET, prefix=lake_prefix, max_records_per_file=int(settings.get("IOT_DELTA_MAX_RECORDS_PER_FILE"))
    )
    source = RawSource(
        device_count=fleet.device_count,
        readings_per_hour=fleet.readings_per_hour,
        seed=fleet.seed,
        anomaly_rate=fleet.anomaly_rate,
        malformed_rate=fleet.malformed_rate,
        stream=settings.get("IOT_KINESIS_STREAM"),
    )
    return {**defs.resources, "lake": lake, "raw_source": source}


def all_assets() -> list:
    from iot_assets.definitions import executable_assets

    return list(executable_assets)


@dataclass
class Run:
    seconds: float
    steps: dict[str, float]  # step key -> seconds, from the run's step-success events
    run_id: str = ""


def run_assets(selection, resources: dict, instance, first: datetime, last: datetime | None = None) -> Run:
    """Materialise `selection` for one partition (`last` None) or as one run over [first, last]."""
    from dagster import materialize

    from iot_assets.lib.partitions import hour_key

    if last is None:
        kwargs = {"partition_key": hour_key(first)}
    else:
        kwargs = {
            "tags": {
                "dagster/asset_partition_range_start": hour_key(first),
                "dagster/asset_partition_range_end": hour_key(last),
            }
        }
    began = time.monotonic()
    result = materialize(
        all_assets(), selection=list(selection), instance=instance, resources=resources, run_config=QUIET, **kwargs
    )
    seconds = time.monotonic() - began
    if not result.success:
        raise RuntimeError(f"benchmark run {result.run_id} of {selection} failed")
    steps = {e.step_key: round(e.event_specific_data.duration_ms / 1000, 1) for e in result.get_step_success_events()}
    return Run(seconds, steps, result.run_id)


@dataclass
class ChildRun:
    seconds: float  # from the child's start to its exit: interpreter, imports, JVM start, the run
    reported: dict  # the last JSON line the child printed


def run_child(module: str, args: list[str], log: Path, env: dict | None = None, timeout: float = 3600) -> ChildRun:
    """`python -m <module> <args>` in a fresh interpreter with `env` (by default this process's
    environment: the stack's endpoint and bucket), as a run process would be started; its output
    goes to `log`."""
    began = time.monotonic()
    with log.open("w") as out:  # a file, not a pipe: a pipe stays open while a child JVM lives
        done = subprocess.run(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )
    seconds = time.monotonic() - began
    text = log.read_text()
    if done.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed; see {log}\n{text[-3000:]}")
    return ChildRun(seconds, json.loads(next(line for line in reversed(text.splitlines()) if line.startswith("{"))))


def ensure_registry(resources: dict, instance) -> None:
    """The device registry the silver join needs, written once per lake prefix (not timed)."""
    from dagster import materialize

    if not materialize(
        all_assets(), selection=["device_registry"], instance=instance, resources=resources, run_config=QUIET
    ).success:
        raise RuntimeError("device_registry failed")


def engine_floor(spark, uris: list[str], target: str) -> float:
    """Spark's own floor for the same raw files: `read.json` (with the envelope schema, so no
    inference pass) and one Delta write, in the same session."""
    from iot_assets.assets.bronze import ENVELOPE

    began = time.monotonic()
    spark.read.schema(ENVELOPE).json(uris).write.format("delta").mode("overwrite").save(target)
    return time.monotonic() - began


def shape_floor(spark, uris: list[str], prefix: str) -> dict[str, float]:
    """Spark's own floor for the pipeline's shape, on the same raw files in the same session: the
    Delta writes the layers make, with nothing else. Seconds per part:

    - `bronze`: `read.json` of the envelopes, each payload parsed once into its typed fields
      (`from_json`), written to Delta;
    - `silver`: that table read and written again, unchanged;
    - `gold`: silver's mean of each channel and count per device and hour, written;
    - `anomaly_log`: silver read and written again, unchanged (the log holds a row per reading).

    The pipeline's own Delta writes of the hour are these four and three small ones (10-minute
    aggregates, models, incidents), so its time cannot go below their sum: no checks, windows,
    quarantine, models or scoring are in it."""
    from pyspark.sql import functions as F

    from iot_assets.assets.bronze import _WRAPPED_TYPED, CHANNEL_KEYS, ENVELOPE, RECORD, _wrap

    def write(df, name: str) -> float:
        began = time.monotonic()
        df.write.format("delta").mode("overwrite").save(f"{prefix}/{name}")
        return time.monotonic() - began

    def read(name: str):
        return spark.read.format("delta").load(f"{prefix}/{name}")

    payload = F.from_json(_wrap("payload"), _WRAPPED_TYPED)["v"]
    bronze = (
        spark.read.schema(ENVELOPE)
        .json(uris)
        .select(
            payload[RECORD.device_id].alias("device_id"),
            payload[RECORD.timestamp].try_cast("timestamp").alias("event_time"),
            *[payload[key].alias(name) for name, key in CHANNEL_KEYS.items()],
            payload[RECORD.status].alias("status"),
            "arrival_id",
            "record_index",
            "source",
        )
    )
    seconds = {"bronze": write(bronze, "bronze")}
    seconds["silver"] = write(read("bronze"), "silver")
    hourly = read("silver").groupBy("device_id", F.date_trunc("hour", "event_time").alias("hour"))
    seconds["gold"] = write(hourly.agg(F.count("*").alias("n"), *[F.avg(c).alias(c) for c in CHANNEL_KEYS]), "gold")
    seconds["anomaly_log"] = write(read("silver"), "anomaly_log")
    return {k: round(v, 1) for k, v in seconds.items()}


# --- memory --------------------------------------------------------------------------------

GIB = 1024**3


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc (0 once it has gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its closing parenthesis.
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    return out


class PeakMemory:
    """Peak memory while the block runs, sampled every `interval` seconds in a thread: driver RSS
    (this Python process plus its Spark JVM), the JVM's Python workers, and JVM heap in use.

    The JVM's own peak per heap pool (`MemoryPoolMXBean`, reset on entry) is read on exit as
    well; their sum bounds the heap peak from above, since the pools peak at different moments."""

    def __init__(self, spark, interval: float = 0.5):
        self.spark, self.interval = spark, interval
        self.jvm = spark.sparkContext._jvm
        self.jvm_pid = int(self.jvm.java.lang.ProcessHandle.current().pid())
        self.peaks = {"driver_rss": 0, "python_rss": 0, "jvm_rss": 0, "python_workers_rss": 0, "jvm_heap_used": 0}
        self._stop = threading.Event()

    def _heap_pools(self):
        mf = self.jvm.java.lang.management.ManagementFactory
        return [p for p in mf.getMemoryPoolMXBeans() if str(p.getType().name()) == "HEAP"]

    def _sample(self) -> None:
        py, jvm = rss_bytes(os.getpid()), rss_bytes(self.jvm_pid)
        workers = sum(rss_bytes(c) for w in children(self.jvm_pid) for c in [w, *children(w)])
        heap = int(self.jvm.java.lang.management.ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed())
        for k, v in (
            ("driver_rss", py + jvm),
            ("python_rss", py),
            ("jvm_rss", jvm),
            ("python_workers_rss", workers),
            ("jvm_heap_used", heap),
        ):
            self.peaks[k] = max(self.peaks[k], v)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> PeakMemory:
        for p in self._heap_pools():
            p.resetPeakUsage()
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="peak-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._sample()
        self.pool_peak_sum = sum(int(p.getPeakUsage().getUsed()) for p in self._heap_pools())
        self.heap_max = int(self.jvm.java.lang.Runtime.getRuntime().maxMemory())

    def figures(self) -> dict:
        gib = lambda b: round(b / GIB, 2)  # noqa: E731
        return {
            "peak_driver_rss_gib": gib(self.peaks["driver_rss"]),
            "peak_python_rss_gib": gib(self.peaks["python_rss"]),
            "peak_jvm_rss_gib": gib(self.peaks["jvm_rss"]),
            "peak_python_workers_rss_gib": gib(self.peaks["python_workers_rss"]),
            "peak_jvm_heap_used_gib_sampled": gib(self.peaks["jvm_heap_used"]),
            "peak_jvm_heap_gib_pool_sum": gib(self.pool_peak_sum),
            "jvm_heap_max_gib": gib(self.heap_max),
        }


def hours_ending(last: datetime, n: int) -> list[datetime]:
    return [last - timedelta(hours=i) for i in range(n - 1, -1, -1)]
