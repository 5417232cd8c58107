"""AWS clients for S3, Kinesis, SNS, SQS and CloudWatch, local or real by one setting.

With an endpoint on the loopback interface (the embedded moto server, or LocalStack) the clients
sign with placeholder credentials, which emulators accept and which are not secrets. Any other
endpoint, or none (real AWS), uses boto3's standard credential chain; no key ever passes through
code, config or logs.
"""

from __future__ import annotations

from functools import cached_property
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError
from dagster import ConfigurableResource

from iot_assets import settings

PLACEHOLDER_KEY = "local-emulator"  # not a secret: the local endpoint ignores credentials
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def is_local(endpoint: str | None) -> bool:
    return bool(endpoint) and urlparse(endpoint).hostname in _LOOPBACK


def local_credentials(endpoint: str | None) -> tuple[str, str] | None:
    """Placeholder credentials for a loopback emulator, or None to use the standard chain."""
    return (PLACEHOLDER_KEY, PLACEHOLDER_KEY) if is_local(endpoint) else None


def make_client(
    service: str,
    endpoint_url: str | None,
    region: str,
    connect_timeout: float = 5,
    read_timeout: float = 30,
    max_attempts: int = 3,
):
    creds = local_credentials(endpoint_url)
    kwargs = dict(
        region_name=region,
        endpoint_url=endpoint_url,
        config=Config(
            retries={"max_attempts": max_attempts, "mode": "standard"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        ),
    )
    if creds:
        kwargs.update(aws_access_key_id=creds[0], aws_secret_access_key=creds[1])
    return boto3.session.Session().client(service, **kwargs)


def unreachable(service: str, endpoint: str | None, exc: BotoCoreError) -> str:
    """Why a sensor skips when its endpoint does not answer (timeouts, refused or dropped connections)."""
    return f"{service} endpoint {endpoint or 'AWS'} did not answer ({type(exc).__name__}); cursor left where it was"


class AwsResource(ConfigurableResource):
    """boto3 clients pointed at the configured endpoint (local by default, real AWS with `aws`)."""

    endpoint_url: str = settings.LOCAL_ENDPOINT
    region: str = "us-east-1"
    connect_timeout: float = 5
    read_timeout: float = 30
    max_attempts: int = 3

    @property
    def endpoint(self) -> str | None:
        return settings.endpoint_url(self.endpoint_url)

    def client(self, service: str):
        return make_client(
            service, self.endpoint, self.region, self.connect_timeout, self.read_timeout, self.max_attempts
        )

    @cached_property
    def s3(self):
        return self.client("s3")

    @cached_property
    def kinesis(self):
        return self.client("kinesis")
