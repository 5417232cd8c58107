"""The bad-input corpus: one small file per kind of bad input, and what must become of each record.

Each file in `fixtures/bad_input/` is landed exactly as it is (the landing zone's path); the kinds
too large to commit (an oversize line, a gzip bomb) are built by `GENERATED` when a test runs.
Every record it gives ends in exactly one place: a silver row, a quarantine row with its reason,
or a rejected row with its reason. The unit test and the end-to-end test both read this table.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from iot_assets.lib import reasons

FIXTURES = Path(__file__).parent / "fixtures" / "bad_input"
# Every fixture's timestamps are written for this batch hour (its landing key names it).
HOUR = datetime(2026, 11, 10, 12, tzinfo=UTC)

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
    "plain_text_named_gz.jsonl.gz": [SILVER],  # read by its bytes, not its name
    "missing_field.jsonl": [quarantined(reasons.MISSING_FIELD)],
    "null_field.jsonl": [quarantined(reasons.MISSING_FIELD)],
    "comma_decimal.jsonl": [quarantined(reasons.INVALID_TYPE)],  # "12,5": 12.5 or 125? not guessed
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
    "schema_drift.jsonl": [SILVER],  # kept, extra fields in `extra_fields`
    # Framing (issue 15): any line ending, a BOM, several objects on a line, text after an object.
    "bom.jsonl": [SILVER],
    "cr_only_line_endings.jsonl": [SILVER, SILVER],
    "crlf_line_endings.jsonl": [SILVER, SILVER],
    "objects_on_one_line.jsonl": [SILVER, SILVER],  # Firehose without a delimiter
    "array_then_object.jsonl": [quarantined(reasons.NOT_AN_OBJECT), SILVER],
    "trailing_garbage.jsonl": [quarantined(reasons.TRAILING_TEXT)],
    "trailing_nuls.jsonl": [quarantined(reasons.TRAILING_TEXT)],
    "trailing_comma.jsonl": [quarantined(reasons.TRAILING_TEXT)],
    "gzip_members.jsonl.gz": [SILVER, SILVER],  # concatenated gzip members
    "gzip_trailing_junk.jsonl.gz": [SILVER, quarantined(reasons.CORRUPT_GZIP)],
    "truncated_gzip_readable_records.jsonl.gz": [SILVER] * 16 + [quarantined(reasons.CORRUPT_GZIP)],
    # Strict parsing: JSON as RFC 8259 has it, numbers as JSON numbers or decimal text.
    "single_quotes.jsonl": [quarantined(reasons.MALFORMED_JSON)],
    "duplicate_key.jsonl": [quarantined(reasons.DUPLICATE_KEY)],
    "java_double_suffix.jsonl": [quarantined(reasons.INVALID_TYPE)],  # "21.5d"
    "java_float_suffix.jsonl": [quarantined(reasons.INVALID_TYPE)],  # "2.2f"
    "java_hex_float.jsonl": [quarantined(reasons.INVALID_TYPE)],  # "0x1.2p1"
    "underscore_number.jsonl": [quarantined(reasons.INVALID_TYPE)],  # "-6_1"
    "padded_number_text.jsonl": [quarantined(reasons.INVALID_TYPE)],  # " 41.0 "
    "plus_sign_number.jsonl": [quarantined(reasons.INVALID_TYPE)],  # "+41.0"
    # Timestamps carry a date and a time of day; zone abbreviations are refused, zone names are not.
    "date_only_timestamp.jsonl": [quarantined(reasons.INVALID_TIMESTAMP)],
    "hour_only_timestamp.jsonl": [quarantined(reasons.INVALID_TIMESTAMP)],
    "time_only_timestamp.jsonl": [quarantined(reasons.INVALID_TIMESTAMP)],
    "month_only_timestamp.jsonl": [quarantined(reasons.INVALID_TIMESTAMP)],
    "zone_abbreviations.jsonl": [quarantined(reasons.INVALID_TIMESTAMP)] * 3,  # CST, IST, BST
    "utc_zone_name.jsonl": [SILVER],
    "region_zone_id.jsonl": [SILVER],  # America/Chicago
    "device_id_trailing_newline.jsonl": [quarantined(reasons.INVALID_DEVICE_ID)],
    # Bounded resources, built at test time (see GENERATED).
    "oversize_line_25mib.jsonl": [SILVER, quarantined(reasons.RECORD_TOO_LARGE), SILVER],
    "gzip_bomb_320mib.jsonl.gz": [quarantined(reasons.OBJECT_TOO_LARGE)],
}
BAD_DEVICE_IDS = ("../../etc/passwd", "dev/0003", "dev 0003", "d" * 300, "dev-0003\n")


def _reading(minute: int) -> bytes:
    return json.dumps(
        {
            "device_id": "dev-0003",
            "timestamp": f"2026-11-10T12:{minute:02d}:00Z",
            "temperature": 48.5,
            "humidity": 41.0,
            "pressure": 2.2,
            "vibration": 1.1,
            "battery_level": 80.0,
            "signal_strength": -61,
            "status": "normal",
        }
    ).encode()


def _bomb() -> bytes:
    """320 MiB of zeros in five gzip members: past IOT_MAX_OBJECT_EXPANDED_BYTES's 256 MiB default."""
    return gzip.compress(bytes(64 << 20), compresslevel=9, mtime=0) * 5


# Kinds too large to commit: name -> the object's bytes.
GENERATED: dict[str, Callable[[], bytes]] = {
    "oversize_line_25mib.jsonl": lambda: _reading(44) + b"\n" + b"x" * (25 << 20) + b"\n" + _reading(45) + b"\n",
    "gzip_bomb_320mib.jsonl.gz": _bomb,
}


def names() -> list[str]:
    return sorted(CORPUS)


def body(name: str) -> bytes:
    """The object landed for a kind: its fixture file, or its generated bytes."""
    return GENERATED[name]() if name in GENERATED else (FIXTURES / name).read_bytes()


def expected_outcomes() -> list[tuple[str, str | None]]:
    """Every record's outcome in landing order (objects in key order, which is name order here)."""
    return [o for name in names() for o in CORPUS[name]]
