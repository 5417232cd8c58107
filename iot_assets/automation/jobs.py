"""Jobs over the hourly assets."""

from dagster import AssetSelection, define_asset_job

from iot_assets.assets.gold import AGGREGATES_10MIN, HOURLY_STATS
from iot_assets.assets.models import MODELS
from iot_assets.assets.verdicts import ANOMALY_LOG, INCIDENTS

HOURLY_PIPELINE = AssetSelection.groups("raw", "bronze", "silver") | AssetSelection.assets(
    HOURLY_STATS.key, AGGREGATES_10MIN.key
)

# dagster.yaml lets one run with this tag write at a time: two first writes to a new Delta table
# conflict (ProtocolChangedException), and sensors may request several hours at once.
LAKE_WRITER_TAG = {"iot/lake-writer": "hourly-pipeline"}
# Every run starts a Spark driver; deployments/production/dagster.yaml caps how many run at once.
SPARK_TAG = {"iot/spark": "true"}

hourly_pipeline_job = define_asset_job(
    "hourly_pipeline_job",
    selection=HOURLY_PIPELINE,
    tags={**LAKE_WRITER_TAG, **SPARK_TAG},
    description="Raw batch to bronze, silver and hourly gold for one hour (or a range, as one run).",
)

ANOMALY_DETECTION = AssetSelection.assets(MODELS.key, ANOMALY_LOG.key, INCIDENTS.key)
# What an hour's end brings: its raw batch through gold, then its models, anomaly log and incidents.
HOUR_END = HOURLY_PIPELINE | ANOMALY_DETECTION

anomaly_detection_job = define_asset_job(
    "anomaly_detection_job",
    selection=ANOMALY_DETECTION,
    tags=SPARK_TAG,
    description="Train each device's KMeans model on its previous 24 hours, then write the hour's anomaly log "
    "and its incidents.",
)

# The arrival sensors and the schedule request this for an hour that has just completed. One run
# (one run process, one Spark driver) instead of the pipeline's run followed by a second run for the
# models and the anomaly log, which started a JVM of its own after the first had finished and the
# automation sensor had ticked: on 2 cores, that second run alone took longer than the 2 minutes an
# hour's end should take to reach the anomaly log.
hour_end_job = define_asset_job(
    "hour_end_job",
    selection=HOUR_END,
    tags={**LAKE_WRITER_TAG, **SPARK_TAG},
    description="An hour that has just completed: raw batch to bronze, silver and hourly gold, then its models, "
    "anomaly log and incidents, as one run. The arrival sensors and the hourly schedule request it.",
)
