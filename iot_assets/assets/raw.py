"""Raw: each hour's records as they arrived: from the fleet simulator, drained from Kinesis, landed
as files, or read from a plant's SQL historian."""


from dataclasses import asdict
from datetime import datetime, timedelta

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    BackfillPolicy,
    ConfigurableResource,
    MetadataValue,
    Output,
    asset,
)

from iot_assets import partitions, reasons
from iot_assets.partitions import assigned_hour, hours_in, hourly_partitions, ready_at
from iot_assets.resources.aws import AwsResource
from iot_assets.resources.historian import HistorianSource
from iot_assets.resources.io_managers import RawBatch, RawBatches, batch_name
from iot_assets.resources.kinesis import arrival_id, event_hour_of, read_arrivals, record_hour
from iot_assets.resources.landing import LandedObject, LandingZone, ObjectRecords
from iot_assets.resources.spark import SparkResource
from iot_assets.simulator import FleetConfig, simulate_hour


class RawSource(ConfigurableResource):
    """Where raw batches come from: `simulator` (default), `kinesis`, `s3_landing` (files landed by
    producers) or `historian` (a PostgreSQL SQL historian)."""

    source: str = "simulator"
    device_count: int = 50
    readings_per_hour: int = 60
    seed: int = 7
    anomaly_rate: float = 0.04
    malformed_rate: float = 0.01
    allowed_lateness_minutes: int = 10
    stream: str = "iot-sensor-readings"

    @property
    def fleet(self) -> FleetConfig:
        return FleetConfig(device_count=self.device_count, readings_per_hour=self.readings_per_hour, seed=self.seed,
                           anomaly_rate=self.anomaly_rate, malformed_rate=self.malformed_rate)

    @property
    def lateness(self) -> timedelta:
        return timedelta(minutes=self.allowed_lateness_minutes)


def simulated_batch(hour: datetime, fleet: FleetConfig) -> RawBatch:
    """The simulated hour, named by its contents: the same settings give the same batch."""
    sim = simulate_hour(hour, fleet)
    return RawBatch(hour=hour, source="simulator", payloads=[r.encode() for r in sim.records],
                    partition_keys=sim.partition_keys, publish=True, ground_truth=[asdict(label) for label in sim.labels])


def kinesis_batch(hour: datetime, kinesis, stream: str, lateness: timedelta,
                  now: datetime | None = None) -> RawBatch:
    """The records that belong to `hour`: those arriving in it, plus late ones within the lateness."""
    complete = ready_at(hour, lateness)
    now = now or partitions.utc_now()
    if now < complete:
        raise RuntimeError(f"hour {hour:%Y-%m-%d %H:00} is not complete until {complete:%H:%M} UTC "
                           f"(allowed lateness {lateness}); materialise it after that")
    records = [r for r in read_arrivals(kinesis, stream, hour, complete) if record_hour(r, lateness) == hour]
    records.sort(key=lambda r: (r.shard_id, int(r.sequence_number)))
    ids = [arrival_id(stream, r.shard_id, r.sequence_number) for r in records]
    return RawBatch(hour=hour, source="kinesis", name=batch_name("kinesis", "\n".join(ids)),
                    payloads=[r.data for r in records], partition_keys=[r.partition_key for r in records],
                    arrivals=ids, dedupe=True,
                    kinesis=[(r.shard_id, r.sequence_number, r.arrival.isoformat()) for r in records])


def landed_batch(hour: datetime, obj: LandedObject, landing: LandingZone, lateness: timedelta) -> RawBatch:
    """The records of one landed object that belong to `hour`, by the stream's lateness rule.

    The object arrived at its LastModified into the hour its key names. A key that names no
    valid hour gives one record marked `unplaced_object`, without reading the object.
    """
    uri = landing.uri(obj)
    placed = obj.placement
    name = batch_name("s3_landing", uri)
    if placed.problem:
        return RawBatch(hour=hour, source="s3_landing", name=name, payloads=[obj.key.encode()],
                        partition_keys=[""], arrivals=[f"{uri}#0"], problems=[placed.problem])
    frames = landing.frames(obj.key)
    home = [f.problem is not None or assigned_hour(event_hour_of(f.data), obj.last_modified, placed.hour, lateness) == hour
            for f in frames] if placed.hour == hour else \
        [f.problem is None and assigned_hour(event_hour_of(f.data), obj.last_modified, placed.hour, lateness) == hour
         for f in frames]
    kept = [f for f, mine in zip(frames, home) if mine]
    return RawBatch(hour=hour, source="s3_landing", name=name, payloads=[f.data for f in kept],
                    partition_keys=[""] * len(kept), arrivals=[f"{uri}#{f.offset}" for f in kept],
                    problems=[f.problem for f in kept] if any(f.problem for f in kept) else None,
                    routed_elsewhere=len(frames) - len(kept))


def historian_batch(hour: datetime, historian: HistorianSource, spark, lateness: timedelta,
                    rows_read: dict | None = None, now: datetime | None = None) -> RawBatch:
    """The historian's records of `hour`, once the hour has ended plus the lateness (late writes to
    the historian). Its rows read per monthly table go to `rows_read`."""
    complete = ready_at(hour, lateness)
    if (now or partitions.utc_now()) < complete:
        raise RuntimeError(f"hour {hour:%Y-%m-%d %H:00} is not complete until {complete:%H:%M} UTC "
                           f"(allowed lateness {lateness}); materialise it after that")
    got = historian.read_hour(spark, hour)
    if rows_read is not None:
        rows_read[partitions.hour_key(hour)] = got.rows_by_table
    problems = [r.problem for r in got.records]
    return RawBatch(hour=hour, source="historian", payloads=[r.payload for r in got.records],
                    partition_keys=[r.device_id for r in got.records], arrivals=[r.arrival_id for r in got.records],
                    problems=problems if any(problems) else None)


