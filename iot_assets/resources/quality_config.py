"""Limits of the data-quality rate checks, as a resource."""

from dagster import ConfigurableResource


class DataQualityConfig(ConfigurableResource):
    """Limits of the rate checks."""

    max_quarantine_rate: float = 0.05
    anomaly_spike_factor: float = 3.0
    anomaly_spike_floor: float = 0.01
