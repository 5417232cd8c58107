"""historian_arrival_sensor: the hours to request, and ticks against a real PostgreSQL historian."""

from datetime import UTC, datetime, timedelta

import psycopg2
import pytest
from dagster import AssetMaterialization, DagsterInstance, SensorResult, SkipReason, build_sensor_context

from iot_assets.automation.historian_arrivals import historian_arrival_sensor, hours_to_request
from iot_assets.resources.aws import AwsResource
from iot_assets.resources.historian import HistorianSource
from iot_assets.resources.raw_source import RawSource
from iot_assets.tools.simulator import FleetConfig
from iot_assets.tools.simulator.historian import seed

UTC = UTC
START = datetime(2026, 11, 1, tzinfo=UTC)
LATENESS = timedelta(minutes=10)


def test_an_hour_is_requested_once_the_newest_sample_passes_its_end_plus_lateness():
    oldest = datetime(2026, 11, 30, 20, 0, 30, tzinfo=UTC)
    at = datetime(2026, 11, 30, 23, 9, 59, tzinfo=UTC)
    assert hours_to_request(None, oldest, at, LATENESS, START) == (
        datetime(2026, 11, 30, 20, tzinfo=UTC),
        datetime(2026, 11, 30, 21, tzinfo=UTC),
    )
    assert hours_to_request(None, oldest, at + timedelta(seconds=1), LATENESS, START)[1] == datetime(
        2026, 11, 30, 22, tzinfo=UTC
    )
    assert (
        hours_to_request(datetime(2026, 11, 30, 22, tzinfo=UTC), oldest, at + timedelta(seconds=1), LATENESS, START)
        is None
    )
    # history older than the first partition starts at the first partition
    assert hours_to_request(None, datetime(2025, 1, 1, tzinfo=UTC), at, LATENESS, START)[0] == START


@pytest.mark.e2e
def test_the_first_tick_backfills_as_one_run_and_later_ticks_request_new_hours(historian_db, local_aws):
    fleet = FleetConfig(device_count=2, readings_per_hour=6, anomaly_rate=0.0)
    first = datetime(2026, 11, 29, 22, tzinfo=UTC)
    with psycopg2.connect(**historian_db["libpq"]) as conn:
        seed(conn, fleet, [first + timedelta(hours=i) for i in range(4)], prefix="sensor_data", tag_table="sensor_te")
    historian = HistorianSource(
        aws=AwsResource(endpoint_url=local_aws),
        table_prefix="sensor_data",
        tag_table="sensor_te",
        **historian_db["settings"],
    )
    resources = {"raw_source": RawSource(source="historian", allowed_lateness_minutes=10), "historian": historian}
    with DagsterInstance.ephemeral() as instance:
        instance.report_runless_asset_event(AssetMaterialization("device_registry"))

        def tick(cursor=None):
            with build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
                return historian_arrival_sensor(context)

        # samples up to ~01:5x: hours 22:00 .. 00:00 are complete (01:00 ends at 02:00, plus the lateness)
        result = tick()
        assert isinstance(result, SensorResult)
        [request] = result.run_requests
        assert request.tags["dagster/asset_partition_range_start"] == "2026-11-29-22:00"
        assert request.tags["dagster/asset_partition_range_end"] == "2026-11-30-00:00"
        assert result.cursor == "2026-11-30-00:00"
        assert isinstance(tick(result.cursor), SkipReason)
        with psycopg2.connect(**historian_db["libpq"]) as conn:
            seed(conn, fleet, [first + timedelta(hours=4)], prefix="sensor_data", tag_table="sensor_te")
        later = tick(result.cursor)
        [request] = later.run_requests
        assert (
            request.tags["dagster/asset_partition_range_start"],
            request.tags["dagster/asset_partition_range_end"],
        ) == ("2026-11-30-01:00", "2026-11-30-01:00")
        assert historian_db["password"] not in repr(later)
    refused = HistorianSource(
        aws=AwsResource(endpoint_url=local_aws),
        table_prefix="sensor_data",
        password="wrong",
        jdbc_url=historian_db["settings"]["jdbc_url"],
        user="historian",
    )
    with DagsterInstance.ephemeral() as instance:
        instance.report_runless_asset_event(AssetMaterialization("device_registry"))
        with build_sensor_context(instance=instance, resources={**resources, "historian": refused}) as context:
            skipped = historian_arrival_sensor(context)
    assert isinstance(skipped, SkipReason) and "did not answer" in skipped.skip_message
