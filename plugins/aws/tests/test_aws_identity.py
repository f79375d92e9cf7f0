"""The AWS credential chain's token paths, against local fake identity endpoints + moto.

The proxy is given no keys: obstore's default chain must find credentials through the
environment a platform injects (EKS Pod Identity, IRSA, EC2 instance metadata), fetch
them from the (fake) endpoint, and then talk to S3 (moto) with them.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from s3proxy_aws.plugin import AwsSettings, make_aws

from s3proxy.storage.native import NativeObstoreBackend
from s3proxy.testing import emulators
from s3proxy.testing.backend_contract import make_body, read_key
from s3proxy.testing.fake_endpoints import ConnectProxy, FakeEndpoint, Seen, tls_pair

CREDS = {
    "AccessKeyId": "AKIDFROMCHAIN000000",
    "SecretAccessKey": "secret-from-chain",
    "Token": "session-from-chain",
    "Expiration": "2099-01-01T00:00:00Z",
}


@pytest.fixture
def no_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    import os

    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    return monkeypatch


@pytest.fixture
def cloud_bucket(moto: emulators.Emulator) -> str:
    name = emulators.new_name("id")
    emulators.create_bucket(moto, name)
    return name


def keyless(moto: emulators.Emulator, bucket: str, **client: str) -> NativeObstoreBackend:
    settings = AwsSettings(
        bucket=bucket,
        endpoint=moto.endpoint,
        allow_http=True,
        region="us-east-1",
        max_retries=0,
        client_options=client,
    )
    return make_aws(settings)


async def round_trip(backend: NativeObstoreBackend, bucket: str) -> None:
    await backend.start()
    await backend.check_ready()
    await backend.put(bucket, "k", make_body(b"via the chain"))
    assert await read_key(backend, bucket, "k") == b"via the chain"
    await backend.close()


def json_answer(body: object) -> object:
    def answer(req: Seen) -> tuple[int, dict[str, str], bytes]:
        return 200, {"content-type": "application/json"}, json.dumps(body).encode()

    return answer


async def test_eks_pod_identity(
    moto: emulators.Emulator, cloud_bucket: str, no_aws_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token = tmp_path / "eks-pod-identity-token"
    token.write_text("pod-identity-token")
    with FakeEndpoint(json_answer(CREDS)) as agent:  # type: ignore[arg-type]
        no_aws_env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", f"{agent.url}/v1/credentials")
        no_aws_env.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(token))
        backend = keyless(moto, cloud_bucket)
        assert "EKS Pod Identity" in backend.identity
        await round_trip(backend, cloud_bucket)
    assert agent.seen
    assert {s.headers.get("authorization") for s in agent.seen} == {"pod-identity-token"}


async def test_web_identity_irsa(
    moto: emulators.Emulator, cloud_bucket: str, no_aws_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token = tmp_path / "irsa-token"
    token.write_text("projected-service-account-jwt")
    creds = "".join(f"<{k}>{v}</{k}>" for k, v in CREDS.items()).replace("Token>", "SessionToken>")
    body = (
        "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>"
        f"<Credentials>{creds}</Credentials>"
        "</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
    ).encode()

    def sts(req: Seen) -> tuple[int, dict[str, str], bytes]:
        return 200, {"content-type": "text/xml"}, body

    # obstore calls STS at https://sts.<region>.amazonaws.com, over TLS only: the fake
    # holds a certificate for that name from a throwaway CA the proxy is told to trust,
    # and an HTTP proxy (bypassed for moto) delivers the connection to it.
    ca, chain, key = tls_pair(tmp_path, "sts.us-east-1.amazonaws.com")
    with (
        FakeEndpoint(sts, tls=(chain, key)) as endpoint,
        ConnectProxy(("127.0.0.1", int(endpoint.url.rsplit(":", 1)[1]))) as tunnel,
    ):
        no_aws_env.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
        no_aws_env.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/s3proxy")
        backend = keyless(
            moto,
            cloud_bucket,
            root_certificate=ca.read_text(),
            proxy_url=tunnel.url,
            proxy_excludes="127.0.0.1",
        )
        assert "web identity (IRSA) for role arn:aws:iam::123456789012:role/s3proxy" in (
            backend.identity
        )
        await round_trip(backend, cloud_bucket)
    assert set(tunnel.requested) == {"CONNECT sts.us-east-1.amazonaws.com:443 HTTP/1.1"}
    sent = [
        {**s.query, **{k: v[0] for k, v in parse_qs(s.body.decode()).items()}}
        for s in endpoint.seen
    ]
    assert sent
    assert all(c.get("Action") == "AssumeRoleWithWebIdentity" for c in sent)
    assert all(c.get("WebIdentityToken") == "projected-service-account-jwt" for c in sent)
    assert all(c.get("RoleArn") == "arn:aws:iam::123456789012:role/s3proxy" for c in sent)


async def test_ec2_instance_metadata(
    moto: emulators.Emulator, cloud_bucket: str, no_aws_env: pytest.MonkeyPatch
) -> None:
    def imds(req: Seen) -> tuple[int, dict[str, str], bytes]:
        if req.method == "PUT" and req.path == "/latest/api/token":
            return 200, {}, b"imds-session-token"
        if req.headers.get("x-aws-ec2-metadata-token") != "imds-session-token":
            return 401, {}, b""
        if req.path == "/latest/meta-data/iam/security-credentials/":
            return 200, {}, b"s3proxy-role"
        if req.path == "/latest/meta-data/iam/security-credentials/s3proxy-role":
            return 200, {}, json.dumps({"Code": "Success", **CREDS}).encode()
        return 404, {}, b""

    with FakeEndpoint(imds) as endpoint:
        no_aws_env.setenv("AWS_METADATA_ENDPOINT", endpoint.url)
        backend = keyless(moto, cloud_bucket)
        assert "instance metadata" in backend.identity
        await round_trip(backend, cloud_bucket)
    assert [s.path for s in endpoint.seen][:1] == ["/latest/api/token"]
