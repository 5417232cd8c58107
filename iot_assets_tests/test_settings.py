"""Settings: documented, validated, and passed to resources as EnvVars."""

import pytest
from dagster import EnvVar

from iot_assets import settings
from iot_assets.resources.aws import local_credentials


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
