"""The S3 arrival sensor: files landed by producers themselves (Firehose-style) become runs.

A plain "keys after the last one" cursor loses objects: S3 lists LastModified in whole seconds,
so a second object of an already-seen second looks old, a slow upload appears with the time it
started, and a rewritten object keeps its key. This cursor keeps the newest LastModified seen and
every (key, ETag) within an overlap window behind it; an object is new when its (key, ETag) is
not in that set and it is not older than the window. The cursor stays as small as the window.

New objects mark the hours they feed, by the run's own rule (`landing.feeds_hour`): the hour the
key names (or, for a key that names none, the hour it was last modified, where it is quarantined),
and the hour before while the object arrived within that hour's lateness. An hour is requested
once it is complete plus the allowed lateness (straight away for an older hour), with a run key
that names the objects feeding it, so the same files never run twice and a new or rewritten
file runs the hour again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from botocore.exceptions import BotoCoreError
from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from iot_assets import settings
from iot_assets.automation.jobs import hour_end_job
from iot_assets.automation.kinesis_arrivals import REGISTRY_WAIT, registry_missing
from iot_assets.lib import partitions
from iot_assets.lib.partitions import HOUR, complete_hours, hour_key, hourly_partitions, parse_hour_key
from iot_assets.resources.aws import unreachable
from iot_assets.resources.landing import LandedObject, LandingZone, feeds_hour
from iot_assets.resources.raw_source import RawSource

LANDING_RUN_CONFIG = {"resources": {"raw_source": {"config": {"source": "s3_landing"}}}}


@dataclass
class LandingCursor:
    mark: str = ""  # newest LastModified seen (ISO, seconds)
    seen: list[list[str]] = field(default_factory=list)  # [key, etag] within the overlap window
    pending: list[str] = field(default_factory=list)  # hour keys with new files, not yet requested

    def encode(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str | None) -> LandingCursor:
        return cls(**json.loads(text)) if text else cls()


def new_objects(
    listed: list[LandedObject], cursor: LandingCursor, overlap: timedelta
) -> tuple[list[LandedObject], LandingCursor]:
    """The objects not seen before, and the cursor that remembers them."""
    mark = datetime.fromisoformat(cursor.mark) if cursor.mark else None
    seen = {tuple(s) for s in cursor.seen}
    floor = mark - overlap if mark else None
    new = [o for o in listed if (o.key, o.etag) not in seen and (floor is None or o.last_modified >= floor)]
    newest = max([o.last_modified for o in listed] + ([mark] if mark else []), default=None)
    keep_from = newest - overlap if newest else None
    window = sorted([o.key, o.etag] for o in listed if keep_from and o.last_modified >= keep_from)
    return new, LandingCursor(mark=newest.isoformat() if newest else "", seen=window, pending=list(cursor.pending))


def hours_fed(obj: LandedObject, lateness: timedelta) -> list:
    """The hours whose run reads `obj` (`feeds_hour`): its own, and the one before while it is early."""
    placed = obj.placement.hour
    return [h for h in (placed - HOUR, placed) if feeds_hour(obj, h, lateness)]


def objects_digest(objects: list[LandedObject]) -> str:
    return hashlib.sha256("\n".join(sorted(f"{o.key}:{o.etag}" for o in objects)).encode()).hexdigest()[:16]


@sensor(
    job=hour_end_job,
    minimum_interval_seconds=int(settings.get("IOT_S3_SENSOR_INTERVAL_SECONDS")),
    default_status=DefaultSensorStatus.RUNNING,
    description="Requests hour_end_job, reading the landing prefix, for each hour that has new or "
    "rewritten files, once the hour is complete.",
)
def s3_landing_sensor(context: SensorEvaluationContext, landing: LandingZone, raw_source: RawSource):
    if registry_missing(context.instance):
        return SkipReason(REGISTRY_WAIT)
    cursor = LandingCursor.decode(context.cursor)
    try:
        listed = landing.objects()
    except BotoCoreError as exc:
        # No SensorResult, so the stored cursor stays as it was.
        return SkipReason(unreachable("s3", landing.aws.endpoint, exc))
    overlap = timedelta(seconds=int(settings.get("IOT_S3_SENSOR_OVERLAP_SECONDS")))
    new, cursor = new_objects(listed, cursor, overlap)
    lateness = raw_source.lateness
    first = hourly_partitions.start.astimezone(UTC)
    unplaced = [o.key for o in new if o.placement.problem]
    if unplaced:
        context.log.warning(
            f"{len(unplaced)} landed objects name no valid hour; each becomes an unplaced_object row "
            f"in bronze_quarantine, in the hour it was last modified (e.g. {unplaced[0]})"
        )
    touched = {hour_key(h) for o in new for h in hours_fed(o, lateness) if h >= first}
    ready, cursor.pending = complete_hours(set(cursor.pending) | touched, partitions.utc_now(), lateness)
    requests = []
    for key in ready:
        feeding = [o for o in listed if feeds_hour(o, parse_hour_key(key), lateness)]
        if feeding:
            requests.append(
                RunRequest(
                    run_key=f"s3:{key}:{objects_digest(feeding)}",
                    partition_key=key,
                    run_config=LANDING_RUN_CONFIG,
                    tags={"iot/trigger": "s3_landing"},
                )
            )
    summary = f"{len(new)} new objects; waiting for {', '.join(cursor.pending) or 'no hours'}"
    return SensorResult(
        run_requests=requests, cursor=cursor.encode(), skip_reason=None if requests else SkipReason(summary)
    )
