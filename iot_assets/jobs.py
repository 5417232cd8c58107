"""Jobs over the hourly assets."""

from dagster import AssetSelection, define_asset_job

HOURLY_PIPELINE = AssetSelection.groups("raw", "bronze", "silver") | AssetSelection.assets(
    "device_hourly_stats", "sensor_aggregates_10min")

hourly_pipeline_job = define_asset_job(
    "hourly_pipeline_job",
    selection=HOURLY_PIPELINE,
    description="Raw batch to bronze, silver and hourly gold for one hour (or a range, as one run).",
)
