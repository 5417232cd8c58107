"""Growth: the throughput hour (raw written beforehand, then bronze through the anomaly log) at
several fleet sizes, smallest first, each on its own hour and lake prefix, in one process and one
Spark session. The cost per reading should not grow with the fleet, and fixed costs should shrink
in relative terms.

The JVM keeps the memory earlier sizes grew it to, so the largest size's peak RSS is what a
long-lived run process reaches, not a fresh one's."""

from __future__ import annotations

from benchmarks.throughput import partition

FIRST_HOUR_BACK = 4  # hours 1-3 are the throughput, first-hour and Connect measurements'


def compare(fleets: list, progress=print) -> list[dict]:
    """`partition` at each fleet size (no engine floor), each `hours_back` its own."""
    fleets = sorted(fleets, key=lambda f: f.device_count)
    return [
        partition(f, progress, hours_back=FIRST_HOUR_BACK + i, name=f"growth-{f.device_count}", floor=False)
        for i, f in enumerate(fleets)
    ]


def seconds_per_million(size: dict) -> float:
    return size["pipeline_seconds"] / size["raw_records"] * 1e6


def summarise(sizes: list[dict]) -> dict:
    """Flat figures for each size, and the growth ratio: the largest size's seconds per million
    readings over the next size down's (the issue's 3,000 against 1,000 devices)."""
    if len(sizes) < 2:
        raise ValueError("growth needs at least two fleet sizes")
    sizes = sorted(sizes, key=lambda s: s["devices"])
    figures: dict = {"readings_per_hour": sizes[0]["readings_per_hour"]}
    for s in sizes:
        n = s["devices"]
        figures[f"readings_{n}_devices"] = s["raw_records"]
        figures[f"pipeline_seconds_{n}_devices"] = s["pipeline_seconds"]
        figures[f"seconds_per_million_{n}_devices"] = round(seconds_per_million(s), 1)
        figures[f"peak_driver_rss_gib_{n}_devices"] = s["memory"]["peak_driver_rss_gib"]
    largest, below = sizes[-1], sizes[-2]
    figures["growth_ratio"] = round(seconds_per_million(largest) / seconds_per_million(below), 2)
    figures["smallest_seconds"] = sizes[0]["pipeline_seconds"]
    figures["step_seconds"] = {str(s["devices"]): s["step_seconds"] for s in sizes}
    return figures


def met(figures: dict, ratio_limit: float = 1.2, smallest_limit_s: float = 60) -> bool:
    return figures["growth_ratio"] <= ratio_limit and figures["smallest_seconds"] <= smallest_limit_s
