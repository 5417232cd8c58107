"""The Numenta Anomaly Benchmark's scoring rules, so our detector and NAB's reference detectors are
scored the same way.

Written from NAB's published rules (Lavin & Ahmad 2015, and the scoring section of NAB's README):
- each reading is a detection or not; the first `probation` share of a file (at most 15 % of
  5,000 readings) is not scored;
- in a labelled window only the earliest detection counts, weighted by a scaled sigmoid of its
  position: A_TP at the window's left edge, falling to 0 at its right edge; a window with no
  detection costs A_FN;
- a detection outside every window costs A_FP, scaled by the same sigmoid of its distance past the
  end of the preceding window (measured in that window's widths), so a late detection just after a
  window costs little and one with no preceding window costs the full A_FP;
- the raw sum is normalised so the null detector (no detections) scores 0 and the perfect one (a
  detection at each window's start) 100.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path


@dataclass(frozen=True)
class Profile:
    tp: float
    fp: float
    fn: float


STANDARD = Profile(tp=1.0, fp=0.11, fn=1.0)


def scaled_sigmoid(position: float) -> float:
    """2·sigmoid(-5x) − 1: ≈ +1 at a window's left edge (x = −1), 0 at its right edge, → −1 after it."""
    if position >= 3.0:
        return -1.0
    return 2 / (1 + math.exp(5 * position)) - 1


def probationary_length(rows: int, share: float = 0.15) -> float:
    return min(math.floor(share * rows), share * 5000)


@dataclass
class NabScore:
    raw: float
    normalised: float
    windows: int
    windows_hit: int
    false_positives: int
    # time from each window's start to its first detection (None when missed), in window order
    latencies: list = field(default_factory=list)


def _window_bounds(times: list[datetime], windows: list[tuple[datetime, datetime]]) -> list[tuple[int, int]]:
    """Each window as (first, last) reading index inside it; windows holding no reading are dropped."""
    bounds = []
    for start, end in windows:
        inside = [i for i, t in enumerate(times) if start <= t <= end]
        if inside:
            bounds.append((inside[0], inside[-1]))
    return bounds


def score(
    times: list[datetime],
    detected: list[bool],
    windows: list[tuple[datetime, datetime]],
    profile: Profile = STANDARD,
    probation: float = 0.15,
) -> NabScore:
    """NAB score of one file: `times` in order, `detected[i]` whether reading i is a detection."""
    assert len(times) == len(detected)
    bounds = _window_bounds(times, windows)
    skip = probationary_length(len(times), probation)
    max_tp = scaled_sigmoid(-1.0)
    best: dict[int, float] = {}  # window -> weighted score of its earliest detection
    first: dict[int, int] = {}  # window -> index of its earliest detection
    scored_windows: set[int] = set()
    fp_sum, fps = 0.0, 0
    w, prev = 0, None  # next window; (right index, width) of the last window passed
    for i, hit in enumerate(detected):
        inside = w < len(bounds) and bounds[w][0] <= i <= bounds[w][1]
        if i >= skip and inside:
            scored_windows.add(w)
        if inside:
            left, right = bounds[w]
            width = right - left + 1
            if hit and i >= skip and w not in best:
                best[w] = scaled_sigmoid(-(right - i + 1) / width) * profile.tp / max_tp
                first[w] = i
        elif hit and i >= skip:
            past = 3.0 if prev is None else abs(prev[0] - i) / float(prev[1] - 1)
            fp_sum += scaled_sigmoid(past) * profile.fp
            fps += 1
        if inside and i == bounds[w][1]:
            prev = (bounds[w][1], bounds[w][1] - bounds[w][0] + 1)
            w += 1
    raw = fp_sum + sum(best.get(k, -profile.fn) for k in scored_windows)
    null, perfect = -profile.fn * len(scored_windows), profile.tp * len(scored_windows)
    normalised = 100 * (raw - null) / (perfect - null) if perfect != null else 0.0
    latencies = [(times[first[k]] - times[bounds[k][0]]) if k in first else None for k in sorted(scored_windows)]
    return NabScore(
        raw=raw,
        normalised=normalised,
        windows=len(scored_windows),
        windows_hit=len(best),
        false_positives=fps,
        latencies=latencies,
    )


def detections_at(times: list[datetime], alarms: list[datetime]) -> list[bool]:
    """Readings marked as detections: the first reading at or after each alarm time."""
    import bisect

    out = [False] * len(times)
    for a in alarms:
        i = bisect.bisect_left(times, a)
        if i < len(times):
            out[i] = True
    return out


def read_reference(path: Path) -> tuple[list[datetime], list[float]]:
    """A NAB results file (`timestamp,value,anomaly_score,...`) as times and anomaly scores."""
    times, scores = [], []
    with path.open() as f:
        for row in csv.DictReader(f):
            times.append(datetime.strptime(row["timestamp"], "%Y-%m-%d %H:%M:%S"))
            scores.append(float(row["anomaly_score"]))
    return times, scores


def read_windows(path: Path, file_name: str) -> list[tuple[datetime, datetime]]:
    import json

    return [
        (datetime.strptime(a[:19], "%Y-%m-%d %H:%M:%S"), datetime.strptime(b[:19], "%Y-%m-%d %H:%M:%S"))
        for a, b in json.loads(path.read_text())[file_name]
    ]
