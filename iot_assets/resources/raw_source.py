"""Where raw batches come from, as a resource the raw asset and the arrival sensors share."""

from datetime import timedelta

from dagster import ConfigurableResource

from iot_assets.tools.simulator import FleetConfig


class RawSource(ConfigurableResource):
    """Where raw batches come from: `simulator` (default), `kinesis`, `s3_landing` (files landed by
    producers) or `historian` (a PostgreSQL SQL historian)."""

    source: str = "simulator"
    device_count: int = 50
    readings_per_hour: int = 60
    seed: int = 7
    anomaly_rate: float = 0.04
    malformed_rate: float = 0.01
    allowed_lateness_minutes: float = 10  # fractions allowed: 0.5 is 30 s
    # A simulated hour is also published to the stream, as a live fleet would send it; history
    # landed by `make dev` is not (the live Kinesis sensor would read it into the current hour).
    publish_simulated: bool = True
    stream: str = "iot-sensor-readings"

    @property
    def fleet(self) -> FleetConfig:
        return FleetConfig(
            device_count=self.device_count,
            readings_per_hour=self.readings_per_hour,
            seed=self.seed,
            anomaly_rate=self.anomaly_rate,
            malformed_rate=self.malformed_rate,
        )

    @property
    def lateness(self) -> timedelta:
        return timedelta(minutes=self.allowed_lateness_minutes)
