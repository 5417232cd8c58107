"""The alert value: what failed, where (asset, partition, check), how badly, and a link to the run.

One value serves every alert path (failed asset checks, failed runs, opened incidents), so
SNS, Slack and a human reading either see the same fields in the same order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from iot_assets import settings

MAX_EXAMPLES = 5
MAX_EXAMPLE_CHARS = 400
MAX_ERROR_CHARS = 1500
MAX_FAILING_PARTITIONS = 12


def plain(value: Any) -> Any:
    """A metadata value as a plain Python value (MetadataValue wrappers carry it in `.value`)."""
    return getattr(value, "value", value)


def as_int(value: Any) -> int | None:
    value = plain(value)
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def run_url(ui_url: str, run_id: str) -> str:
    return f"{settings.validate_link_base(ui_url).rstrip('/')}/runs/{run_id}"


def asset_url(ui_url: str, asset: str) -> str:
    return f"{settings.validate_link_base(ui_url).rstrip('/')}/assets/{asset}"


@dataclass(frozen=True)
class Alert:
    kind: str  # "asset_check", "run_failure", "incident" or "freshness"
    title: str
    what: str  # one sentence: what failed and how badly
    severity: str  # ERROR, WARN or CRITICAL
    run_id: str
    run_url: str
    asset: str | None = None
    partition: str | None = None
    check: str | None = None
    failed_rows: int | None = None
    passed_rows: int | None = None
    examples: tuple[str, ...] = ()
    details: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    incident_id: str | None = None

    @property
    def alert_id(self) -> str:
        """Stable across retries of the same alert, so a reader (or a FIFO topic) can drop a repeat.
        An incident's alert is the same whichever run reported it."""
        if self.incident_id:
            return hashlib.sha256(f"{self.kind}\x1f{self.incident_id}".encode()).hexdigest()[:32]
        parts = (self.kind, self.run_id, self.asset or "", self.check or "", self.partition or "")
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]

    @property
    def subject(self) -> str:
        """SNS subject: printable ASCII, one line, at most 100 characters."""
        text = f"[{self.severity}] {self.title}".encode("ascii", "replace").decode()
        text = "".join(c if c.isprintable() else " " for c in text)
        return text[:100]

    def lines(self) -> list[tuple[str, str]]:
        rows = [
            ("What", self.what),
            ("Asset", self.asset),
            ("Partition", self.partition),
            ("Check", self.check),
            ("Severity", self.severity),
        ]
        if self.failed_rows is not None:
            rows.append(("Failed rows", f"{self.failed_rows:,}"))
        if self.passed_rows is not None:
            rows.append(("Passed rows", f"{self.passed_rows:,}"))
        rows.extend(self.details)
        rows += [("Run", self.run_id), ("Link", self.run_url)]
        return [(k, v) for k, v in rows if v not in (None, "")]

    def text(self) -> str:
        out = [f"[{self.severity}] {self.title}", ""] + [f"{k}: {v}" for k, v in self.lines()]
        if self.examples:
            out += ["", "Examples:"] + [f"  {e}" for e in self.examples]
        return "\n".join(out)

    def attributes(self) -> dict[str, str]:
        """Structured fields for SNS message attributes (empty values are not allowed there)."""
        fields = {
            "alert_id": self.alert_id,
            "kind": self.kind,
            "severity": self.severity,
            "run_id": self.run_id,
            "asset": self.asset,
            "partition": self.partition,
            "check": self.check,
            "incident_id": self.incident_id,
        }
        return {k: v for k, v in fields.items() if v}


def _examples(value: Any) -> tuple[str, ...]:
    rows = plain(value)
    if isinstance(rows, str):
        try:
            rows = json.loads(rows)
        except ValueError:
            rows = [rows]
    if not isinstance(rows, Sequence) or isinstance(rows, str):
        rows = [rows] if rows is not None else []
    out = []
    for row in list(rows)[:MAX_EXAMPLES]:
        text = row if isinstance(row, str) else json.dumps(row, default=str, sort_keys=True)
        out.append(text if len(text) <= MAX_EXAMPLE_CHARS else text[:MAX_EXAMPLE_CHARS] + "…")
    return tuple(out)


