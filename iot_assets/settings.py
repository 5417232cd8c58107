"""Every setting of iot_assets: its environment variable, its default, and what it means.

The defaults serve the embedded local stack (moto on 127.0.0.1:4566, Spark `local[*]`), so a
fresh clone runs with no configuration at all. Resources receive these values as Dagster
`EnvVar`s when the variable is set, so the UI shows where a value came from and secrets never
land in run config. `python -m iot_assets.settings` (`make docs`) writes docs/settings.md from this
list, and a test fails when that file is stale.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import urlparse

from dagster import EnvVar

LOCAL_ENDPOINT = "http://127.0.0.1:4566"
# Values of IOT_AWS_ENDPOINT_URL that mean "use real AWS and its standard credential chain".
REAL_AWS_VALUES = ("", "aws")


@dataclass(frozen=True)
class Setting:
    env: str
    default: str
    doc: str
    # Read when the code location loads, because it shapes the definitions themselves (partitions,
    # sensor intervals, cron, retry policy, the sensor catalogue's columns): change it, then reload.
    # Every other setting is read when a resource is built, that is, when a run or tick starts.
    at_load: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "IOT_AWS_ENDPOINT_URL",
        LOCAL_ENDPOINT,
        "AWS endpoint for S3, Kinesis, SNS and CloudWatch. `aws` (or empty) means real AWS "
        "with the standard credential chain.",
    ),
    Setting("IOT_AWS_REGION", "us-east-1", "AWS region.", at_load=True),
    Setting("IOT_BUCKET", "iot-lakehouse", "S3 bucket holding raw batches and all Delta tables."),
    Setting("IOT_LAKE_PREFIX", "lake", "Key prefix under which the Delta tables live."),
    Setting(
        "IOT_SENSOR_CATALOGUE",
        "",
        "Path of the sensor catalogue (YAML) naming the fleet's channels, their units, ranges and roles; "
        "empty means the shipped one, which describes the simulated fleet. See [the sensor catalogue](catalogue.md).",
        at_load=True,
    ),
    Setting("IOT_KINESIS_STREAM", "iot-sensor-readings", "Kinesis stream the fleet publishes to."),
    Setting(
        "IOT_RAW_PART_RECORDS",
        "500000",
        "Most records one raw object holds: a larger arrival batch is stored as several parts "
        "(`<batch>.p<i>of<n>.jsonl.gz`), so that Spark reads an hour on several cores (one gzip object is "
        "read by one task). A batch counts as stored only when all its parts are.",
    ),
    Setting("IOT_KINESIS_SHARDS", "2", "Shard count used when `iot-assets local-aws` creates the stream."),
    Setting(
        "IOT_RAW_SOURCE",
        "simulator",
        "Where `raw_sensor_batches` gets an hour's records: `simulator`, `kinesis`, `s3_landing` or "
        "`historian` (a PostgreSQL SQL historian, see [SQL historian source](sources.md#sql-historian-source)).",
        at_load=True,
    ),
    Setting(
        "IOT_ALLOWED_LATENESS_MINUTES",
        "10",
        "Records arriving this long after their hour still land in their event hour. The Kinesis "
        "sensor requests an hour once it has ended and this much more time has passed (fractions "
        "allowed: `0.5` is 30 s).",
    ),
    Setting(
        "IOT_LANDING_PREFIX",
        "landing",
        "Key prefix where producers land files themselves (Firehose-style), watched by `s3_landing_sensor`.",
    ),
    Setting(
        "IOT_MAX_OBJECT_EXPANDED_BYTES",
        str(256 << 20),
        "Most bytes one landed object may hold once decompressed (and most records: this / 64). A larger "
        "object (a gzip bomb) is refused as one `object_too_large` quarantine row. Firehose writes objects of "
        "at most 128 MiB before compression.",
    ),
    Setting(
        "IOT_KINESIS_SENSOR_INTERVAL_SECONDS", "30", "Seconds between ticks of `kinesis_arrival_sensor`.", at_load=True
    ),
    Setting("IOT_S3_SENSOR_INTERVAL_SECONDS", "30", "Seconds between ticks of `s3_landing_sensor`.", at_load=True),
    Setting(
        "IOT_S3_SENSOR_OVERLAP_SECONDS",
        "300",
        "How far behind its newest LastModified `s3_landing_sensor` still looks for objects it has not seen "
        "(same-second objects, slow uploads that appear late).",
    ),
    Setting(
        "IOT_SCHEDULE_MINUTE",
        "20",
        "Minute past each hour at which `hourly_pipeline_schedule` runs the previous hour, when no sensor "
        "has. Keep it above the allowed lateness.",
        at_load=True,
    ),
    Setting(
        "IOT_AUTOMATION_INTERVAL_SECONDS",
        "30",
        "Seconds between evaluations of the assets' automation conditions (gold, models, anomaly log).",
        at_load=True,
    ),
    Setting(
        "IOT_HISTORIAN_JDBC_URL",
        "jdbc:postgresql://127.0.0.1:5433/historian",
        "JDBC URL of the PostgreSQL historian (`IOT_RAW_SOURCE=historian`); no credentials in it.",
    ),
    Setting("IOT_HISTORIAN_USER", "historian", "User the historian is read as."),
    Setting(
        "IOT_HISTORIAN_PASSWORD",
        "",
        "The historian user's password (a secret: set it in the environment only). Ignored when "
        "`IOT_HISTORIAN_SECRET_NAME` is set.",
    ),
    Setting(
        "IOT_HISTORIAN_SECRET_NAME",
        "",
        "AWS Secrets Manager secret (on `IOT_AWS_ENDPOINT_URL`) holding the historian password, as plain "
        "text or JSON with a `password` key.",
    ),
    Setting(
        "IOT_HISTORIAN_TABLE_PREFIX",
        "sqlt_data_1",
        "Monthly data tables are `<prefix>_YYYY_MM` (UTC months), as Ignition names its partitions.",
    ),
    Setting("IOT_HISTORIAN_TAG_TABLE", "sqlth_te", "Tag metadata table: `id` -> `tagpath` (`site/line/device/field`)."),
    Setting(
        "IOT_HISTORIAN_READ_PARTITIONS", "2", "Parallel JDBC reads per monthly table (`numPartitions` over `t_stamp`)."
    ),
    Setting(
        "IOT_HISTORIAN_SCAN_TOLERANCE_MS",
        "500",
        "Samples of one device less than this far apart (ms) form one scan, pivoted into one reading. Keep it "
        "below the scan interval.",
    ),
    Setting(
        "IOT_HISTORIAN_SENSOR_INTERVAL_SECONDS",
        "60",
        "Seconds between ticks of `historian_arrival_sensor`.",
        at_load=True,
    ),
    Setting("IOT_DEVICE_COUNT", "50", "Number of simulated devices."),
    Setting("IOT_READINGS_PER_HOUR", "60", "Readings each simulated device sends per hour."),
    Setting("IOT_SIMULATOR_SEED", "7", "Seed of the fleet simulator; same seed, same data."),
    Setting("IOT_SIMULATOR_ANOMALY_RATE", "0.04", "Chance that a simulated device-hour carries one injected anomaly."),
    Setting("IOT_SIMULATOR_MALFORMED_RATE", "0.01", "Share of simulated readings replaced by a malformed record."),
    Setting(
        "IOT_PARTITIONS_START", "2026-11-01-00:00", "First hourly partition (UTC), `YYYY-MM-DD-HH:MM`.", at_load=True
    ),
    Setting(
        "IOT_SPARK_MASTER",
        "local[*]",
        "Spark master URL: `local[*]`, `spark://host:7077`, `yarn`, ...; `submit` keeps the master spark-submit "
        "chose (EMR).",
    ),
    Setting(
        "IOT_SPARK_REMOTE",
        "",
        "Spark Connect URL (`sc://host:15002`, or a Databricks URL with its token: a secret, so set it in the "
        "environment only). When set, runs open a Connect session and start no JVM; `IOT_SPARK_MASTER`, "
        "`IOT_SPARK_DRIVER_MEMORY` and the packages are then the server's business. See "
        "[Spark Connect](../deployments/connect/README.md).",
    ),
    Setting("IOT_SPARK_SHUFFLE_PARTITIONS", "8", "`spark.sql.shuffle.partitions` (AQE coalesces further)."),
    Setting("IOT_SPARK_DRIVER_MEMORY", "2g", "`spark.driver.memory` when Spark starts in this process."),
    Setting(
        "IOT_SPARK_PYTHON",
        "",
        "Python for Spark's Python workers (`spark.pyspark.python`); empty means this process's interpreter. "
        "On a cluster, a Python with this project's dependencies on every worker.",
    ),
    Setting("IOT_SPARK_PACKAGES_EXTRA", "", "Extra Maven coordinates appended to `spark.jars.packages`."),
    Setting(
        "IOT_THRESHOLD_RULES",
        "",
        'JSON list of `{"metric", "op": ">"|"<", "limit"}` replacing the default threshold rules.',
    ),
    Setting("IOT_ZSCORE_LIMIT", "3.0", "z-score limit, in standard deviations of the trailing 24-hour baseline."),
    Setting("IOT_KMEANS_K", "3", "Clusters per device model."),
    Setting(
        "IOT_LEARNING_HOURS",
        "24",
        "Hours of a device's own history (from its first reporting hour, within the trailing 24) before its "
        "KMeans model and z-score/shift baseline are used; until then it is `learning`: not scored by them, "
        "never alerted on. 24 covers one daily cycle; at most 24.",
    ),
    Setting(
        "IOT_KMEANS_DISTANCE_PERCENTILE",
        "99.5",
        "Percentile of a device's training distances that, times the margin, sets its threshold.",
    ),
    Setting("IOT_KMEANS_THRESHOLD_MARGIN", "1.5", "Multiplier on that percentile."),
    Setting(
        "IOT_TRAINING_POLICY",
        "trailing",
        "What each hour's KMeans models and z-score/shift baselines learn from: `trailing` (the device's "
        "previous 24 hours) or `pinned` (the known-good range below, for every hour from its end on; the "
        "models stay the same until the range is changed). See docs/anomaly-detection.md.",
    ),
    Setting(
        "IOT_PINNED_START",
        "",
        "Start of the pinned known-good range (inclusive): an ISO hour in UTC, e.g. `2026-11-20T00:00`. "
        "Required, with its end, under `pinned`.",
    ),
    Setting("IOT_PINNED_END", "", "End of the pinned range (exclusive), a whole hour after its start."),
    Setting("IOT_DELTA_MAX_RECORDS_PER_FILE", "1000000", "Cap on rows per Delta data file."),
    Setting(
        "IOT_DELTA_LOG_STORE",
        "s3",
        "Delta's S3 log store: `s3` (one writing driver at a time, enforced by the `delta_lake_writers` "
        "pool) or `dynamodb` (several drivers may write one table; see deployments/production/).",
    ),
    Setting("IOT_DELTA_DYNAMODB_TABLE", "delta_log", "DynamoDB table of the `dynamodb` log store."),
    Setting(
        "IOT_EMR_APPLICATION_ID",
        "",
        "EMR Serverless application that runs the hourly pipeline (deployments/aws/ code location only).",
    ),
    Setting("IOT_EMR_EXECUTION_ROLE_ARN", "", "IAM role the EMR Serverless job runs as."),
    Setting("IOT_EMR_ENTRY_POINT", "", "S3 URI of `deployments/aws/emr_entry.py`."),
    Setting(
        "IOT_EMR_VENV_ARCHIVE",
        "",
        "S3 URI of the packed virtualenv with this project, with `#environment` (see deployments/aws/).",
    ),
    Setting(
        "IOT_SPARK_STEP_RETRIES",
        "2",
        "Retries of a failed Spark asset step (S3 or Spark briefly unavailable). Failed blocking checks are "
        "not retried.",
        at_load=True,
    ),
    Setting(
        "IOT_SPARK_STEP_RETRY_DELAY_SECONDS",
        "20",
        "Wait before the first retry; it doubles for each further one.",
        at_load=True,
    ),
    Setting(
        "IOT_MAX_QUARANTINE_RATE",
        "0.05",
        "`check_quarantine_rate` warns when an hour quarantines a larger share of its raw records.",
    ),
    Setting(
        "IOT_ANOMALY_SPIKE_FACTOR",
        "3.0",
        "`check_anomaly_rate_spike` warns when an hour's share of confirmed anomalous readings exceeds this "
        "multiple of the trailing 24 hours' share ...",
    ),
    Setting("IOT_ANOMALY_SPIKE_FLOOR", "0.01", "... and this share."),
    Setting(
        "IOT_FRESHNESS_DEADLINE_MINUTE",
        "30",
        "Freshness policies: the previous hour's partition is due this many minutes past the hour (stale after).",
        at_load=True,
    ),
    Setting(
        "IOT_DAGSTER_UI_URL",
        "http://127.0.0.1:3000",
        "Base URL of the Dagster UI; alerts link to `<url>/runs/<run id>`.",
    ),
    Setting(
        "IOT_ALERT_SNS_TOPIC",
        "iot-alerts",
        "SNS topic for alerts: a topic ARN, or on a local endpoint a topic name (`iot-assets local-aws` "
        "creates it). Empty disables SNS.",
    ),
    Setting(
        "IOT_ALERT_METRICS_NAMESPACE",
        "IotAssets",
        "CloudWatch namespace for check row counts, check failures and anomaly counts. Empty disables metrics.",
    ),
    Setting(
        "IOT_ALERT_SLACK_WEBHOOK_URL",
        "",
        "Slack incoming-webhook URL (a secret: set it in the environment only). Empty disables Slack.",
    ),
)
_BY_NAME = {s.env: s for s in SETTINGS}

REFERENCE_INTRO = """\
# Settings

