"""The hourly pipeline's Spark work on EMR Serverless, through Dagster Pipes (deployments/aws/).

Dagster keeps the asset graph, partitions, sensors, checks' history and the run queue; each run
of `hourly_pipeline_job` starts one EMR Serverless job whose driver runs the very same assets
(`remote_main`, through `deployments/aws/emr_entry.py`) and reports their materialisations and
check results back through Pipes. The location is chosen in deployments/aws/workspace.yaml;
the code of the assets does not change.
"""

import boto3
from dagster import AssetExecutionContext, BackfillPolicy, Definitions, in_process_executor, multi_asset
from dagster_aws.pipes import PipesCloudWatchMessageReader, PipesEMRServerlessClient

from iot_assets import definitions as local
from iot_assets import settings
from iot_assets.automation.jobs import HOURLY_PIPELINE
from iot_assets.lib.partitions import hourly_partitions, parse_hour_key
from iot_assets.resources.lakehouse import LAKE_WRITER_POOL

_graph = local.defs.get_repository_def().asset_graph
_all = local.executable_assets
_keys = HOURLY_PIPELINE.resolve(_graph)
_remote = [a for a in _all if set(a.keys) & _keys]
_specs = [s for a in _remote for s in a.specs if s.key in _keys]
_check_specs = [c for a in _remote for c in a.check_specs if c.asset_key in _keys]


def start_job_run_params(context: AssetExecutionContext) -> dict:
    archive = settings.get("IOT_EMR_VENV_ARCHIVE")
    # The driver and executors use the packed virtualenv (this project and its dependencies).
    submit = (
        f"--conf spark.archives={archive} "
        "--conf spark.emr-serverless.driverEnv.PYSPARK_PYTHON=./environment/bin/python "
        "--conf spark.executorEnv.PYSPARK_PYTHON=./environment/bin/python "
        "--conf spark.emr-serverless.driverEnv.IOT_SPARK_MASTER=submit "
        "--conf spark.emr-serverless.driverEnv.IOT_AWS_ENDPOINT_URL=aws"
    )
    # The lake's settings travel with the job, so the driver writes where this deployment reads.
    for name in (
        "IOT_BUCKET",
        "IOT_LAKE_PREFIX",
        "IOT_AWS_REGION",
        "IOT_RAW_SOURCE",
        "IOT_KINESIS_STREAM",
        "IOT_DELTA_LOG_STORE",
        "IOT_DELTA_DYNAMODB_TABLE",
    ):
        submit += f" --conf spark.emr-serverless.driverEnv.{name}={settings.get(name)}"
    return {
        "applicationId": settings.get("IOT_EMR_APPLICATION_ID"),
        "executionRoleArn": settings.get("IOT_EMR_EXECUTION_ROLE_ARN"),
        "name": f"iot-hourly-{context.run.run_id[:8]}",
        "jobDriver": {
            "sparkSubmit": {"entryPoint": settings.get("IOT_EMR_ENTRY_POINT"), "sparkSubmitParameters": submit}
        },
    }


@multi_asset(
    specs=_specs,
    check_specs=_check_specs,
    partitions_def=hourly_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    pool=LAKE_WRITER_POOL,
    name="hourly_pipeline_on_emr_serverless",
)
def hourly_pipeline_on_emr_serverless(context: AssetExecutionContext, emr_pipes: PipesEMRServerlessClient):
    """Raw batch to bronze, silver and hourly gold for the run's hours, as one EMR Serverless job."""
    return emr_pipes.run(context=context, start_job_run_params=start_job_run_params(context)).get_results()


def remote_main() -> None:
    """Inside the EMR Serverless driver: materialise the hours Dagster asked for, report back."""
    from dagster_pipes import open_dagster_pipes

    from iot_assets.tools.demo import materialize_hours

    with open_dagster_pipes() as pipes:
        keys = pipes.partition_key_range
        result = materialize_hours(
            parse_hour_key(keys.start),
            parse_hour_key(keys.end),
            include_registry=False,
            selection=sorted(k.to_user_string() for k in _keys),
        )
        plain = (bool, int, float, str)
        reported = set()
        for m in result.get_asset_materialization_events():
            mat = m.materialization
            if mat.asset_key not in reported:  # a range run repeats each asset's event per hour
                reported.add(mat.asset_key)
                pipes.report_asset_materialization(
                    asset_key=mat.asset_key.to_user_string(),
                    metadata={k: v.value for k, v in mat.metadata.items() if isinstance(v.value, plain)},
                )
        for e in result.get_asset_check_evaluations():
            pipes.report_asset_check(
                asset_key=e.asset_key.to_user_string(),
                check_name=e.check_name,
                passed=e.passed,
                severity=e.severity.value,
                metadata={k: v.value for k, v in e.metadata.items() if isinstance(v.value, plain)},
            )
        if not result.success:
            raise RuntimeError("the hourly pipeline failed on EMR Serverless; see the driver log")


defs = Definitions(
    assets=[hourly_pipeline_on_emr_serverless, *(a for a in _all if not set(a.keys) & _keys)],
    asset_checks=list(local.defs.asset_checks or []),
    jobs=list(local.defs.jobs or []),
    sensors=list(local.defs.sensors or []),
    schedules=list(local.defs.schedules or []),
    resources={
        **local.defs.resources,
        "emr_pipes": PipesEMRServerlessClient(
            client=boto3.client("emr-serverless", region_name=settings.get("IOT_AWS_REGION")),
            # Pipes reads the job's messages from its CloudWatch logs.
            message_reader=PipesCloudWatchMessageReader(
                client=boto3.client("logs", region_name=settings.get("IOT_AWS_REGION"))
            ),
        ),
    },
    executor=in_process_executor,
)
