"""GCP credentials: the metadata server (GKE workload identity) and a service account key.

Against the fake GCS server, which records the Authorization header of every request.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.request
from pathlib import Path

import pytest
from s3proxy_gcp.plugin import GcpSettings, make_gcp

from s3proxy.testing import emulators
from s3proxy.testing.backend_contract import make_body, read_key
from s3proxy.testing.fake_endpoints import FakeEndpoint, Seen


@pytest.fixture
def no_google_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith(("GOOGLE_", "GCE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))  # no gcloud credentials file either
    return monkeypatch


@pytest.fixture
def gcs_bucket(fake_gcs: emulators.Emulator) -> str:
    name = emulators.new_name("id")
    emulators.create_bucket(fake_gcs, name)
    return name


def auth_seen(fake_gcs: emulators.Emulator) -> list[str]:
    with urllib.request.urlopen(f"{fake_gcs.endpoint}/_fake/auth", timeout=10) as resp:
        seen: list[str] = json.load(resp)
    return seen


async def test_metadata_server(
    fake_gcs: emulators.Emulator, gcs_bucket: str, no_google_env: pytest.MonkeyPatch
) -> None:
    def metadata(req: Seen) -> tuple[int, dict[str, str], bytes]:
        if req.headers.get("metadata-flavor") != "Google":
            return 403, {}, b""
        if req.path == "/computeMetadata/v1/instance/service-accounts/default/token":
            token = {"access_token": "token-from-metadata", "expires_in": 3599}
            return 200, {"content-type": "application/json"}, json.dumps(token).encode()
        return 404, {}, b""

    with FakeEndpoint(metadata) as server:
        no_google_env.setenv("GCE_METADATA_HOST", server.url.removeprefix("http://"))
        backend = make_gcp(
            GcpSettings(bucket=gcs_bucket, endpoint=fake_gcs.endpoint, allow_http=True)
        )
        assert "metadata server" in backend.identity
        await backend.start()
        await backend.put(gcs_bucket, "k", make_body(b"metadata token"))
        assert await read_key(backend, gcs_bucket, "k") == b"metadata token"
    assert "Bearer token-from-metadata" in auth_seen(fake_gcs)


async def test_service_account_key_file(
    fake_gcs: emulators.Emulator, gcs_bucket: str, no_google_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    account = {
        "type": "service_account",
        "client_email": "s3proxy@project.iam.gserviceaccount.com",
        "private_key_id": "key-1",
        "private_key": pem,
    }
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(account))
    no_google_env.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    backend = make_gcp(GcpSettings(bucket=gcs_bucket, endpoint=fake_gcs.endpoint, allow_http=True))
    assert str(path) in backend.identity
    await backend.start()
    await backend.check_ready()
    jwt = auth_seen(fake_gcs)[-1].removeprefix("Bearer ")
    header, claims, signature = jwt.split(".")

    def unb64(part: str) -> bytes:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    assert json.loads(unb64(claims))["iss"] == "s3proxy@project.iam.gserviceaccount.com"
    assert json.loads(unb64(header))["kid"] == "key-1"
    # Signed with the file's key (raises if not).
    key.public_key().verify(
        unb64(signature), f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256()
    )
