"""Entry point module of the s3proxy-aws plugin: the ``aws`` backend (obstore S3Store).

Credentials come from the AWS default chain as obstore implements it, in this order:
explicit keys (development only), web identity (IRSA), ECS task role, EKS Pod Identity,
EC2 instance metadata. docs/backends.md lists the environment variables each step reads.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from obstore.store import S3Store

from s3proxy.hookspecs import RegisterBackend, hookimpl
from s3proxy.storage import cloud
from s3proxy.storage.native import NativeObstoreBackend
from s3proxy.storage.native_meta import S3_RULES


class AwsSettings(cloud.CloudSettings, forbid_unknown_fields=True, kw_only=True):
    """``[backends.aws]``; shared fields in ``s3proxy.storage.cloud.CloudSettings``."""

    #: The S3 bucket (required).
    bucket: str = ""
    #: Region of the bucket; default: AWS_REGION / AWS_DEFAULT_REGION, else us-east-1.
    region: str = ""
    #: Address buckets as ``<bucket>.<endpoint host>`` (some S3-compatible services).
    virtual_hosted_style: bool = False
    #: Static access key id: development and emulators only (production uses the
    #: identity chain: IRSA, EKS Pod Identity, ECS task role, instance metadata).
    access_key_id: str = ""
    #: Secret of ``access_key_id``: development and emulators only.
    secret_access_key: str = ""
    #: Session token of temporary static keys: development only.
    session_token: str = ""


def identity(settings: AwsSettings, env: Mapping[str, str] = os.environ) -> str:
    """Which step of the credential chain applies, for log lines (never a secret)."""
    if settings.access_key_id:
        return "static access key from the configuration (development only)"
    if env.get("AWS_ACCESS_KEY_ID"):
        return "static access key from AWS_ACCESS_KEY_ID"
    if env.get("AWS_WEB_IDENTITY_TOKEN_FILE") and env.get("AWS_ROLE_ARN"):
        return f"web identity (IRSA) for role {env['AWS_ROLE_ARN']}"
    if env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        return "ECS task role"
    if env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        return "EKS Pod Identity (container credentials endpoint)"
    return "EC2 instance metadata (IMDSv2)"


def store_config(settings: AwsSettings) -> dict[str, Any]:
    config: dict[str, Any] = dict(settings.options)
    for key, value in (
        ("region", settings.region),
        ("endpoint", settings.endpoint),
        ("access_key_id", settings.access_key_id),
        ("secret_access_key", settings.secret_access_key),
        ("session_token", settings.session_token),
    ):
        if value:
            config[key] = value
    if settings.virtual_hosted_style:
        config["virtual_hosted_style_request"] = True
    return config


def make_aws(settings: AwsSettings) -> NativeObstoreBackend:
    bucket = cloud.require(settings.bucket, "bucket", "aws")
    config = store_config(settings)

    def build(client_options: dict[str, Any], retry_config: dict[str, Any]) -> S3Store:
        return S3Store(
            bucket,
            prefix=cloud.store_prefix(settings),
            config=config,  # type: ignore[arg-type]
            client_options=client_options,  # type: ignore[arg-type]
            retry_config=retry_config,  # type: ignore[arg-type]
        )

    return cloud.make_backend(
        "aws", settings, bucket=bucket, rules=S3_RULES, build=build, identity=identity(settings)
    )


@hookimpl
def register_backends(register: RegisterBackend) -> None:
    register(
        "aws",
        make_aws,
        config=AwsSettings,
        description="an Amazon S3 bucket (or S3-compatible service), AWS managed identity",
    )
