"""Raw: each hour's records as they arrived: from the fleet simulator, drained from Kinesis, landed
as files, or read from a plant's SQL historian."""

from dataclasses import asdict
from datetime import datetime, timedelta

from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    BackfillPolicy,
    Output,
    asset,
)

from iot_assets.lib import partitions, quality, reasons
from iot_assets.lib.framing import Framed
from iot_assets.lib.partitions import assigned_hour, hour_key, hourly_partitions, hours_in, parse_hour_key, ready_at
from iot_assets.resources.aws import AwsResource
from iot_assets.resources.historian import HistorianSource
from iot_assets.resources.io_managers import RawBatch, RawBatches, batch_name
from iot_assets.resources.kinesis import arrival_id, event_hour_of, read_arrivals, record_hour
from iot_assets.resources.lakehouse import LAKE_WRITER_POOL, DeltaLakehouse
from iot_assets.resources.landing import LandedObject, LandingZone
from iot_assets.resources.raw_source import RawSource
from iot_assets.resources.spark import SparkResource
from iot_assets.tools.simulator import FleetConfig, simulate_hour


def simulated_batch(hour: datetime, fleet: FleetConfig, publish: bool = True) -> RawBatch:
    """The simulated hour, named by its contents: the same settings give the same batch. With
    `publish`, it is also sent to Kinesis before it is stored."""
    sim = simulate_hour(hour, fleet)
    return RawBatch(
        hour=hour,
        source="simulator",
        payloads=[r.encode() for r in sim.records],
        partition_keys=sim.partition_keys,
        publish=publish,
        ground_truth=[asdict(label) for label in sim.labels],
    )


def kinesis_batch(hour: datetime, kinesis, stream: str, lateness: timedelta, now: datetime | None = None) -> RawBatch:
    """The records that belong to `hour`: those arriving in it, plus late ones within the lateness."""
    complete = ready_at(hour, lateness)
    now = now or partitions.utc_now()
    if now < complete:
        raise RuntimeError(
            f"hour {hour:%Y-%m-%d %H:00} is not complete until {complete:%H:%M} UTC "
            f"(allowed lateness {lateness}); materialise it after that"
        )
    records = [r for r in read_arrivals(kinesis, stream, hour, complete) if record_hour(r, lateness) == hour]
    records.sort(key=lambda r: (r.shard_id, int(r.sequence_number)))
    ids = [arrival_id(stream, r.shard_id, r.sequence_number) for r in records]
    return RawBatch(
        hour=hour,
        source="kinesis",
        name=batch_name("kinesis", "\n".join(ids)),
        payloads=[r.data for r in records],
        partition_keys=[r.partition_key for r in records],
        arrivals=ids,
        dedupe=True,
        kinesis=[(r.shard_id, r.sequence_number, r.arrival.isoformat()) for r in records],
    )


def landed_batch(hour: datetime, obj: LandedObject, landing: LandingZone, lateness: timedelta) -> RawBatch:
    """The records of one landed object that belong to `hour`, by the stream's lateness rule.

    The object arrived at its LastModified into the hour its key names. A key that names no
    valid hour gives one record marked `unplaced_object`, without reading the object.
    """
    uri = landing.uri(obj)
    placed = obj.placement
    name = batch_name("s3_landing", uri)
    if placed.problem:
        return RawBatch(
            hour=hour,
            source="s3_landing",
            name=name,
            payloads=[obj.key.encode()],
            partition_keys=[""],
            arrivals=[f"{uri}#0"],
            problems=[placed.problem],
        )
    try:
        frames = landing.records(obj.key)
    except Exception as exc:  # a failure names the object that caused it
        raise RuntimeError(f"landed object {uri}: {type(exc).__name__}: {exc}") from exc
    home = (
        [
            f.problem is not None
            or assigned_hour(event_hour_of(f.data), obj.last_modified, placed.hour, lateness) == hour
            for f in frames
        ]
        if placed.hour == hour
        else [
            f.problem is None and assigned_hour(event_hour_of(f.data), obj.last_modified, placed.hour, lateness) == hour
            for f in frames
        ]
    )
    kept = [f for f, mine in zip(frames, home, strict=True) if mine]
    return RawBatch(
        hour=hour,
        source="s3_landing",
        name=name,
        payloads=[f.data for f in kept],
        partition_keys=[""] * len(kept),
        arrivals=[f"{uri}#{f.offset}" for f in kept],
        problems=[f.problem for f in kept] if any(f.problem for f in kept) else None,
        routed_elsewhere=len(frames) - len(kept),
    )


def historian_batch(
    hour: datetime,
    historian: HistorianSource,
    spark,
    lateness: timedelta,
    rows_read: dict | None = None,
    now: datetime | None = None,
) -> RawBatch:
    """The historian's records of `hour`, once the hour has ended plus the lateness (late writes to
    the historian). Its rows read per monthly table go to `rows_read`."""
    complete = ready_at(hour, lateness)
    if (now or partitions.utc_now()) < complete:
        raise RuntimeError(
            f"hour {hour:%Y-%m-%d %H:00} is not complete until {complete:%H:%M} UTC "
            f"(allowed lateness {lateness}); materialise it after that"
        )
    got = historian.read_hour(spark, hour)
    if rows_read is not None:
        rows_read[partitions.hour_key(hour)] = got.rows_by_table
    problems = [r.problem for r in got.records]
    return RawBatch(
        hour=hour,
        source="historian",
        payloads=[r.payload for r in got.records],
        partition_keys=[r.device_id for r in got.records],
        arrivals=[r.arrival_id for r in got.records],
        problems=problems if any(problems) else None,
    )


