"""The metadata charts: real PNGs, small enough for the event log, showing what they claim."""

import base64
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from iot_assets.lib import plots

T0 = datetime(2026, 1, 1, 10)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _readings() -> pd.DataFrame:
    rows = []
    for d in ("dev-1", "dev-2"):
        for i in range(30):
            rows.append(
                {
                    "device_id": d,
                    "event_time": T0 + timedelta(minutes=2 * i),
                    "temperature": 20.0 + (30.0 if (d, i) == ("dev-1", 7) else 0.0),
                    "vibration": 1.0 + i / 30,
                }
            )
    return pd.DataFrame(rows)


def _flags() -> pd.DataFrame:
    hit = T0 + timedelta(minutes=14)
    return pd.DataFrame(
        [
            {"device_id": "dev-1", "event_time": hit, "metric": "temperature", "method": "threshold"},
            {"device_id": "dev-1", "event_time": hit, "metric": "temperature", "method": "zscore"},
            {"device_id": "dev-1", "event_time": hit, "metric": "multivariate:temperature", "method": "kmeans"},
            {"device_id": "dev-2", "event_time": T0, "metric": "multivariate:vibration_log_spread", "method": "kmeans"},
        ]
    )


def _size(png: bytes) -> tuple[int, int]:
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def test_base_metric_maps_every_method_to_its_reading_column():
    assert plots.base_metric("temperature") == "temperature"
    assert plots.base_metric("multivariate:humidity") == "humidity"
    assert plots.base_metric("multivariate:vibration_log_spread") == "vibration"


def test_anomaly_chart_is_a_small_png_with_a_panel_per_device():
    one = plots.anomaly_chart(_readings(), _flags(), ["dev-1"], "one")
    two = plots.anomaly_chart(_readings(), _flags(), ["dev-1", "dev-2"], "two")
    assert one.startswith(PNG_MAGIC) and two.startswith(PNG_MAGIC)
    assert len(two) < 100_000
    assert _size(two)[1] > _size(one)[1] * 1.5  # a second panel below the first


def test_anomaly_chart_without_anomalies_still_renders():
    png = plots.anomaly_chart(_readings(), _flags().iloc[0:0], [], "quiet hour")
    assert png.startswith(PNG_MAGIC)


def test_distance_chart_and_markdown_embedding():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "device_id": np.repeat(["a", "b"], 101),
            "distance": rng.gamma(2.0, 0.5, 202),
            "threshold": np.repeat([4.0, 5.0], 101),
        }
    )
    png = plots.distance_chart(frame, "models")
    assert png.startswith(PNG_MAGIC) and len(png) < 100_000
    md = plots.markdown_image(png, "chart").value
    assert md.startswith("![chart](data:image/png;base64,")
    assert base64.b64decode(md.split(",", 1)[1].rstrip(")")) == png
    assert plots.distance_chart(frame.iloc[0:0], "no models").startswith(PNG_MAGIC)
