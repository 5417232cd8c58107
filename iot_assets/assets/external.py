"""Assets Dagster does not materialise but the catalog should show: where records arrive, and the
data-quality log that every step's checks append to.

The arrival sources are upstream of `raw_sensor_batches`, so the lineage starts where a record
reaches us. `data_quality_log` is downstream of every asset whose checks it records.
"""

from dagster import AssetSpec, CodeReferencesMetadataValue, LocalFileCodeReference

from iot_assets.lib.quality import DATA_QUALITY_LOG

KINESIS_STREAM = AssetSpec(
    "kinesis_stream",
    group_name="sources",
    kinds={"kinesis"},
    owners=["team:iot-data-platform"],
    description="The Kinesis stream devices publish to (IOT_KINESIS_STREAM). `kinesis_arrival_sensor` "
    "watches it; `raw_sensor_batches` drains an hour of it with `IOT_RAW_SOURCE=kinesis`.",
)
LANDING_FILES = AssetSpec(
    "landing_files",
    group_name="sources",
    kinds={"s3"},
    owners=["team:iot-data-platform"],
    description="Files producers land under s3://<IOT_BUCKET>/<IOT_LANDING_PREFIX>/ (Firehose-style). "
    "`s3_landing_sensor` watches them; `raw_sensor_batches` reads an hour of them.",
)


def _line(name: str) -> int:
    with open(__file__) as f:
        return next(
            i for i, text in enumerate(f, 1) if text.startswith(f"{name} = ") or text.startswith(f"def {name}(")
        )


def _here(spec: AssetSpec, line: int) -> AssetSpec:
    """The spec with a code reference to where it is declared, like the materialised assets."""
    ref = CodeReferencesMetadataValue(code_references=[LocalFileCodeReference(file_path=__file__, line_number=line)])
    return spec.merge_attributes(metadata={"dagster/code_references": ref})


HISTORIAN_TABLES = AssetSpec(
    "historian_tables",
    group_name="sources",
    kinds={"postgres"},
    owners=["team:iot-data-platform"],
    description="The plant historian's monthly tag tables in PostgreSQL (IOT_HISTORIAN_*). "
    "`historian_arrival_sensor` watches its newest t_stamp; `raw_sensor_batches` reads an hour of "
    "it over JDBC with `IOT_RAW_SOURCE=historian`.",
)


SOURCES = [
    _here(spec, _line(name))
    for name, spec in (
        ("KINESIS_STREAM", KINESIS_STREAM),
        ("LANDING_FILES", LANDING_FILES),
        ("HISTORIAN_TABLES", HISTORIAN_TABLES),
    )
]


def data_quality_log(checked) -> AssetSpec:
    """The log, downstream of `checked`: every asset whose checks append to it."""
    return _here(
        AssetSpec(
            DATA_QUALITY_LOG.key,
            group_name="quality",
            kinds={"delta", "s3"},
            owners=["team:iot-data-platform"],
            deps=sorted(checked, key=lambda k: k.to_user_string()),
            description="One row per asset check and partition, appended by the step that evaluates it: the history "
            "of every check, queryable with SQL (Delta, partitioned by evaluation_date).",
            metadata=DATA_QUALITY_LOG.metadata(),
        ),
        _line(data_quality_log.__name__),
    )
