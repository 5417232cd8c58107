"""The anomaly detectors' settings: fixed threshold rules, and KMeans and z-score parameters."""

import hashlib
import json

from dagster import Config, ConfigurableResource


class ThresholdRule(Config):
    metric: str
    op: str  # ">" or "<"
    limit: float


# The seeds' limits: temperature above 80 °C or below 5 °C, pressure above 4 bar, vibration above
# 4.5 mm/s, humidity above 85 %, battery below 20 %.
DEFAULT_RULES = [
    {"metric": "temperature", "op": ">", "limit": 80.0},
    {"metric": "temperature", "op": "<", "limit": 5.0},
    {"metric": "pressure", "op": ">", "limit": 4.0},
    {"metric": "vibration", "op": ">", "limit": 4.5},
    {"metric": "humidity", "op": ">", "limit": 85.0},
    {"metric": "battery_level", "op": "<", "limit": 20.0},
]


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