def objects_batch(hour: datetime, source: str, objects: list[ObjectRecords]) -> RawBatch:
    """One batch of the records of several objects, in order; an unreadable object is one marked record."""
    payloads, problems = [], []
    for got in objects:
        payloads += got.records
        problems += [got.problem] * len(got.records)
    return RawBatch(hour=hour, source=source, payloads=payloads, partition_keys=[""] * len(payloads),
                    problems=problems if any(problems) else None)


def landing_batches(hour: datetime, landing: LandingZone, lateness: timedelta) -> list[RawBatch]:
    """One batch per landed object that may hold records of `hour`; an hour with none gets one
    empty batch, so its raw partition exists."""
    batches = [landed_batch(hour, o, landing, lateness) for o in landing.objects_for_hour(hour, lateness)]
    return batches or [RawBatch(hour=hour, source="s3_landing", name=batch_name("s3_landing", "no objects"),
                                payloads=[], partition_keys=[])]


@asset(
    partitions_def=hourly_partitions,
    io_manager_key="raw_io_manager",
    backfill_policy=BackfillPolicy.single_run(),
    group_name="raw",
    kinds={"s3", "kinesis", "postgres"},
    check_specs=[
        AssetCheckSpec("check_raw_reconciles_arrivals", asset="raw_sensor_batches", blocking=True,
                       description="Every arrival is stored: per hour and arrival batch (a landed object, a "
                                   "Kinesis drain, a simulated hour), records arrived = records in its raw object "
                                   "+ duplicates of records the hour already held + records of other hours."),
        AssetCheckSpec("check_landing_keys_name_an_hour", asset="raw_sensor_batches",
                       description="Landed objects whose key names no valid hour (WARN): each is one "
                                   "`unplaced_object` row in bronze_quarantine, in the hour it was last modified."),
    ],
)
def raw_sensor_batches(context: AssetExecutionContext, raw_source: RawSource, aws: AwsResource,
                       landing: LandingZone, historian: HistorianSource, spark: SparkResource):
    """The hour's sensor records exactly as they arrived, backed up to S3 as gzip JSON lines.

    Simulated hours are also published to Kinesis. With `IOT_RAW_SOURCE=kinesis` the hour is
    drained from the stream instead: the records that arrived in it, and late ones within the
    allowed lateness. Runs started by `s3_landing_sensor` read the files landed under the landing
    prefix (`source: s3_landing`). With `IOT_RAW_SOURCE=historian` the hour's samples are read
    from the SQL historian's monthly tables and pivoted into one record per device scan.
    """
    hours = hours_in(context.partition_time_window)
    rows_read: dict[str, dict[str, int]] = {}          # historian rows per hour and monthly table
    if raw_source.source == "simulator":
        fleet = raw_source.fleet
        batches = RawBatches(hours, lambda h: [simulated_batch(h, fleet)])
    elif raw_source.source == "kinesis":
        batches = RawBatches(hours, lambda h: [kinesis_batch(h, aws.kinesis, raw_source.stream, raw_source.lateness)])
    elif raw_source.source == "s3_landing":
        batches = RawBatches(hours, lambda h: landing_batches(h, landing, raw_source.lateness))
    elif raw_source.source == "historian":
        batches = RawBatches(hours, lambda h: [historian_batch(h, historian, spark.session, raw_source.lateness,
                                                               rows_read)])
    else:
        raise ValueError(f"unknown raw source {raw_source.source!r}; use 'simulator', 'kinesis', 's3_landing' "
                         "or 'historian'")
    # The IO manager stores the batches while this generator waits, and fills their ledgers.
    yield Output(batches)
    yield from arrival_checks(batches, {"historian_rows_read": MetadataValue.json(rows_read)} if rows_read else None)


def arrival_checks(batches: RawBatches, extra: dict | None = None):
    """The two arrival checks, on the ledgers the IO manager filled while storing."""
    problems = {hour: ledger.problems() for hour, ledger in batches.ledgers.items()}
    failing = {hour: p for hour, p in problems.items() if p}
    yield AssetCheckResult(
        check_name="check_raw_reconciles_arrivals", passed=not failing, severity=AssetCheckSeverity.ERROR,
        metadata={"arrivals_per_hour": MetadataValue.json({h: lg.by_source() for h, lg in batches.ledgers.items()}),
                  "failing_partitions": MetadataValue.json(sorted(failing)),
                  "problems": MetadataValue.json({h: p[:10] for h, p in failing.items()}), **(extra or {})})
    unplaced = {hour: n for hour, ledger in batches.ledgers.items() if (n := ledger.unplaced())}
    yield AssetCheckResult(
        check_name="check_landing_keys_name_an_hour", passed=not unplaced, severity=AssetCheckSeverity.WARN,
        metadata={"unplaced_objects": sum(unplaced.values()), "unplaced_by_hour": MetadataValue.json(unplaced),
                  "reason": reasons.UNPLACED_OBJECT})
