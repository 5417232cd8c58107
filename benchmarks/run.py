"""`make bench`: measurements with targets, separate from the tests.

Each measurement generates its own data with the fleet simulator at the chosen scale and runs
both sides of its comparison in one invocation on the same data, so the figure that matters is
a ratio and survives a noisy machine. Results go to `benchmarks/results/latest.json` (one object
per measurement, merged by name, so `--only` refreshes some and keeps the rest) and to the
README's benchmark table.

    python -m benchmarks.run --scale small|full [--only training,...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "latest.json"
README = ROOT / "README.md"
TABLE_START, TABLE_END = "<!-- bench:start -->", "<!-- bench:end -->"

SCALES = {
    # devices for model training, and how many of them the naive per-device loop fits
    "small": {"training_devices": 100, "loop_sample": 3},
    "full": {"training_devices": 1000, "loop_sample": 10},
}


def measurement(name: str, scale: str, figures: dict, ratio: float | None, target: str, met: bool | None,
                notes: str = "") -> dict:
    return {"name": name, "scale": scale, "figures": figures, "ratio": None if ratio is None else round(ratio, 2),
            "target": target, "met": met, "notes": notes,
            "measured_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": f"{os.cpu_count()} cores, {platform.system()} {platform.machine()}, Python {platform.python_version()}",
            # Other work on the machine skews absolute times (the ratios hold up better).
            "load_average_1m_after": round(os.getloadavg()[0], 2)}


def bench_training(scale: str, progress=print) -> dict:
    from benchmarks.training import compare

    cfg = SCALES[scale]
    f = compare(cfg["training_devices"], cfg["loop_sample"], progress)
    ratio = f["loop_seconds_scaled"] / f["grouped_seconds"]
    met = ratio >= 10 and (f["devices"] < 1000 or f["grouped_seconds"] <= 90)
    return measurement(
        "model_training", scale, f, ratio,
        "grouped training >= 10x faster than a per-device pyspark.ml KMeans loop; ~1 minute for 1,000 devices",
        met, notes=f"the loop was timed on {f['loop_devices']} devices and scaled to {f['devices']}")


BENCHES = {"training": bench_training}


def save(results: list[dict]) -> list[dict]:
    """Merge into latest.json by (name, scale) and rewrite the README table."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    fresh = {(r["name"], r["scale"]) for r in results}
    merged = [r for r in old if (r["name"], r["scale"]) not in fresh] + results
    merged.sort(key=lambda r: (r["name"], r["scale"]))
    RESULTS.write_text(json.dumps(merged, indent=2) + "\n")
    if README.exists() and TABLE_START in README.read_text():
        text = README.read_text()
        table = render(merged)
        text = re.sub(re.escape(TABLE_START) + ".*?" + re.escape(TABLE_END),
                      lambda _: f"{TABLE_START}\n{table}\n{TABLE_END}", text, flags=re.S)
        README.write_text(text)
    return merged


def render(results: list[dict]) -> str:
    rows = ["| measurement | scale | figures | ratio | target | met |", "|---|---|---|---|---|---|"]
    for r in results:
        figs = ", ".join(f"{k} {v}" for k, v in r["figures"].items())
        met = {True: "yes", False: "**no**", None: "-"}[r["met"]]
        rows.append(f"| {r['name']} | {r['scale']} | {figs} | {r['ratio']} | {r['target']} | {met} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--only", default=",".join(BENCHES), help=f"comma-separated subset of {', '.join(BENCHES)}")
    args = parser.parse_args(argv)
    wanted = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = set(wanted) - set(BENCHES)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    results = []
    for name in wanted:
        began = time.monotonic()
        print(f"== {name} ({args.scale})", flush=True)
        results.append(BENCHES[name](args.scale))
        print(f"   {json.dumps(results[-1]['figures'])} ratio {results[-1]['ratio']} met {results[-1]['met']} "
              f"({time.monotonic() - began:.0f} s)", flush=True)
    save(results)
    print(f"wrote {RESULTS.relative_to(ROOT)}\n\n{render(results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
