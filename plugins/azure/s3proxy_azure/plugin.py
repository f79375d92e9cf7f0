"""Entry point module of the s3proxy-azure plugin: the ``azure`` backend (obstore AzureStore).

Credentials come from the Azure chain as obstore implements it: workload identity
(federated token file), then managed identity (IMDS); the Azure CLI when
``use_azure_cli`` is set (developers); account keys and SAS tokens only for development
and Azurite. docs/backends.md lists the environment variables each step reads.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from obstore.store import AzureStore

from s3proxy.hookspecs import RegisterBackend, hookimpl
from s3proxy.storage import cloud
from s3proxy.storage.native import NativeObstoreBackend
from s3proxy.storage.native_meta import AZURE_RULES

#: Azurite's documented development account and key (public values, not secrets).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
AZURITE_ENDPOINT = f"http://127.0.0.1:10000/{AZURITE_ACCOUNT}"


class AzureSettings(cloud.CloudSettings, forbid_unknown_fields=True, kw_only=True):
    """``[backends.azure]``; shared fields in ``s3proxy.storage.cloud.CloudSettings``."""

    #: Storage account name (AZURE_STORAGE_ACCOUNT_NAME when empty).
    account: str = ""
    #: The blob container (required).
    container: str = ""
    #: Client id of the workload identity or user-assigned managed identity (not a
    #: secret; AZURE_CLIENT_ID when empty).
    client_id: str = ""
    #: Tenant of the workload identity (AZURE_TENANT_ID when empty).
    tenant_id: str = ""
    #: Use ``az account get-access-token``: developers signed in with the Azure CLI.
    use_azure_cli: bool = False
    #: Azurite with its documented account; ``endpoint`` defaults to 127.0.0.1:10000.
    use_emulator: bool = False
    #: Shared account key: development and emulators only.
    account_key: str = ""
    #: SAS token: development only (production uses workload or managed identity).
    sas_token: str = ""


def identity(settings: AzureSettings, env: Mapping[str, str] = os.environ) -> str:
    """Which credential applies, for log lines (never a secret)."""
    if settings.use_emulator or settings.account_key:
        return "account key (development / emulator)"
    if settings.sas_token:
        return "SAS token (development)"
    client = settings.client_id or env.get("AZURE_CLIENT_ID", "")
    if env.get("AZURE_FEDERATED_TOKEN_FILE") and client:
        return f"workload identity, client id {client}"
    if settings.use_azure_cli or env.get("AZURE_USE_AZURE_CLI", "").lower() == "true":
        return "Azure CLI login"
    return f"managed identity{f', client id {client}' if client else ''} (IMDS)"


def store_config(settings: AzureSettings) -> dict[str, Any]:
    config: dict[str, Any] = dict(settings.options)
    account, key, endpoint = settings.account, settings.account_key, settings.endpoint
    if settings.use_emulator:
        account = account or AZURITE_ACCOUNT
        key = key or AZURITE_KEY
        endpoint = endpoint or AZURITE_ENDPOINT
    for name, value in (
        ("account_name", account),
        ("account_key", key),
        ("sas_key", settings.sas_token),
        ("endpoint", endpoint),
        ("client_id", settings.client_id),
        ("tenant_id", settings.tenant_id),
    ):
        if value:
            config[name] = value
    if settings.use_azure_cli:
        config["use_azure_cli"] = True
    return config


def make_azure(settings: AzureSettings) -> NativeObstoreBackend:
    container = cloud.require(settings.container, "container", "azure")
    config = store_config(settings)
    if settings.use_emulator:
        settings.allow_http = True

    def build(client_options: dict[str, Any], retry_config: dict[str, Any]) -> AzureStore:
        return AzureStore(
            container,
            prefix=cloud.store_prefix(settings),
            config=config,  # type: ignore[arg-type]
            client_options=client_options,  # type: ignore[arg-type]
            retry_config=retry_config,  # type: ignore[arg-type]
        )

    return cloud.make_backend(
        "azure",
        settings,
        bucket=container,
        rules=AZURE_RULES,
        build=build,
        identity=identity(settings),
    )


@hookimpl
def register_backends(register: RegisterBackend) -> None:
    register(
        "azure",
        make_azure,
        config=AzureSettings,
        description="an Azure Blob Storage container, Azure managed/workload identity",
    )
