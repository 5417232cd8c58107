"""Settings: documented, validated, and passed to resources as EnvVars."""

import pytest
from dagster import EnvVar

from iot_assets import settings
from iot_assets.resources.aws import local_credentials
from iot_assets_tests.source import parse


@pytest.mark.parametrize(
    "value,expected",
    [
        ("http://127.0.0.1:4566", "http://127.0.0.1:4566"),
        ("aws", None),
        ("", None),
        ("https://s3.example.internal/", "https://s3.example.internal"),
    ],
)
def test_endpoint(value, expected):
    assert settings.endpoint_url(value) == expected


@pytest.mark.parametrize("value", ["ftp://x", "http://", "http://h/path", "file:///etc/passwd", "127.0.0.1:4566"])
def test_endpoint_rejects(value):
    with pytest.raises(ValueError):
        settings.endpoint_url(value)


@pytest.mark.parametrize("bad", ["../x", "UPPER", "a", "x/../../y", "with space"])
def test_bucket_rejects(bad):
    with pytest.raises(ValueError):
        settings.validate_bucket(bad)


@pytest.mark.parametrize("bad", ["../raw", "/raw", "raw/", "a//b", "raw?x"])
def test_prefix_rejects(bad):
    with pytest.raises(ValueError):
        settings.validate_prefix(bad)


def test_real_aws_uses_the_credential_chain():
    assert local_credentials(None) is None
    assert local_credentials("https://s3.eu-west-1.amazonaws.com") is None
    assert local_credentials("http://127.0.0.1:4566") is not None


def test_env_set_becomes_envvar(monkeypatch):
    monkeypatch.setenv("IOT_BUCKET", "some-bucket")
    assert isinstance(settings.dagster_value("IOT_BUCKET"), EnvVar)
    monkeypatch.delenv("IOT_BUCKET")
    assert settings.dagster_value("IOT_BUCKET") == "iot-lakehouse"


def test_settings_read_at_import_are_exactly_the_load_time_ones():
    """A setting read outside any function shapes the definitions, so it is marked `at_load` (and
    documented so): nothing else may be read at import."""
    import ast
    from pathlib import Path

    import iot_assets
    from iot_assets import settings as s

    read_at_import = set()
    for path in Path(next(iter(iot_assets.__path__))).rglob("*.py"):
        tree = parse(path)
        # A function's body runs when it is called; its decorators and defaults run at import.
        in_function = {
            id(n)
            for f in ast.walk(tree)
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            for stmt in (f.body if isinstance(f.body, list) else [f.body])
            for n in ast.walk(stmt)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and id(node) not in in_function
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "settings"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                read_at_import.add(node.args[0].value)
    marked = {x.env for x in s.SETTINGS if x.at_load}
    # The catalogue is read inside load_catalogue(), which the asset modules call at import.
    assert read_at_import | {"IOT_SENSOR_CATALOGUE"} == marked
