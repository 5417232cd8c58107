"""Small PNG charts for materialisation metadata, embedded in markdown as data-URI images.

The Dagster UI's markdown metadata renderer allows `data:` image sources, so a chart travels with
the materialisation event itself: no extra storage, no link that can break. Charts are kept small
(a few tens of KB) because every event is stored in the run database.
"""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")  # no display on servers; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from dagster import MetadataValue  # noqa: E402

# One marker per detection method, so a reader sees which method flagged which reading; drawn in
# this order, so a reading flagged by several methods shows every marker.
METHOD_STYLE = {
    "shift": dict(marker="s", facecolors="none", edgecolors="#2ca02c", s=70, linewidths=1.0),
    "kmeans": dict(marker="^", color="#9467bd", s=60),
    "zscore": dict(marker="o", facecolors="none", edgecolors="#ff7f0e", s=90, linewidths=1.5),
    "threshold": dict(marker="x", color="#d62728", s=40),
}
_DPI = 80


def png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def markdown_image(png: bytes, alt: str) -> MetadataValue:
    """The PNG as a markdown metadata value the UI renders inline."""
    return MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")


def base_metric(metric: str) -> str:
    """`multivariate:vibration_log_spread` -> `vibration`: the reading column a flag is about."""
    return metric.split(":", 1)[-1].removesuffix("_log_spread")


def anomaly_chart(readings: pd.DataFrame, anomalies: pd.DataFrame, devices: list[str], title: str) -> bytes:
    """One panel per device: its most-flagged metric over the hour, each flag marked by method.

    `readings`: device_id, event_time and the metric columns. `anomalies`: device_id, event_time,
    metric, method (rows of the anomaly log).
    """
    devices = devices or ["(no anomalous device)"]
    fig, axes = plt.subplots(len(devices), 1, figsize=(7, 1.9 * len(devices)), squeeze=False, sharex=True)
    flags = anomalies.assign(column=anomalies["metric"].map(base_metric)) if len(anomalies) else anomalies
    for ax, device in zip(axes[:, 0], devices, strict=False):
        mine = flags[flags["device_id"] == device] if len(flags) else flags
        series = readings[readings["device_id"] == device].sort_values("event_time")
        column = mine["column"].mode().iloc[0] if len(mine) else None
        if column is None or series.empty or column not in series:
            ax.text(0.5, 0.5, "no anomalies", ha="center", va="center", transform=ax.transAxes)
            ax.set_ylabel(device, fontsize=8)
            continue
        ax.plot(series["event_time"], series[column], color="#1f77b4", linewidth=1)
        values = series.set_index("event_time")[column]
        for method, style in METHOD_STYLE.items():
            hits = mine[(mine["method"] == method) & (mine["column"] == column)]
            times = hits["event_time"][hits["event_time"].isin(values.index)].drop_duplicates()
            if len(times):
                ax.scatter(times, values.loc[times], label=method, zorder=3, **style)
        ax.set_ylabel(f"{device}\n{column}", fontsize=8)
        ax.tick_params(labelsize=7)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper right")
    axes[0, 0].set_title(title, fontsize=9)
    fig.autofmt_xdate()
    return png_bytes(fig)


def distance_chart(distances: pd.DataFrame, title: str) -> bytes:
    """Training distances to the nearest centroid, as multiples of each device's threshold.

    `distances`: device_id, distance, threshold (rows: distance quantiles of each device's
    training readings). Pooling the ratio
    lets one chart show every device: the threshold is the line at 1, and readings beyond it in
    the next hour are the KMeans anomalies.
    """
    fig, ax = plt.subplots(figsize=(6, 2.6))
    if distances.empty:
        ax.text(0.5, 0.5, "no trained models", ha="center", va="center", transform=ax.transAxes)
    else:
        ratio = (distances["distance"] / distances["threshold"]).to_numpy()
        # Each row stands for an equal share of its device's readings (quantiles), so the bars are
        # percentages of training readings, every device weighing the same.
        ax.hist(
            ratio,
            bins=np.linspace(0, max(1.2, float(ratio.max()) * 1.05), 40),
            color="#1f77b4",
            weights=np.full(len(ratio), 100.0 / len(ratio)),
        )
        ax.axvline(1.0, color="#d62728", linestyle="--", label="threshold")
        beyond = float((ratio > 1).mean())
        ax.set_xlabel("training distance / device threshold", fontsize=8)
        ax.set_ylabel("% of training readings", fontsize=8)
        ax.legend(
            fontsize=7, title=f"{distances['device_id'].nunique()} devices, {beyond:.2%} beyond", title_fontsize=7
        )
        ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=9)
    return png_bytes(fig)
