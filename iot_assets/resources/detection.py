"""The anomaly detectors' settings: fixed threshold rules, and KMeans and z-score parameters."""

import hashlib
import json
from datetime import UTC, datetime

from dagster import Config, ConfigurableResource
from pydantic import Field, model_validator

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


TRAILING = "trailing"
PINNED = "pinned"


def parse_hour(name: str, text: str) -> datetime:
    """An ISO hour (`2026-11-20T00:00`, UTC unless it says otherwise) as an aware UTC datetime."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{name} must be an ISO hour such as 2026-11-20T00:00 (UTC); got {text!r}") from None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if (moment.minute, moment.second, moment.microsecond) != (0, 0, 0):
        raise ValueError(f"{name} must be a whole hour (minutes and seconds 0); got {text!r}")
    return moment


class AnomalyModelConfig(ConfigurableResource):
    """KMeans and z-score settings (all also run config).

    `training_policy`: `trailing` (each hour's model and baseline come from the device's previous
    24 hours) or `pinned` (every hour from `pinned_end` on uses the known-good range
    [`pinned_start`, `pinned_end`), so the models stay the same until the range is changed)."""

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
    training_policy: str = TRAILING
    pinned_start: str = ""
    pinned_end: str = ""

    @model_validator(mode="after")
    def _check_pinned_range(self):
        if self.training_policy not in (TRAILING, PINNED):
            raise ValueError(f"training_policy must be {TRAILING!r} or {PINNED!r}; got {self.training_policy!r}")
        for name in ("pinned_start", "pinned_end"):
            if getattr(self, name):
                parse_hour(name, getattr(self, name))
        if self.training_policy == PINNED:
            if not (self.pinned_start and self.pinned_end):
                raise ValueError(
                    "training_policy 'pinned' needs both pinned_start and pinned_end (IOT_PINNED_START, "
                    "IOT_PINNED_END): the known-good range the models are trained on"
                )
            start, end = self.pinned_range
            if start >= end:
                raise ValueError(
                    f"pinned_start must be before pinned_end; got {self.pinned_start} .. {self.pinned_end}"
                )
        return self

    @property
    def pinned_range(self) -> tuple[datetime, datetime] | None:
        """[start, end) as aware UTC datetimes under the pinned policy, else None."""
        if self.training_policy != PINNED:
            return None
        return parse_hour("pinned_start", self.pinned_start), parse_hour("pinned_end", self.pinned_end)
