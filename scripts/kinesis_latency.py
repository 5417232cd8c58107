"""Kinesis -> gold latency of the sensor-triggered runs in a running `make dev` instance.

For each hour that `kinesis_arrival_sensor` ran, it reads the raw batch (every record's Kinesis
arrival time) and the time `device_hourly_stats` was materialised for that hour, and prints the
latency of the hour's first, median and last record, and of the hour's end; and the time from the
hour's end to the hour's `anomaly_log`.

    DAGSTER_HOME=.dagster_home .venv/bin/python scripts/kinesis_latency.py
"""

import gzip
import json
import statistics
from datetime import UTC, datetime

from dagster import AssetKey, DagsterInstance

from iot_assets import settings
from iot_assets.lib.partitions import HOUR, parse_hour_key, raw_key
from iot_assets.resources.aws import make_client


def main() -> None:
    instance = DagsterInstance.get()
    s3 = make_client("s3", settings.endpoint_url(), settings.get("IOT_AWS_REGION"))
    bucket = settings.get("IOT_BUCKET")
    records = instance.fetch_materializations(AssetKey("device_hourly_stats"), limit=200).records
    # The first anomaly log of each hour, from whichever run wrote it.
    verdicts: dict[str, float] = {}
    for r in instance.fetch_materializations(AssetKey("anomaly_log"), limit=200).records:
        key = r.asset_materialization.partition
        verdicts[key] = min(verdicts.get(key, r.timestamp), r.timestamp)
    print(
        f"{'hour':17} {'records':>7} {'first':>8} {'median':>8} {'last':>8} {'hour end':>8}  (seconds to gold)"
        f" {'anomaly log':>11} (seconds from the hour's end)"
    )
    for rec in sorted(records, key=lambda r: r.timestamp):
        run = instance.get_run_by_id(rec.run_id)
        if not run or run.tags.get("iot/trigger") != "kinesis":
            continue
        hour = parse_hour_key(rec.asset_materialization.partition)
        arrivals = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=raw_key("raw", hour, "")):
            for o in page.get("Contents", []):
                body = gzip.decompress(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())
                arrivals += [
                    datetime.fromisoformat(t).timestamp()
                    for line in body.splitlines()
                    if line.strip()
                    if (t := json.loads(line)["kinesis_arrival_time"])
                ]
        if not arrivals:
            continue
        lat = sorted(rec.timestamp - a for a in arrivals)
        end = rec.timestamp - (hour + HOUR).timestamp()
        verdict = verdicts.get(rec.asset_materialization.partition)
        to_log = f"{verdict - (hour + HOUR).timestamp():>11.0f}" if verdict else f"{'-':>11}"
        print(
            f"{hour:%Y-%m-%d %H:00}  {len(lat):>7} {lat[-1]:>8.0f} {statistics.median(lat):>8.0f} "
            f"{lat[0]:>8.0f} {end:>8.0f}                   {to_log}"
            f"   gold at {datetime.fromtimestamp(rec.timestamp, UTC):%H:%M:%S} UTC"
        )


if __name__ == "__main__":
    main()
