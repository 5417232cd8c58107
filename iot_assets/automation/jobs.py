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

anomaly_detection_job = define_asset_job(
    "anomaly_detection_job",
    selection=ANOMALY_DETECTION,
    tags=SPARK_TAG,
    description="Train each device's KMeans model on its previous 24 hours, then write the hour's anomaly log "
    "and its incidents.",
)
