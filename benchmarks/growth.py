"""Growth: the throughput hour (raw written beforehand, then bronze through the anomaly log) at
several fleet sizes, smallest first, each on its own hour and lake prefix, in one process and one
Spark session. The cost per reading should not grow with the fleet, and fixed costs should shrink
in relative terms.

Every size is measured the same way, on a JVM that has run the pipeline at least once: before
the sizes, the smallest fleet's hour runs on its own hour and prefix (the warm-up, reported apart
as `warm_up_*`). When the growth run is the first measurement of its process (`--only growth`),
the warm-up is the JVM's first hour, which also pays HotSpot compiling Spark's generated code
(benchmarks/README.md); measured inside the sizes, that cost landed on whichever size ran first.
What a run process that starts its own JVM pays is `backfill_process_per_run`'s measure.

The JVM keeps the memory earlier sizes grew it to, so the largest size's peak RSS is what a
long-lived run process reaches, not a fresh one's."""

from __future__ import annotations

from benchmarks.throughput import partition

FIRST_HOUR_BACK = 4  # hours 1-3 are the throughput, first-hour and Connect measurements'


def compare(fleets: list, progress=print) -> tuple[dict, list[dict]]:
    """(the warm-up, `partition` at each fleet size): the warm-up is the smallest fleet's hour; no
    engine floor; each hour (`hours_back`) its own."""
    fleets = sorted(fleets, key=lambda f: f.device_count)
    smallest = fleets[0]
    progress(f"   warm-up: {smallest.device_count:,} devices (reported apart)")
    warm_up = partition(
        smallest, progress, hours_back=FIRST_HOUR_BACK + len(fleets), name="growth-warm-up", floor=False
    )
    sizes = [
        partition(f, progress, hours_back=FIRST_HOUR_BACK + i, name=f"growth-{f.device_count}", floor=False)
        for i, f in enumerate(fleets)
    ]
    return warm_up, sizes


def seconds_per_million(size: dict) -> float:
    return size["pipeline_seconds"] / size["raw_records"] * 1e6


def summarise(sizes: list[dict], warm_up: dict | None = None) -> dict:
    """Flat figures for each size, and the growth ratio: the largest size's seconds per million
    readings over the next size down's (the issue's 3,000 against 1,000 devices). The warm-up hour
    is reported as `warm_up_*`."""
    if len(sizes) < 2:
        raise ValueError("growth needs at least two fleet sizes")
    sizes = sorted(sizes, key=lambda s: s["devices"])
    figures: dict = {"readings_per_hour": sizes[0]["readings_per_hour"]}
    if warm_up is not None:
        figures["warm_up_devices"] = warm_up["devices"]
        figures["warm_up_pipeline_seconds"] = warm_up["pipeline_seconds"]
        figures["warm_up_step_seconds"] = warm_up["step_seconds"]
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
