"""Raw: each hour's records as they arrived, from the fleet simulator or drained from Kinesis."""


from dataclasses import asdict
from datetime import datetime, timedelta

from dagster import AssetExecutionContext, BackfillPolicy, ConfigurableResource, asset

from iot_assets import partitions
from iot_assets.partitions import hours_in, hourly_partitions, ready_at
from iot_assets.resources.aws import AwsResource
from iot_assets.resources.io_managers import RawBatch, RawBatches
from iot_assets.resources.kinesis import assigned_hour, read_arrivals
from iot_assets.resources.landing import LandingZone, ObjectRecords
from iot_assets.simulator import FleetConfig, simulate_hour


class RawSource(ConfigurableResource):
    """Where raw batches come from: `simulator` (default), `kinesis`, or `s3_landing` (files landed by producers)."""

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
    sim = simulate_hour(hour, fleet)
    return RawBatch(hour=hour, source="simulator", payloads=[r.encode() for r in sim.records],
                    partition_keys=sim.partition_keys, publish=True,
                    ground_truth=[asdict(label) for label in sim.labels])


def kinesis_batch(hour: datetime, kinesis, stream: str, lateness: timedelta,
                  now: datetime | None = None) -> RawBatch:
    """The records that belong to `hour`: those arriving in it, plus late ones within the lateness."""
    complete = ready_at(hour, lateness)
    now = now or partitions.utc_now()
    if now < complete:
        raise RuntimeError(f"hour {hour:%Y-%m-%d %H:00} is not complete until {complete:%H:%M} UTC "
                           f"(allowed lateness {lateness}); materialise it after that")
    records = [r for r in read_arrivals(kinesis, stream, hour, complete) if assigned_hour(r, lateness) == hour]
    records.sort(key=lambda r: (r.shard_id, int(r.sequence_number)))
    return RawBatch(hour=hour, source="kinesis", payloads=[r.data for r in records],
                    partition_keys=[r.partition_key for r in records],
                    kinesis=[(r.shard_id, r.sequence_number, r.arrival.isoformat()) for r in records])


def objects_batch(hour: datetime, source: str, objects: list[ObjectRecords]) -> RawBatch:
    """One batch of the records of several objects, in order; an unreadable object is one marked record."""
    payloads, problems = [], []
    for got in objects:
        payloads += got.records
        problems += [got.problem] * len(got.records)
    return RawBatch(hour=hour, source=source, payloads=payloads, partition_keys=[""] * len(payloads),
                    problems=problems if any(problems) else None)


def landing_batch(hour: datetime, landing: LandingZone) -> RawBatch:
    """Every record in the files landed for `hour`, in key order."""
    return objects_batch(hour, "s3_landing", [landing.records(o.key) for o in landing.objects_for_hour(hour)])


@asset(
    partitions_def=hourly_partitions,
    io_manager_key="raw_io_manager",
    backfill_policy=BackfillPolicy.single_run(),
    group_name="raw",
    kinds={"s3", "kinesis"},
)
def raw_sensor_batches(context: AssetExecutionContext, raw_source: RawSource, aws: AwsResource,
                       landing: LandingZone) -> RawBatches:
    """The hour's sensor records exactly as they arrived, backed up to S3 as gzip JSON lines.

    Simulated hours are also published to Kinesis. With `IOT_RAW_SOURCE=kinesis` the hour is
    drained from the stream instead: the records that arrived in it, and late ones within the
    allowed lateness. Runs started by `s3_landing_sensor` read the files landed under the landing
    prefix (`source: s3_landing`).
    """
    hours = hours_in(context.partition_time_window)
    if raw_source.source == "simulator":
        fleet = raw_source.fleet
        return RawBatches(hours, lambda h: simulated_batch(h, fleet))
    if raw_source.source == "kinesis":
        return RawBatches(hours, lambda h: kinesis_batch(h, aws.kinesis, raw_source.stream, raw_source.lateness))
    if raw_source.source == "s3_landing":
        return RawBatches(hours, lambda h: landing_batch(h, landing))
    raise ValueError(f"unknown raw source {raw_source.source!r}; use 'simulator', 'kinesis' or 's3_landing'")
