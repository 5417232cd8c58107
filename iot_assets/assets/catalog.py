"""How the assets present themselves in the catalog: who owns each layer, how fresh the outputs
people read must be, and links from each asset to the code that defines it.

Freshness is declared once, as `FreshnessPolicy`: Dagster's freshness daemon evaluates it (the UI
shows the state), and `freshness_alert_sensor` sends each stale state through the alert sinks.

Kept together so a reader sees the whole catalog at once; the layer files keep what each table is.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from dagster import AssetsDefinition, AssetSpec, FreshnessPolicy, map_asset_specs, with_source_code_references

from iot_assets import settings
from iot_assets.assets.gold import AGGREGATES_10MIN, DAILY_SUMMARY, HOURLY_STATS
from iot_assets.assets.silver import SILVER_READINGS
from iot_assets.assets.verdicts import ANOMALY_LOG

# Owners by group (layer). The platform team runs ingestion and the tables; the reliability team
# owns what decides whether a device is anomalous.
GROUP_OWNERS = {
    "raw": ["team:iot-data-platform"],
    "reference": ["team:iot-data-platform"],
    "bronze": ["team:iot-data-platform"],
    "silver": ["team:iot-data-platform"],
    "gold": ["team:iot-data-platform", "team:iot-analytics"],
    "anomalies": ["team:iot-reliability"],
}

_MINUTE = int(settings.get("IOT_FRESHNESS_DEADLINE_MINUTE"))
# Hourly outputs: the previous hour must land between the last deadline and this one.
HOURLY = FreshnessPolicy.cron(deadline_cron=f"{_MINUTE} * * * *", lower_bound_delta=timedelta(hours=1))
# The day's summary needs the day's last hour, which completes at midnight: due an hour after it.
DAILY = FreshnessPolicy.cron(deadline_cron=f"{_MINUTE} 1 * * *", lower_bound_delta=timedelta(hours=2))
FRESHNESS = {
    SILVER_READINGS.key: HOURLY,
    HOURLY_STATS.key: HOURLY,
    AGGREGATES_10MIN.key: HOURLY,
    DAILY_SUMMARY.key: DAILY,
    ANOMALY_LOG.key: HOURLY,
}


def _catalog_spec(spec: AssetSpec) -> AssetSpec:
    return spec.replace_attributes(
        owners=GROUP_OWNERS[spec.group_name], freshness_policy=FRESHNESS.get(spec.key, spec.freshness_policy)
    )


def catalogued(assets: Sequence[AssetsDefinition]) -> list[AssetsDefinition]:
    """The assets with their owners, freshness policies and source-code references."""
    return list(with_source_code_references(map_asset_specs(_catalog_spec, assets)))
