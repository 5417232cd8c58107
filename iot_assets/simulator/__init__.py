from iot_assets.simulator.fleet import (  # noqa: F401
    AnomalyLabel,
    Device,
    FleetConfig,
    SimulatedHour,
    device_registry,
    simulate_hour,
)
