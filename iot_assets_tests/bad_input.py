"""The bad-input corpus: one small file per kind of bad input, and what must become of each record.

Each file in `fixtures/bad_input/` is landed exactly as it is (the landing zone's path). Every record
it gives ends in exactly one place: a silver row, a quarantine row with its reason, or a rejected
row with its reason. The unit test and the end-to-end test both read this table.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from iot_assets import reasons

FIXTURES = Path(__file__).parent / "fixtures" / "bad_input"
# Every fixture's timestamps are written for this batch hour (its landing key names it).
HOUR = datetime(2026, 11, 10, 12, tzinfo=timezone.utc)

SILVER = ("silver", None)


def quarantined(reason: str) -> tuple[str, str]:
    return ("quarantine", reason)


def rejected(reason: str) -> tuple[str, str]:
    return ("rejected", reason)


# fixture file -> the outcome of each of its records, in order.
CORPUS: dict[str, list[tuple[str, str | None]]] = {
    "truncated_json.jsonl": [quarantined(reasons.MALFORMED_JSON)],
    "not_json.txt": [quarantined(reasons.MALFORMED_JSON)],
    "json_array.jsonl": [quarantined(reasons.NOT_AN_OBJECT)],
    "empty_file.jsonl": [quarantined(reasons.EMPTY_OBJECT)],
    "zero_bytes.jsonl": [quarantined(reasons.EMPTY_OBJECT)],
    "not_gzip.jsonl.gz": [quarantined(reasons.CORRUPT_GZIP)],
    "plain_text_named_gz.jsonl.gz": [SILVER],                      # read by its bytes, not its name
    "missing_field.jsonl": [quarantined(reasons.MISSING_FIELD)],
    "null_field.jsonl": [quarantined(reasons.MISSING_FIELD)],
    "comma_decimal.jsonl": [quarantined(reasons.INVALID_TYPE)],     # "12,5": 12.5 or 125? not guessed
    "nan_literal.jsonl": [quarantined(reasons.INVALID_TYPE)],
    "infinity_string.jsonl": [quarantined(reasons.INVALID_TYPE)],
    "boolean_number.jsonl": [quarantined(reasons.INVALID_TYPE)],
    "out_of_range.jsonl": [rejected(reasons.OUT_OF_RANGE)],
    "impossible_values.jsonl": [rejected(reasons.OUT_OF_RANGE)],
    "invalid_status.jsonl": [rejected(reasons.INVALID_STATUS)],
    "future_timestamp.jsonl": [quarantined(reasons.FUTURE_EVENT)],
    "far_future_timestamp.jsonl": [quarantined(reasons.FUTURE_EVENT)],
    "far_past_timestamp.jsonl": [quarantined(reasons.LATE_EVENT)],
    "other_timezone.jsonl": [SILVER],
    "other_timezone_compact.jsonl": [SILVER],
    "epoch_millis.jsonl": [SILVER],
    "epoch_fractional_seconds.jsonl": [SILVER],
    "space_separated_timestamp.jsonl": [SILVER],
    "rfc2822_timestamp.jsonl": [SILVER],
    "unreadable_timestamp.jsonl": [quarantined(reasons.INVALID_TIMESTAMP)],
    "unknown_device.jsonl": [rejected(reasons.UNKNOWN_DEVICE)],
    # "../../etc/passwd", "dev/0003", "dev 0003", 300 characters, ""
    "device_id_paths.jsonl": [quarantined(reasons.INVALID_DEVICE_ID)] * 5,
    "duplicate_records.jsonl": [SILVER, rejected(reasons.DUPLICATE)],
    "huge_record.jsonl.gz": [quarantined(reasons.RECORD_TOO_LARGE)],
    "non_utf8.jsonl": [quarantined(reasons.NOT_UTF8)],
    "schema_drift.jsonl": [SILVER],                                 # kept, extra fields in `extra_fields`
}
BAD_DEVICE_IDS = ("../../etc/passwd", "dev/0003", "dev 0003", "d" * 300)


def names() -> list[str]:
    return sorted(CORPUS)


def expected_outcomes() -> list[tuple[str, str | None]]:
    """Every record's outcome in landing order (objects in key order, which is name order here)."""
    return [o for name in names() for o in CORPUS[name]]
