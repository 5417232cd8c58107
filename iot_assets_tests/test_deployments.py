"""Static checks of deployments/: what cannot run here (Docker, Kubernetes) is at least well-formed.

The instance files are validated by Dagster's own instance schema; the compose file by the rules
this project relies on; every IOT_ variable a deployment sets must be a setting. The production
instance and the Spark cluster also run for real (test_production_instance.py, test_spark_cluster.py).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config

from iot_assets.settings import SETTINGS

ROOT = Path(__file__).resolve().parents[1]
DEPLOYMENTS = ROOT / "deployments"
TARGETS = ("local", "production", "compose", "kubernetes", "aws")
SETTING_NAMES = {s.env for s in SETTINGS}


def _iot_variables(text: str) -> set[str]:
    return set(re.findall(r"\bIOT_[A-Z0-9_]+\b", text))


@pytest.mark.parametrize("target", TARGETS)
def test_each_target_has_a_readme_naming_only_real_settings(target):
    readme = DEPLOYMENTS / target / "README.md"
    assert readme.is_file()
    assert _iot_variables(readme.read_text()) <= SETTING_NAMES


@pytest.mark.parametrize("path", ["dagster.yaml", "deployments/production/dagster.yaml"])
def test_instance_files_pass_dagsters_schema(path, tmp_path):
    (tmp_path / "dagster.yaml").write_text((ROOT / path).read_text())
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"


def test_production_instance_takes_its_connection_from_the_environment():
    storage = yaml.safe_load((DEPLOYMENTS / "production/dagster.yaml").read_text())["storage"]
    db = storage["postgres"]["postgres_db"]
    assert set(db) == {"hostname", "port", "username", "password", "db_name"}
    assert all(set(v) == {"env"} and v["env"].startswith("DAGSTER_POSTGRES_") for v in db.values())


def test_compose_file_is_consistent():
    compose_dir = DEPLOYMENTS / "compose"
    text = (compose_dir / "docker-compose.yml").read_text()
    doc = yaml.safe_load(text)
    services = doc["services"]
    assert {"postgres", "webserver", "daemon", "user-code", "spark-master", "spark-worker"} <= set(services)
    for name, svc in services.items():
        assert "image" in svc, name
        if "build" in svc:
            context = (compose_dir / svc["build"]["context"]).resolve()
            assert context == ROOT and (context / svc["build"]["dockerfile"]).is_file(), name
        deps = svc.get("depends_on", [])
        assert set(deps) <= set(services), name
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)
        env = svc.get("environment", {})
        for key, value in env.items() if isinstance(env, dict) else []:
            if "PASSWORD" in key:
                assert str(value).startswith("${"), f"{name}: {key} must come from the environment"
    assert services["spark-worker"]["deploy"]["replicas"] == 2
    assert _iot_variables(text) <= SETTING_NAMES
    workspace = yaml.safe_load((compose_dir / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["grpc_server"]["host"] == "user-code"
    dockerfile = (compose_dir / "Dockerfile").read_text()
    for copied in re.findall(r"^COPY (\S+)", dockerfile, re.M):
        assert (ROOT / copied).exists(), copied


def _docker_compose_config(compose_file: Path) -> subprocess.CompletedProcess:
    """`docker-compose config`: Compose's own parser and schema, which needs no Docker engine."""
    tool = subprocess.run(
        [ROOT / "scripts/ensure_debian.sh", "docker-compose", "docker-compose"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert tool.returncode == 0, tool.stderr
    return subprocess.run(
        [tool.stdout.strip(), "-f", str(compose_file), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "POSTGRES_PASSWORD": "unused"},
    )


def test_compose_file_passes_composes_own_validation(tmp_path):
    compose_file = DEPLOYMENTS / "compose/docker-compose.yml"
    checked = _docker_compose_config(compose_file)
    assert checked.returncode == 0, checked.stderr
    # The validator is not a rubber stamp: a misspelt service key fails it.
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(compose_file.read_text().replace("depends_on:", "depend_on:", 1))
    assert "depend_on" in broken.read_text()
    rejected = _docker_compose_config(broken)
    assert rejected.returncode != 0 and "depend_on" in rejected.stderr


def test_helm_values_set_only_real_settings():
    text = (DEPLOYMENTS / "kubernetes/values.yaml").read_text()
    values = yaml.safe_load(text)
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["--module-name", "iot_assets.definitions"]
    assert {e["name"] for e in deployment["env"]} <= SETTING_NAMES
    assert values["postgresql"]["enabled"] is False and "postgresqlPassword" not in values["postgresql"]
    assert values["concurrency"]["pools"]["defaultLimit"] == 1


def test_aws_code_location_loads_and_sends_the_lakes_settings_to_emr(monkeypatch):
    from types import SimpleNamespace

    from dagster import Definitions

    from iot_assets.deployments import emr_serverless

    Definitions.validate_loadable(emr_serverless.defs)
    workspace = yaml.safe_load((DEPLOYMENTS / "aws/workspace.yaml").read_text())
    assert workspace["load_from"][0]["python_module"]["module_name"] == emr_serverless.__name__
    job = emr_serverless.defs.get_repository_def().get_job("hourly_pipeline_job")
    assert "hourly_pipeline_on_emr_serverless" in {n.name for n in job.graph.node_defs}

    monkeypatch.setenv("IOT_EMR_APPLICATION_ID", "app-1")
    monkeypatch.setenv("IOT_EMR_VENV_ARCHIVE", "s3://b/venv.tar.gz#environment")
    params = emr_serverless.start_job_run_params(SimpleNamespace(run=SimpleNamespace(run_id="abcdef0123")))
    assert params["applicationId"] == "app-1" and params["name"] == "iot-hourly-abcdef01"
    submit = params["jobDriver"]["sparkSubmit"]["sparkSubmitParameters"]
    assert "spark.archives=s3://b/venv.tar.gz#environment" in submit
    assert "driverEnv.IOT_SPARK_MASTER=submit" in submit and "driverEnv.IOT_BUCKET=iot-test-lake" in submit


def test_aws_workspace_loads_as_dagster_loads_it(tmp_path):
    # Dagster's own loader: it also refuses a module with more than one Definitions at module scope.
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    validated = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", str(DEPLOYMENTS / "aws/workspace.yaml")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert validated.returncode == 0, validated.stderr[-3000:]


def _named_classes() -> list[tuple[str, str, str]]:
    """(file, module, class) of every launcher, coordinator and storage class a deployment names."""
    found = []
    for path in DEPLOYMENTS.rglob("*.yaml"):
        text = yaml.safe_load(path.read_text()) or {}
        stack = [text]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                if isinstance(node.get("module"), str) and isinstance(node.get("class"), str):
                    found.append((str(path.relative_to(ROOT)), node["module"], node["class"]))
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
    # The Helm chart names its run launcher by type; the chart maps K8sRunLauncher to dagster_k8s.
    values = yaml.safe_load((DEPLOYMENTS / "kubernetes" / "values.yaml").read_text())
    launcher = values["runLauncher"]["type"]
    found.append(
        (
            "deployments/kubernetes/values.yaml",
            {"K8sRunLauncher": "dagster_k8s", "CeleryK8sRunLauncher": "dagster_celery_k8s"}[launcher],
            launcher,
        )
    )
    return found


def _image_requirements() -> set[str]:
    """Distributions the deployment image installs: the project's dependencies and the extras its Dockerfile names."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = re.search(
        r'pip install --no-cache-dir "?\.\[([a-z,]+)\]', (DEPLOYMENTS / "compose" / "Dockerfile").read_text()
    )
    reqs = list(project["dependencies"]) + [
        r for e in (extras.group(1).split(",") if extras else []) for r in project["optional-dependencies"][e]
    ]
    return {re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in reqs}


def test_every_class_a_deployment_names_is_in_its_image():
    import importlib
    from importlib.metadata import packages_distributions

    from dagster._serdes.config_class import ConfigurableClassData

    image = _image_requirements()
    named = _named_classes()
    assert any(cls == "K8sRunLauncher" for _, _, cls in named)
    for path, module, cls in named:
        module = ConfigurableClassData(
            module, cls, ""
        ).module_name  # as Dagster loads it (dagster.core -> dagster._core)
        assert hasattr(importlib.import_module(module), cls), f"{path}: {module}.{cls} does not exist"
        dists = {d.lower() for d in packages_distributions()[module.split(".")[0]]}
        assert dists & image, f"{path}: {module}.{cls} comes from {sorted(dists)}, which the image does not install"


def test_the_dynamodb_log_store_is_configured_for_every_driver():
    from iot_assets.resources.spark import DYNAMODB_LOG_STORE_PACKAGE, spark_conf

    conf = spark_conf("local[1]", None, "eu-west-1", 2, "1g", log_store="dynamodb", dynamodb_table="iot_delta_log")
    assert conf["spark.delta.logStore.s3a.impl"] == "io.delta.storage.S3DynamoDBLogStore"
    assert DYNAMODB_LOG_STORE_PACKAGE in conf["spark.jars.packages"].split(",")
    assert conf["spark.io.delta.storage.S3DynamoDBLogStore.ddb.tableName"] == "iot_delta_log"
    assert conf["spark.io.delta.storage.S3DynamoDBLogStore.ddb.region"] == "eu-west-1"
    with pytest.raises(ValueError, match="IOT_DELTA_LOG_STORE"):
        spark_conf("local[1]", None, "eu-west-1", 2, "1g", log_store="s3-dynamo")
