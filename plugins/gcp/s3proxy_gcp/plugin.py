"""Entry point module of the s3proxy-gcp plugin: the ``gcp`` backend (obstore GCSStore).

Credentials come from Google's application default credentials as obstore implements
them: a service account key file (GOOGLE_SERVICE_ACCOUNT / GOOGLE_APPLICATION_CREDENTIALS),
the gcloud user credentials file, then the metadata server, which is how GKE workload
identity and GCE service accounts are used. docs/backends.md lists the variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from obstore.store import GCSStore

from s3proxy.hookspecs import RegisterBackend, hookimpl
from s3proxy.storage import cloud
from s3proxy.storage.native import NativeObstoreBackend
from s3proxy.storage.native_meta import GCS_RULES


class GcpSettings(cloud.CloudSettings, forbid_unknown_fields=True, kw_only=True):
    """``[backends.gcp]``; shared fields in ``s3proxy.storage.cloud.CloudSettings``."""

    #: The GCS bucket (required).
    bucket: str = ""
    #: Path of a service account key file (prefer workload identity in production).
    service_account_path: str = ""
    #: Static OAuth bearer token: development and emulators only (never refreshed).
    bearer_token: str = ""


def identity(settings: GcpSettings, env: Mapping[str, str] = os.environ) -> str:
    """Which credential applies, for log lines (never a secret)."""
    if settings.bearer_token:
        return "static bearer token (development / emulator)"
    path = (
        settings.service_account_path
        or env.get("GOOGLE_SERVICE_ACCOUNT")
        or env.get("GOOGLE_SERVICE_ACCOUNT_PATH")
    )
    if path:
        return f"service account key file {path}"
    if env.get("GOOGLE_APPLICATION_CREDENTIALS"):
        return f"application default credentials {env['GOOGLE_APPLICATION_CREDENTIALS']}"
    if (
        Path(env.get("HOME", "~")).expanduser()
        / ".config/gcloud/application_default_credentials.json"
    ).exists():
        return "gcloud application default credentials of the current user"
    return "metadata server (GKE workload identity / GCE service account)"


def store_config(settings: GcpSettings) -> dict[str, Any]:
    config: dict[str, Any] = dict(settings.options)
    for name, value in (
        ("base_url", settings.endpoint),
        ("service_account", settings.service_account_path),
        ("bearer_token", settings.bearer_token),
    ):
        if value:
            config[name] = value
    return config


def make_gcp(settings: GcpSettings) -> NativeObstoreBackend:
    bucket = cloud.require(settings.bucket, "bucket", "gcp")
    config = store_config(settings)

    def build(client_options: dict[str, Any], retry_config: dict[str, Any]) -> GCSStore:
        # GCS serves objects stored with Content-Encoding: gzip decompressed ("decompressive
        # transcoding") unless the client accepts gzip; the proxy must see stored bytes.
        headers = {"accept-encoding": "gzip", **client_options.get("default_headers", {})}
        return GCSStore(
            bucket,
            prefix=cloud.store_prefix(settings),
            config=config,  # type: ignore[arg-type]
            client_options={**client_options, "default_headers": headers},  # type: ignore[arg-type]
            retry_config=retry_config,  # type: ignore[arg-type]
        )

    return cloud.make_backend(
        "gcp", settings, bucket=bucket, rules=GCS_RULES, build=build, identity=identity(settings)
    )


@hookimpl
def register_backends(register: RegisterBackend) -> None:
    register(
        "gcp",
        make_gcp,
        config=GcpSettings,
        description="a Google Cloud Storage bucket, GCP workload identity / ADC",
    )
