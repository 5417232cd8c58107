"""The anomaly detectors' settings: fixed threshold rules, and KMeans and z-score parameters."""

import hashlib
import json

from dagster import Config, ConfigurableResource
from pydantic import Field

from iot_assets.lib import catalogue


class ThresholdRule(Config):
    metric: str
    op: str  # ">" or "<"
    limit: float


# The sensor catalogue's limits (for the shipped fleet, the seed pipelines').
DEFAULT_RULES = [{"metric": r.channel, "op": r.op, "limit": r.limit} for r in catalogue.active().threshold_rules]


class ThresholdRules(ConfigurableResource):
    """Fixed limits per metric; set `IOT_THRESHOLD_RULES` to a JSON list to replace them."""

    rules: list[ThresholdRule] = DEFAULT_RULES

    @property
    def parsed(self) -> list[ThresholdRule]:
        return [r if isinstance(r, ThresholdRule) else ThresholdRule(**r) for r in self.rules]

    @property
    def version(self) -> str:
        text = json.dumps([r.model_dump() for r in self.parsed], sort_keys=True)
        return "rules-" + hashlib.sha1(text.encode()).hexdigest()[:8]


class AnomalyModelConfig(ConfigurableResource):
    """KMeans and z-score settings (all also run config)."""

    k: int = 3
    min_training_rows: int = 120
    distance_percentile: float = 99.5
    threshold_margin: float = 1.5
    max_iterations: int = 25
    seed: int = 11
    zscore_limit: float = 3.0
    min_baseline_readings: int = 30
    # A device is learning until its trailing day reaches back this many hours from its first
    # reporting hour: its model and baseline are not used before (one daily cycle by default).
    learning_hours: int = Field(default=24, ge=0, le=24)