def objects_batch(hour: datetime, source: str, objects: list[list[Framed]]) -> RawBatch:
    """One batch of the records of several objects, in order; a record the framer refused carries its problem."""
    records = [f for framed in objects for f in framed]
    problems = [f.problem for f in records]
    return RawBatch(
        hour=hour,
        source=source,
        payloads=[f.data for f in records],
        partition_keys=[""] * len(records),
        problems=problems if any(problems) else None,
    )


def landing_batches(hour: datetime, landing: LandingZone, lateness: timedelta) -> list[RawBatch]:
    """One batch per landed object that may hold records of `hour`; an hour with none gets one
    empty batch, so its raw partition exists."""
    batches = [landed_batch(hour, o, landing, lateness) for o in landing.objects_for_hour(hour, lateness)]
    return batches or [
        RawBatch(
            hour=hour, source="s3_landing", name=batch_name("s3_landing", "no objects"), payloads=[], partition_keys=[]
        )
    ]


@asset(
    partitions_def=hourly_partitions,
    io_manager_key="raw_io_manager",
    backfill_policy=BackfillPolicy.single_run(),
    group_name="raw",
    kinds={"s3", "kinesis", "postgres"},
    deps=["kinesis_stream", "landing_files", "historian_tables"],
    pool=LAKE_WRITER_POOL,  # its checks append to data_quality_log
    check_specs=[
        AssetCheckSpec(
            "check_raw_reconciles_arrivals",
            asset="raw_sensor_batches",
            blocking=True,
            description="Every arrival is stored: per hour and arrival batch (a landed object, a "
            "Kinesis drain, a simulated hour), records arrived = records in its raw object "
            "+ duplicates of records the hour already held + records of other hours.",
        ),
        AssetCheckSpec(
            "check_landing_keys_name_an_hour",
            asset="raw_sensor_batches",
            description="Landed objects whose key names no valid hour (WARN): each is one "
            "`unplaced_object` row in bronze_quarantine, in the hour it was last modified.",
        ),
    ],
)
def raw_sensor_batches(
    context: AssetExecutionContext,
    raw_source: RawSource,
    aws: AwsResource,
    landing: LandingZone,
    historian: HistorianSource,
    spark: SparkResource,
    lake: DeltaLakehouse,
):
    """The hour's sensor records exactly as they arrived, backed up to S3 as gzip JSON lines.

    Simulated hours are also published to Kinesis (unless `publish_simulated` is off). With
    `IOT_RAW_SOURCE=kinesis` the hour is drained from the stream instead: the records that arrived
    in it, and late ones within the allowed lateness. Runs started by `s3_landing_sensor` read the
    files landed under the landing prefix (`source: s3_landing`). With `IOT_RAW_SOURCE=historian`
    the hour's samples are read from the SQL historian's monthly tables and pivoted into one
    record per device scan.
    """
    hours = hours_in(context.partition_time_window)
    rows_read: dict[str, dict[str, int]] = {}  # historian rows per hour and monthly table
    if raw_source.source == "simulator":
        fleet = raw_source.fleet
        batches = RawBatches(hours, lambda h: [simulated_batch(h, fleet, raw_source.publish_simulated)])
    elif raw_source.source == "kinesis":
        batches = RawBatches(hours, lambda h: [kinesis_batch(h, aws.kinesis, raw_source.stream, raw_source.lateness)])
    elif raw_source.source == "s3_landing":
        batches = RawBatches(hours, lambda h: landing_batches(h, landing, raw_source.lateness))
    elif raw_source.source == "historian":
        batches = RawBatches(
            hours, lambda h: [historian_batch(h, historian, spark.session, raw_source.lateness, rows_read)]
        )
    else:
        raise ValueError(
            f"unknown raw source {raw_source.source!r}; use 'simulator', 'kinesis', 's3_landing' or 'historian'"
        )
    # The IO manager stores the batches while this generator waits, and fills their ledgers.
    yield Output(batches)
    yield from quality.report(
        context, spark.session, lake, arrival_checks(batches, {"historian_rows_read": rows_read} if rows_read else None)
    )


def arrival_checks(batches: RawBatches, extra: dict | None = None) -> list[quality.Evaluation]:
    """The two arrival checks, on the ledgers the IO manager filled while storing, per hour."""
    audits = {parse_hour_key(h): ledger.audit() for h, ledger in batches.ledgers.items()}
    failing = {hour_key(h): problems for h, (_, _, problems) in audits.items() if problems}
    unplaced = {
        parse_hour_key(h): (ledger.arrived() - n, n)
        for h, ledger in batches.ledgers.items()
        for n in [ledger.unplaced()]
    }
    unplaced_count = sum(n for _, n in unplaced.values())
    return [
        quality.Evaluation(
            "raw_sensor_batches",
            "check_raw_reconciles_arrivals",
            quality.ERROR,
            not failing,
            {h: (ok, bad) for h, (ok, bad, _) in audits.items()},
            "records arrived = stored in raw + duplicates already held + records of other hours"
            if not failing
            else f"arrivals not accounted for in {len(failing)} hour(s)",
            {
                "arrivals_per_hour": {h: lg.by_source() for h, lg in batches.ledgers.items()},
                "problems": {h: p[:10] for h, p in failing.items()},
                **(extra or {}),
            },
        ),
        quality.Evaluation(
            "raw_sensor_batches",
            "check_landing_keys_name_an_hour",
            quality.WARN,
            not unplaced_count,
            unplaced,
            f"{unplaced_count} landed object(s) whose key names no valid hour, each one {reasons.UNPLACED_OBJECT} row",
            {
                "unplaced_objects": unplaced_count,
                "unplaced_by_hour": {hour_key(h): n for h, (_, n) in unplaced.items() if n},
                "reason": reasons.UNPLACED_OBJECT,
            },
        ),
    ]