<!-- Generated from iot_assets/settings.py by `make docs`; do not edit by hand. -->

All settings are environment variables. Each has a default that serves the embedded local
stack, so nothing needs to be set on a laptop. Resources receive a value as a Dagster `EnvVar`
when its variable is set, so the UI shows where the value came from. Credentials are never
settings: against real AWS, the standard AWS credential chain applies (environment, profile,
instance or pod role). Against a loopback emulator, placeholder keys are used, which the
emulator ignores.

**Read**: *at run* settings are read when a resource is built, so a new value applies to the next
run or sensor tick. *At load* settings shape the definitions themselves (partitions, sensor
intervals, cron, retry policy, the sensor catalogue's columns), so they are read when the code
location loads: change them, then reload the code location (or restart `make dev`).
"""

REFERENCE_OUTRO = """\
To point at real AWS and a Spark cluster, with no code change:

```bash
export IOT_AWS_ENDPOINT_URL=aws IOT_AWS_REGION=eu-west-1 IOT_BUCKET=my-iot-lake IOT_KINESIS_STREAM=iot-prod
export IOT_SPARK_MASTER=spark://spark-master:7077 IOT_RAW_SOURCE=kinesis
```
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def reference_markdown() -> str:
    """docs/settings.md: every setting's variable, default and meaning, in declaration order."""
    rows = ["| Variable | Default | Read | Meaning |", "|---|---|---|---|"]
    for s in SETTINGS:
        default = f"`{_cell(s.default)}`" if s.default else "(empty)"
        read = "at load" if s.at_load else "at run"
        rows.append(f"| `{s.env}` | {default} | {read} | {_cell(s.doc)} |")
    return "\n".join([REFERENCE_INTRO, *rows, "", REFERENCE_OUTRO])


def get(env: str) -> str:
    """The setting's value from the environment, or its documented default."""
    return os.environ.get(env, _BY_NAME[env].default)


def dagster_value(env: str) -> str | EnvVar:
    """For a resource field: an `EnvVar` when the variable is set, else the documented default."""
    return EnvVar(env) if env in os.environ else _BY_NAME[env].default


def endpoint_url(value: str | None = None) -> str | None:
    """The validated endpoint URL, or None for real AWS."""
    value = (get("IOT_AWS_ENDPOINT_URL") if value is None else value).strip()
    if value.lower() in REAL_AWS_VALUES:
        return None
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.path not in ("", "/"):
        raise ValueError(
            f"IOT_AWS_ENDPOINT_URL must be an http(s) URL with a host and no path, or 'aws'; got {value!r}"
        )
    return value.rstrip("/")


_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")
_STREAM_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_NAME_RE = re.compile(r"^[a-z0-9_]{1,32}-[0-9a-f]{8,64}(\.p[1-9][0-9]{0,5}of[1-9][0-9]{0,5})?$")


def validate_bucket(name: str) -> str:
    if not _BUCKET_RE.match(name) or ".." in name:
        raise ValueError(f"not a valid S3 bucket name: {name!r}")
    return name


def validate_prefix(prefix: str) -> str:
    if not _PREFIX_RE.match(prefix):
        raise ValueError(f"S3 prefix must be slash-separated [A-Za-z0-9_-] segments: {prefix!r}")
    return prefix


def validate_stream(name: str) -> str:
    if not _STREAM_RE.match(name):
        raise ValueError(f"not a valid Kinesis stream name: {name!r}")
    return name


def validate_name(name: str) -> str:
    """A raw object's file name: `<source>-<hex digest>[.p<i>of<n>]`, nothing a key could be steered by."""
    if not _NAME_RE.match(name):
        raise ValueError(f"not a raw object name (<source>-<hex digest>[.p<i>of<n>]): {name!r}")
    return name


def validate_link_base(url: str) -> str:
    """A base URL that alerts put in front of `/runs/<id>`: http(s), a host, no credentials, query or fragment."""
    parsed = urlparse(url)
    if (
        parsed.scheme not in ("http", "https")
        or not parsed.hostname
        or parsed.username
        or parsed.password
        or parsed.query
        or parsed.fragment
    ):
        raise ValueError(
            "IOT_DAGSTER_UI_URL must be an http(s) URL with a host and no credentials, query or "
            f"fragment; got scheme {parsed.scheme!r} host {parsed.hostname!r}"
        )
    return url


if __name__ == "__main__":
    print(reference_markdown(), end="")
