"""Why a record left the main path: the reason codes of bronze quarantine and silver drops.

One vocabulary for the transforms that assign reasons, the simulator that predicts them, and
the checks and tests that reconcile them.
"""

# bronze_quarantine: the record never became a typed reading.
MALFORMED_JSON = "malformed_json"  # not JSON as RFC 8259 has it (single quotes included)
NOT_AN_OBJECT = "not_a_json_object"
TRAILING_TEXT = "trailing_text"  # a JSON object followed by other text on its line or in its record
DUPLICATE_KEY = "duplicate_key"  # a key twice in one object: which value is meant is ambiguous
MISSING_FIELD = "missing_field"  # detail names the field
INVALID_TYPE = "invalid_type"  # detail names the field and value; numbers are JSON numbers or decimal text
INVALID_DEVICE_ID = "invalid_device_id"
INVALID_TIMESTAMP = "invalid_timestamp"  # also: no date or no time of day, a zone abbreviation (CST, IST, ...)
LATE_EVENT = "late_event"  # event hour before the batch's hour, past the lateness
FUTURE_EVENT = "future_event"  # event hour after the batch's hour
RECORD_TOO_LARGE = "record_too_large"
NOT_UTF8 = "not_utf8"
EMPTY_OBJECT = "empty_object"  # a landed file with no records (0 bytes or blank lines)
CORRUPT_GZIP = "corrupt_gzip"  # gzip that does not decompress (from where it fails: readable records are kept)
OBJECT_TOO_LARGE = "object_too_large"  # a landed file that expands past IOT_MAX_OBJECT_EXPANDED_BYTES
UNPLACED_OBJECT = "unplaced_object"  # a landed file whose key names no valid hour
BAD_QUALITY = "bad_quality"  # a historian sample whose dataintegrity is not good; detail has the code
UNKNOWN_TAG = "unknown_tag"  # a historian sample whose tagid is not in the tag table, or whose
# tagpath names no device and reading field

# silver_rejected_readings: a typed reading that is not fit for analysis.
OUT_OF_RANGE = "out_of_range"  # detail names the field and value
INVALID_STATUS = "invalid_status"
DUPLICATE = "duplicate"
UNKNOWN_DEVICE = "unknown_device"

QUARANTINE_REASONS = (
    MALFORMED_JSON,
    NOT_AN_OBJECT,
    TRAILING_TEXT,
    DUPLICATE_KEY,
    MISSING_FIELD,
    INVALID_TYPE,
    INVALID_DEVICE_ID,
    INVALID_TIMESTAMP,
    LATE_EVENT,
    FUTURE_EVENT,
    RECORD_TOO_LARGE,
    NOT_UTF8,
    EMPTY_OBJECT,
    CORRUPT_GZIP,
    OBJECT_TOO_LARGE,
    UNPLACED_OBJECT,
    BAD_QUALITY,
    UNKNOWN_TAG,
)
SILVER_REASONS = (OUT_OF_RANGE, INVALID_STATUS, DUPLICATE, UNKNOWN_DEVICE)