def check_alert(
    *,
    asset: str,
    check: str,
    partition: str | None,
    severity: str,
    metadata: Mapping[str, Any],
    description: str | None,
    run_id: str,
    ui_url: str,
) -> Alert:
    """A failed asset check. Reads the `failed_rows`/`passed_rows`/`examples` contract when present."""
    failed, passed = as_int(metadata.get("failed_rows")), as_int(metadata.get("passed_rows"))
    where = f"`{asset}`" + (f" partition {partition}" if partition else "")
    badly = ""
    if failed is not None:
        total = failed + (passed or 0)
        share = f" ({failed / total:.1%})" if passed is not None and total else ""
        badly = f": {failed:,} of {total:,} rows failed{share}" if passed is not None else f": {failed:,} rows failed"
    what = f"check `{check}` on {where} failed{badly}"
    if description:
        what += f". {description}"
    # A check over a range run names the hours that failed (the quality checks' `failing_partitions`).
    failing = plain(metadata.get("failing_partitions"))
    details = ()
    if isinstance(failing, list) and failing:
        shown = ", ".join(map(str, failing[:MAX_FAILING_PARTITIONS]))
        details = (
            (
                "Failing partitions",
                shown
                + (
                    f" (+{len(failing) - MAX_FAILING_PARTITIONS} more)" if len(failing) > MAX_FAILING_PARTITIONS else ""
                ),
            ),
        )
    return Alert(
        kind="asset_check",
        title=f"Asset check failed: {asset} / {check}",
        what=what,
        severity=severity,
        run_id=run_id,
        run_url=run_url(ui_url, run_id),
        asset=asset,
        partition=partition,
        check=check,
        failed_rows=failed,
        passed_rows=passed,
        examples=_examples(metadata.get("examples")),
        details=details,
    )


def run_failure_alert(
    *, job: str, run_id: str, partition: str | None, failed_steps: Mapping[str, str], error: str | None, ui_url: str
) -> Alert:
    """A failed run: the failing steps and the (trimmed) error."""
    steps = ", ".join(failed_steps) or None
    message = next(iter(failed_steps.values()), None) or error or "the run failed before any step failed"
    message = message.strip()
    if len(message) > MAX_ERROR_CHARS:
        message = message[:MAX_ERROR_CHARS] + "…"
    first_line = message.splitlines()[0] if message else ""
    what = f"run of `{job}` failed" + (f" in step {steps}" if steps else "") + (f": {first_line}" if first_line else "")
    return Alert(
        kind="run_failure",
        title=f"Run failed: {job}",
        what=what,
        severity="ERROR",
        run_id=run_id,
        run_url=run_url(ui_url, run_id),
        partition=partition,
        details=tuple((k, v) for k, v in (("Job", job), ("Failed steps", steps), ("Error", message)) if v),
    )


# Peak severities at which an opened incident is alerted as CRITICAL rather than WARN.
CRITICAL_SEVERITIES = ("high", "critical")


def incident_alert(*, asset: str, incident: Mapping[str, Any], run_id: str, ui_url: str) -> Alert:
    """One opened incident: device, when it opened, how bad so far, and which methods and metrics saw it."""
    device, sev = incident.get("device_id"), incident.get("peak_severity")
    what = (
        f"incident opened on `{device}` at {incident.get('opened_at')}: peak severity {sev}, "
        f"{incident.get('readings')} confirmed readings so far, metrics {incident.get('metrics')}"
    )
    details = [
        ("Incident", incident.get("incident_id")),
        ("Device", device),
        ("Opened at", incident.get("opened_at")),
        ("Methods", incident.get("methods")),
        ("First detected by", incident.get("first_detected_by")),
    ]
    return Alert(
        kind="incident",
        title=f"Incident opened: {device} ({sev})",
        what=what,
        severity="CRITICAL" if sev in CRITICAL_SEVERITIES else "WARN",
        run_id=run_id,
        run_url=run_url(ui_url, run_id),
        asset=asset,
        partition=incident.get("hour"),
        details=tuple((k, str(v)) for k, v in details if v),
        incident_id=incident.get("incident_id"),
    )


def freshness_alert(*, asset: str, state: str, since: datetime, policy: str, ui_url: str) -> Alert:
    """An asset that missed its freshness policy: its newest partition did not land in time."""
    when = since.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return Alert(
        kind="freshness",
        title=f"Stale: {asset}",
        what=f"`{asset}` is {state} against its freshness policy since {when}: {policy}",
        severity="ERROR" if state == "FAIL" else "WARN",
        run_id="",
        run_url=asset_url(ui_url, asset),
        asset=asset,
        # Each transition into a failing state is its own alert (and alert_id).
        partition=f"since {when}",
        details=(("Freshness state", state), ("Policy", policy)),
    )
