from iot_assets.tools.simulator.fleet import (  # noqa: F401
    AnomalyLabel,
    Device,
    FleetConfig,
    SimulatedHour,
    device_registry,
    simulate_hour,
)
