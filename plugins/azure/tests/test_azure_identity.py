"""The Azure credential chain's token paths, against local fake identity endpoints.

The backend is given no key: obstore must obtain a bearer token (workload identity from
a federated token file; managed identity from IMDS) and present it to Blob Storage,
played here by a fake that records the Authorization header and answers a listing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from s3proxy_azure.plugin import AzureSettings, make_azure

from s3proxy.storage.obstore_errors import BackendAccessDenied, forget_logged
from s3proxy.testing.fake_endpoints import FakeEndpoint, Seen

TOKEN = {"access_token": "token-from-entra", "expires_in": 3599, "token_type": "Bearer"}
EMPTY_LISTING = (
    b'<?xml version="1.0" encoding="utf-8"?><EnumerationResults ContainerName="c">'
    b"<Blobs /><NextMarker /></EnumerationResults>"
)


@pytest.fixture
def no_azure_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith(("AZURE_", "IDENTITY_", "MSI_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    return monkeypatch


def blob_service(req: Seen) -> tuple[int, dict[str, str], bytes]:
    if req.headers.get("authorization") != "Bearer token-from-entra":
        return 403, {}, b"<Error><Code>AuthenticationFailed</Code></Error>"
    return 200, {"content-type": "application/xml"}, EMPTY_LISTING


def keyless(blob_url: str, **extra: object) -> object:
    return make_azure(
        AzureSettings(
            account="acct",
            container="c",
            endpoint=f"{blob_url}/acct",
            allow_http=True,
            max_retries=0,
            **extra,  # type: ignore[arg-type]
        )
    )


async def test_workload_identity(no_azure_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    federated = tmp_path / "azure-identity-token"
    federated.write_text("kubernetes-projected-token")

    def entra(req: Seen) -> tuple[int, dict[str, str], bytes]:
        return 200, {"content-type": "application/json"}, json.dumps(TOKEN).encode()

    with FakeEndpoint(entra) as authority, FakeEndpoint(blob_service) as blobs:
        # What the AKS workload identity webhook injects into the pod.
        no_azure_env.setenv("AZURE_FEDERATED_TOKEN_FILE", str(federated))
        no_azure_env.setenv("AZURE_CLIENT_ID", "00000000-0000-0000-0000-0000000000c1")
        no_azure_env.setenv("AZURE_TENANT_ID", "tenant-1")
        no_azure_env.setenv("AZURE_AUTHORITY_HOST", authority.url)
        backend = keyless(blobs.url)
        assert "workload identity" in backend.identity  # type: ignore[attr-defined]
        await backend.start()  # type: ignore[attr-defined]
        await backend.check_ready()  # type: ignore[attr-defined]
    [exchange] = authority.seen
    assert exchange.path == "/tenant-1/oauth2/v2.0/token"
    form = {k: v[0] for k, v in parse_qs(exchange.body.decode()).items()}
    assert form["client_assertion"] == "kubernetes-projected-token"
    assert form["client_id"] == "00000000-0000-0000-0000-0000000000c1"
    assert blobs.seen and blobs.seen[0].headers["authorization"] == "Bearer token-from-entra"


async def test_managed_identity(no_azure_env: pytest.MonkeyPatch) -> None:
    def imds(req: Seen) -> tuple[int, dict[str, str], bytes]:
        if req.headers.get("metadata") != "true":
            return 400, {}, b""
        body = {**TOKEN, "expires_on": "4102444800", "resource": "https://storage.azure.com"}
        return 200, {"content-type": "application/json"}, json.dumps(body).encode()

    with FakeEndpoint(imds) as identity, FakeEndpoint(blob_service) as blobs:
        no_azure_env.setenv("AZURE_MSI_ENDPOINT", f"{identity.url}/metadata/identity/oauth2/token")
        backend = keyless(blobs.url)
        assert "managed identity" in backend.identity  # type: ignore[attr-defined]
        await backend.start()  # type: ignore[attr-defined]
        await backend.check_ready()  # type: ignore[attr-defined]
    assert identity.seen[0].query.get("resource", "").startswith("https://storage.azure.com")
    assert blobs.seen[0].headers["authorization"] == "Bearer token-from-entra"


async def test_refused_identity_is_503_with_a_log_line(
    no_azure_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(req: Seen) -> tuple[int, dict[str, str], bytes]:
        return (
            403,
            {"content-type": "application/xml"},
            (
                b"<Error><Code>AuthorizationPermissionMismatch</Code>"
                b"<Message>not allowed sig=SECRETSIG</Message></Error>"
            ),
        )

    forget_logged()
    with FakeEndpoint(refuse) as blobs:
        backend = keyless(blobs.url, sas_token="sv=2022&sig=SECRETSIG")
        await backend.start()  # type: ignore[attr-defined]
        with pytest.raises(BackendAccessDenied):
            await backend.check_ready()  # type: ignore[attr-defined]
    assert "refused the proxy's identity (SAS token (development))" in caplog.text
    assert "SECRETSIG" not in caplog.text
