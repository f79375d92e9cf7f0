"""SigV4 authentication and per-key authorization through a running proxy."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import botocore.auth
import httpx
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ProxyServer, start_proxy, stop_proxy
from tests.e2e.test_awscli import AWS
from tests.e2e.test_boto3_core import error_of

ROOT = Path(__file__).resolve().parents[2]
ADMIN = ("test-access-key", "test-secret-key")
READER = ("reader-key", "reader-secret")
LIMITED = ("limited-key", "limited-secret")
OPS = ("ops-key", "ops-secret")


def client(server: ProxyServer, key: tuple[str, str], region: str = "us-east-1", **cfg: object):  # type: ignore[no-untyped-def]
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=key[0],
        aws_secret_access_key=key[1],
        region_name=region,
        config=Config(
            **{"s3": {"addressing_style": "path"}, "retries": {"max_attempts": 1}, **cfg}  # type: ignore[arg-type]
        ),
    )


def write_credentials(path: Path, keys: list[tuple[str, str, str]]) -> None:
    lines = []
    for key, secret, extra in keys:
        lines += ["[[credentials]]", f'access_key_id = "{key}"', f'secret_access_key = "{secret}"']
        lines += [extra, ""]
    path.write_text("\n".join(lines))


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    tmp = tmp_path_factory.mktemp("auth")
    creds = tmp / "credentials.toml"
    write_credentials(
        creds,
        [
            (*READER, "read_only = true"),
            (*LIMITED, 'buckets = ["team-*"]'),
            (*OPS, 'operations = ["GetObject", "ListObjectsV2"]'),
        ],
    )
    server = start_proxy(
        tmp,
        "local",
        env={
            "S3PROXY_AUTH__ACCESS_KEY_ID": ADMIN[0],
            "S3PROXY_AUTH__SECRET_ACCESS_KEY": ADMIN[1],
            "S3PROXY_AUTH__CREDENTIALS_FILE": str(creds),
            "S3PROXY_AUTH__PUBLIC_READ_BUCKETS": "public-*",
        },
    )
    server.credentials_file = creds  # type: ignore[attr-defined]
    admin = client(server, ADMIN)
    for bucket in ("main", "team-a", "public-site"):
        admin.create_bucket(Bucket=bucket)
    admin.put_object(Bucket="main", Key="hello.txt", Body=b"hello")
    admin.put_object(Bucket="public-site", Key="index.html", Body=b"<html>")
    yield server
    stop_proxy(server)


def test_signed_requests_work(secured: ProxyServer) -> None:
    s3 = client(secured, ADMIN)
    s3.put_object(Bucket="main", Key="dir/a b+c.txt", Body=b"data" * 1000, Metadata={"k": "v"})
    assert s3.get_object(Bucket="main", Key="dir/a b+c.txt")["Body"].read() == b"data" * 1000
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="main", Prefix="dir/")["Contents"]]
    assert keys == ["dir/a b+c.txt"]
    # Payload signing on (sha256 of the body in x-amz-content-sha256) works too.
    signed_payload = client(
        secured, ADMIN, s3={"addressing_style": "path", "payload_signing_enabled": True}
    )
    signed_payload.put_object(Bucket="main", Key="signed", Body=b"signed body")
    assert s3.get_object(Bucket="main", Key="signed")["Body"].read() == b"signed body"


@pytest.mark.parametrize(
    ("key", "region", "code", "status"),
    [
        ((ADMIN[0], "wrong-secret"), "us-east-1", "SignatureDoesNotMatch", 403),
        (("nobody", "x"), "us-east-1", "InvalidAccessKeyId", 403),
    ],
)
def test_bad_credentials(
    secured: ProxyServer, key: tuple[str, str], region: str, code: str, status: int
) -> None:
    with pytest.raises(ClientError) as exc:
        client(secured, key, region).get_object(Bucket="main", Key="hello.txt")
    assert error_of(exc) == (code, status)


def test_wrong_region(secured: ProxyServer) -> None:
    request = AWSRequest(method="GET", url=f"{secured.endpoint}/main/hello.txt")
    botocore.auth.S3SigV4Auth(Credentials(*ADMIN), "s3", "eu-west-1").add_auth(request)
    resp = httpx.get(request.url, headers=dict(request.headers.items()))
    assert resp.status_code == 400
    assert "<Code>AuthorizationHeaderMalformed</Code>" in resp.text
    assert "<Region>us-east-1</Region>" in resp.text
    # boto3 follows the Region hint and retries, as it does against S3.
    assert client(secured, ADMIN, "eu-west-1").get_object(Bucket="main", Key="hello.txt")


def test_signature_details_never_leak(secured: ProxyServer) -> None:
    with pytest.raises(ClientError) as exc:
        client(secured, (ADMIN[0], "wrong-secret")).get_object(Bucket="main", Key="hello.txt")
    err = exc.value.response["Error"]
    assert err["AWSAccessKeyId"] == ADMIN[0]
    assert "StringToSign" not in err and "CanonicalRequest" not in err
    log = secured.log()
    assert ADMIN[1] not in log and "wrong-secret" not in log
    assert err["SignatureProvided"] not in log


def test_unsigned_request_denied(secured: ProxyServer) -> None:
    resp = httpx.get(f"{secured.endpoint}/main/hello.txt")
    assert resp.status_code == 403
    assert "<Code>AccessDenied</Code>" in resp.text
    # Signature Version 2 is off unless enabled.
    v2 = httpx.get(f"{secured.endpoint}/main/hello.txt?AWSAccessKeyId=x&Signature=y&Expires=1")
    assert v2.status_code == 400
    assert "AWS4-HMAC-SHA256" in v2.text


def test_public_read_bucket(secured: ProxyServer) -> None:
    assert httpx.get(f"{secured.endpoint}/public-site/index.html").content == b"<html>"
    assert httpx.get(f"{secured.endpoint}/public-site?list-type=2").status_code == 200
    assert httpx.put(f"{secured.endpoint}/public-site/x", content=b"x").status_code == 403
    assert httpx.get(f"{secured.endpoint}/").status_code == 403


def _signed_with_clock(server: ProxyServer, when: dt.datetime) -> int:
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=when):
        request = AWSRequest(method="GET", url=f"{server.endpoint}/main/hello.txt")
        botocore.auth.S3SigV4Auth(Credentials(*ADMIN), "s3", "us-east-1").add_auth(request)
    resp = httpx.get(request.url, headers=dict(request.headers.items()))
    return resp.status_code, resp.text  # type: ignore[return-value]


def test_clock_skew(secured: ProxyServer) -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    status, _ = _signed_with_clock(secured, now - dt.timedelta(minutes=5))
    assert status == 200
    status, text = _signed_with_clock(secured, now - dt.timedelta(minutes=20))
    assert status == 403
    assert "<Code>RequestTimeTooSkewed</Code>" in text
    status, text = _signed_with_clock(secured, now + dt.timedelta(minutes=20))
    assert "<Code>RequestTimeTooSkewed</Code>" in text


def test_presigned_urls(secured: ProxyServer) -> None:
    s3 = client(secured, ADMIN, signature_version="s3v4")
    get_url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "main", "Key": "hello.txt"}, ExpiresIn=300
    )
    result = subprocess.run(["curl", "-sf", get_url], capture_output=True, timeout=30)
    assert result.returncode == 0 and result.stdout == b"hello"
    put_url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": "main", "Key": "via-curl"}, ExpiresIn=300
    )
    result = subprocess.run(
        ["curl", "-sf", "-X", "PUT", "--data-binary", "curl body", put_url], timeout=30
    )
    assert result.returncode == 0
    assert s3.get_object(Bucket="main", Key="via-curl")["Body"].read() == b"curl body"

    tampered = get_url.replace("hello.txt", "hello.tx")
    assert "<Code>SignatureDoesNotMatch</Code>" in httpx.get(tampered).text
    wrong_key = client(
        secured, (ADMIN[0], "nope"), signature_version="s3v4"
    ).generate_presigned_url("get_object", Params={"Bucket": "main", "Key": "hello.txt"})
    assert "<Code>SignatureDoesNotMatch</Code>" in httpx.get(wrong_key).text
    other_region = client(
        secured, ADMIN, "ap-south-1", signature_version="s3v4"
    ).generate_presigned_url("get_object", Params={"Bucket": "main", "Key": "hello.txt"})
    assert "<Code>AuthorizationQueryParametersError</Code>" in httpx.get(other_region).text

    past = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=2)
    request = AWSRequest(method="GET", url=f"{secured.endpoint}/main/hello.txt")
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=past):
        botocore.auth.S3SigV4QueryAuth(Credentials(*ADMIN), "s3", "us-east-1", 3600).add_auth(
            request
        )
    resp = httpx.get(request.url)
    assert resp.status_code == 403
    assert "Request has expired" in resp.text
    too_long = get_url.replace("X-Amz-Expires=300", "X-Amz-Expires=604801")
    assert "<Code>AuthorizationQueryParametersError</Code>" in httpx.get(too_long).text


def _streaming_put(
    server: ProxyServer,
    key: str,
    chunks: list[bytes],
    tamper: bool = False,
    trailer: tuple[str, str] | None = None,
    tamper_trailer: bool = False,
) -> httpx.Response:
    """A STREAMING-AWS4-HMAC-SHA256-PAYLOAD upload: seed signed by botocore, chunk
    signatures computed here from the documented algorithm."""
    total = sum(len(c) for c in chunks)
    request = AWSRequest(
        method="PUT",
        url=f"{server.endpoint}/main/{key}",
        headers={
            "X-Amz-Content-SHA256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
            + ("-TRAILER" if trailer else ""),
            "Content-Encoding": "aws-chunked",
            "X-Amz-Decoded-Content-Length": str(total),
            **({"X-Amz-Trailer": trailer[0]} if trailer else {}),
        },
    )
    botocore.auth.SigV4Auth(Credentials(*ADMIN), "s3", "us-east-1").add_auth(request)
    headers = dict(request.headers.items())
    seed = headers["Authorization"].rsplit("Signature=", 1)[1]
    amz_date = headers["X-Amz-Date"]
    scope = f"{amz_date[:8]}/us-east-1/s3/aws4_request"
    key_bytes = ("AWS4" + ADMIN[1]).encode()
    for part in (amz_date[:8], "us-east-1", "s3", "aws4_request"):
        key_bytes = hmac.new(key_bytes, part.encode(), hashlib.sha256).digest()
    body = b""
    previous = seed
    empty = hashlib.sha256(b"").hexdigest()
    for data in [*chunks, b""]:
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                amz_date,
                scope,
                previous,
                empty,
                hashlib.sha256(data).hexdigest(),
            ]
        )
        previous = hmac.new(key_bytes, to_sign.encode(), hashlib.sha256).hexdigest()
        sent = data[:-1] + b"X" if tamper and data else data
        body += f"{len(data):x};chunk-signature={previous}\r\n".encode() + sent + b"\r\n"
    if trailer:
        body = body[:-2]  # the trailer follows the final chunk header's CRLF
        line = f"{trailer[0]}:{trailer[1]}\n"
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-TRAILER",
                amz_date,
                scope,
                previous,
                hashlib.sha256(line.encode()).hexdigest(),
            ]
        )
        trailer_sig = hmac.new(key_bytes, to_sign.encode(), hashlib.sha256).hexdigest()
        value = trailer[1][:-2] + "AA" if tamper_trailer else trailer[1]
        body += f"{trailer[0]}:{value}\r\nx-amz-trailer-signature:{trailer_sig}\r\n\r\n".encode()
    headers["Content-Length"] = str(len(body))
    return httpx.put(request.url, content=body, headers=headers)


def test_streaming_signed_upload(secured: ProxyServer) -> None:
    chunks = [b"a" * 65536, b"b" * 1024]
    resp = _streaming_put(secured, "streamed", chunks)
    assert resp.status_code == 200, resp.text
    s3 = client(secured, ADMIN)
    assert s3.get_object(Bucket="main", Key="streamed")["Body"].read() == b"".join(chunks)
    bad = _streaming_put(secured, "tampered", chunks, tamper=True)
    assert bad.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in bad.text
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket="main", Key="tampered")
    assert error_of(exc)[1] == 404


def test_streaming_signed_upload_with_trailer(secured: ProxyServer) -> None:
    import base64
    import zlib

    chunks = [b"t" * 70000, b"u" * 10]
    crc = base64.b64encode(zlib.crc32(b"".join(chunks)).to_bytes(4, "big")).decode()
    resp = _streaming_put(secured, "trailed", chunks, trailer=("x-amz-checksum-crc32", crc))
    assert resp.status_code == 200, resp.text
    assert resp.headers.get("x-amz-checksum-crc32") == crc
    bad = _streaming_put(
        secured, "trailed-bad", chunks, trailer=("x-amz-checksum-crc32", crc), tamper_trailer=True
    )
    assert bad.status_code in (400, 403)
    with pytest.raises(ClientError):
        client(secured, ADMIN).head_object(Bucket="main", Key="trailed-bad")


def test_read_only_key(secured: ProxyServer) -> None:
    reader = client(secured, READER)
    assert reader.get_object(Bucket="main", Key="hello.txt")["Body"].read() == b"hello"
    with pytest.raises(ClientError) as exc:
        reader.put_object(Bucket="main", Key="nope", Body=b"x")
    assert error_of(exc) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as exc:
        reader.delete_object(Bucket="main", Key="hello.txt")
    assert error_of(exc) == ("AccessDenied", 403)


def test_bucket_limited_key(secured: ProxyServer) -> None:
    limited = client(secured, LIMITED)
    limited.put_object(Bucket="team-a", Key="k", Body=b"mine")
    with pytest.raises(ClientError) as exc:
        limited.get_object(Bucket="main", Key="hello.txt")
    assert error_of(exc) == ("AccessDenied", 403)
    names = [b["Name"] for b in limited.list_buckets()["Buckets"]]
    assert names == ["team-a"]


def test_operations_limited_key(secured: ProxyServer) -> None:
    ops = client(secured, OPS)
    assert ops.get_object(Bucket="main", Key="hello.txt")["Body"].read() == b"hello"
    assert ops.list_objects_v2(Bucket="main")["KeyCount"] >= 1
    with pytest.raises(ClientError) as exc:
        ops.head_object(Bucket="main", Key="hello.txt")
    assert error_of(exc)[1] == 403
    with pytest.raises(ClientError) as exc:
        ops.put_object(Bucket="main", Key="x", Body=b"x")
    assert error_of(exc) == ("AccessDenied", 403)


def test_other_clients_with_keys(secured: ProxyServer, tmp_path: Path) -> None:
    import minio
    import s3fs

    host = secured.endpoint.removeprefix("http://")
    mc = minio.Minio(
        host, access_key=ADMIN[0], secret_key=ADMIN[1], secure=False, region="us-east-1"
    )
    data = os.urandom(300_000)
    mc.put_object("main", "minio/obj.bin", io.BytesIO(data), len(data))
    assert mc.get_object("main", "minio/obj.bin").read() == data
    assert [o.object_name for o in mc.list_objects("main", prefix="minio/")] == ["minio/obj.bin"]
    bad = minio.Minio(
        host, access_key=ADMIN[0], secret_key="nope", secure=False, region="us-east-1"
    )
    with pytest.raises(minio.error.S3Error) as exc:
        bad.stat_object("main", "minio/obj.bin")
    assert exc.value.code in ("SignatureDoesNotMatch", "AccessDenied")

    fs = s3fs.S3FileSystem(
        key=ADMIN[0], secret=ADMIN[1], endpoint_url=secured.endpoint, skip_instance_cache=True
    )
    with fs.open("main/fsspec/file.txt", "wb") as fh:
        fh.write(b"via fsspec")
    assert fs.cat("main/fsspec/file.txt") == b"via fsspec"

    conf = tmp_path / "rclone.conf"
    conf.write_text(
        "[proxy]\ntype = s3\nprovider = Other\n"
        f"access_key_id = {ADMIN[0]}\nsecret_access_key = {ADMIN[1]}\n"
        f"endpoint = {secured.endpoint}\nregion = us-east-1\n"
    )
    src = tmp_path / "r.txt"
    src.write_bytes(b"via rclone")
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    for args in (
        ["copyto", str(src), "proxy:main/rclone/r.txt"],
        ["cat", "proxy:main/rclone/r.txt"],
    ):
        result = subprocess.run(
            ["rclone", "--config", str(conf), *args], capture_output=True, env=env, timeout=120
        )
        assert result.returncode == 0, result.stderr
    assert result.stdout == b"via rclone"


def test_credentials_file_reload(secured: ProxyServer) -> None:
    new = (f"new-{uuid.uuid4().hex[:8]}", "new-secret")
    path: Path = secured.credentials_file  # type: ignore[attr-defined]
    with pytest.raises(ClientError):
        client(secured, new).head_bucket(Bucket="main")
    original = path.read_text()
    path.write_text(
        original
        + f'\n[[credentials]]\naccess_key_id = "{new[0]}"\nsecret_access_key = "{new[1]}"\n'
    )
    deadline = time.monotonic() + 15
    while True:
        try:
            client(secured, new).head_bucket(Bucket="main")
            break
        except ClientError:
            assert time.monotonic() < deadline, "new key never accepted"
            time.sleep(0.2)
    # A broken file keeps the previous keys working.
    path.write_text("this is [ not toml")
    time.sleep(1.2)
    client(secured, new).head_bucket(Bucket="main")
    path.write_text(original)


def test_audit_log(secured: ProxyServer) -> None:
    client(secured, ADMIN).get_object(Bucket="main", Key="hello.txt")
    httpx.get(f"{secured.endpoint}/main/hello.txt")
    entries = [json.loads(line) for line in secured.log().splitlines() if line.startswith("{")]
    audit = [e for e in entries if e["logger"] == "s3proxy.audit"]
    ok = [e for e in audit if e.get("principal") == ADMIN[0] and e.get("key") == "hello.txt"]
    assert ok and ok[-1]["status"] == 200 and ok[-1]["bytes_out"] == 5
    assert ok[-1]["bucket"] == "main" and ok[-1]["client"].startswith("127.0.0.1:")
    assert ok[-1]["request_id"] and ok[-1]["operation"] == "GetObject"
    denied = [e for e in audit if e.get("principal") == "anonymous" and e.get("status") == 403]
    assert denied
    assert all(ADMIN[1] not in json.dumps(e) for e in entries)


def test_aws_cli_with_keys(secured: ProxyServer, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": ADMIN[0],
        "AWS_SECRET_ACCESS_KEY": ADMIN[1],
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
    }
    src = tmp_path / "f.txt"
    src.write_text("cli")
    for args in (["s3", "cp", str(src), "s3://main/cli.txt"], ["s3", "ls", "s3://main/"]):
        result = subprocess.run(
            [AWS, "--endpoint-url", secured.endpoint, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
    assert "cli.txt" in result.stdout
    env["AWS_SECRET_ACCESS_KEY"] = "wrong"
    result = subprocess.run(
        [AWS, "--endpoint-url", secured.endpoint, "s3", "ls", "s3://main/"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode != 0 and "SignatureDoesNotMatch" in result.stderr


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    part=st.sampled_from(["path", "query", "header", "date", "signature"]),
    position=st.integers(0, 1000),
)
def test_any_mutation_of_a_signed_request_is_rejected(
    secured: ProxyServer, part: str, position: int
) -> None:
    request = AWSRequest(
        method="GET",
        url=f"{secured.endpoint}/main/hello.txt?response-content-type=text%2Fplain",
        headers={"x-amz-meta-probe": "value"},
    )
    botocore.auth.S3SigV4Auth(Credentials(*ADMIN), "s3", "us-east-1").add_auth(request)
    headers = dict(request.headers.items())
    url = request.url

    def flip(text: str) -> str:
        i = position % len(text)
        return text[:i] + ("B" if text[i] != "B" else "C") + text[i + 1 :]

    assert httpx.get(url, headers=headers).status_code == 200
    if part == "path":
        url = url.replace("hello.txt", flip("hello.txt"))
    elif part == "query":
        url = url.replace("text%2Fplain", flip("textplain"))
    elif part == "header":
        headers["x-amz-meta-probe"] = flip("value")
    elif part == "date":
        headers["X-Amz-Date"] = headers["X-Amz-Date"][:-3] + (
            "00Z" if not headers["X-Amz-Date"].endswith("00Z") else "01Z"
        )
    else:
        auth = headers["Authorization"]
        sig = auth.rsplit("=", 1)[1]
        i = position % len(sig)
        headers["Authorization"] = (
            auth[: -len(sig)] + sig[:i] + ("0" if sig[i] != "0" else "1") + sig[i + 1 :]
        )
    assert httpx.get(url, headers=headers).status_code == 403


def _plugin_proxy(tmp: Path, plugins: str, **env: str) -> ProxyServer:
    return start_proxy(
        tmp, "memory", env={"S3PROXY_PLUGINS": plugins, "PYTHONPATH": str(ROOT), **env}
    )


def test_plugin_authorizer_extends(tmp_path: Path) -> None:
    server = _plugin_proxy(
        tmp_path,
        "tests.plugin_samples.ip_allowlist",
        ALLOWED_IPS="10.9.9.9",
        S3PROXY_AUTH__ACCESS_KEY_ID=ADMIN[0],
        S3PROXY_AUTH__SECRET_ACCESS_KEY=ADMIN[1],
    )
    try:
        with pytest.raises(ClientError) as exc:
            client(server, ADMIN).list_buckets()
        assert error_of(exc) == ("AccessDenied", 403)
    finally:
        stop_proxy(server)
    server = _plugin_proxy(
        tmp_path,
        "tests.plugin_samples.ip_allowlist",
        ALLOWED_IPS="127.0.0.1",
        S3PROXY_AUTH__ACCESS_KEY_ID=ADMIN[0],
        S3PROXY_AUTH__SECRET_ACCESS_KEY=ADMIN[1],
    )
    try:
        client(server, ADMIN).list_buckets()
        # The built-in SigV4 check still applies beneath the plugin.
        with pytest.raises(ClientError) as exc:
            client(server, (ADMIN[0], "bad")).list_buckets()
        assert error_of(exc) == ("SignatureDoesNotMatch", 403)
    finally:
        stop_proxy(server)


def test_plugin_authenticator_replaces_sigv4(tmp_path: Path) -> None:
    server = _plugin_proxy(tmp_path, "tests.plugin_samples.token_auth")
    try:
        assert httpx.get(f"{server.endpoint}/").status_code == 403
        ok = httpx.get(f"{server.endpoint}/", headers={"x-test-token": "letmein"})
        assert ok.status_code == 200
    finally:
        stop_proxy(server)


def test_sigv2_only_when_enabled(secured: ProxyServer, tmp_path: Path) -> None:
    legacy = client(secured, ADMIN, signature_version="s3")
    with pytest.raises(ClientError) as exc:
        legacy.get_object(Bucket="main", Key="hello.txt")
    assert error_of(exc) == ("InvalidRequest", 400)

    server = start_proxy(
        tmp_path,
        "memory",
        env={
            "S3PROXY_AUTH__ACCESS_KEY_ID": ADMIN[0],
            "S3PROXY_AUTH__SECRET_ACCESS_KEY": ADMIN[1],
            "S3PROXY_AUTH__ALLOW_SIGV2": "true",
        },
    )
    try:
        legacy = client(server, ADMIN, signature_version="s3")
        legacy.create_bucket(Bucket="old")
        legacy.put_object(Bucket="old", Key="dir/a b.txt", Body=b"v2", ContentType="text/plain")
        assert legacy.get_object(Bucket="old", Key="dir/a b.txt")["Body"].read() == b"v2"
        url = legacy.generate_presigned_url(
            "get_object", Params={"Bucket": "old", "Key": "dir/a b.txt"}
        )
        assert "AWSAccessKeyId=" in url
        assert httpx.get(url).content == b"v2"
        assert "<Code>SignatureDoesNotMatch</Code>" in httpx.get(url.replace("a%20b", "a%20c")).text
        with pytest.raises(ClientError) as exc:
            client(server, (ADMIN[0], "bad"), signature_version="s3").list_buckets()
        assert error_of(exc) == ("SignatureDoesNotMatch", 403)
    finally:
        stop_proxy(server)


@pytest.fixture(scope="module")
def form_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    server = start_proxy(
        tmp_path_factory.mktemp("form"),
        "memory",
        env={
            "S3PROXY_AUTH__ACCESS_KEY_ID": ADMIN[0],
            "S3PROXY_AUTH__SECRET_ACCESS_KEY": ADMIN[1],
            "S3PROXY_AUTH__ALLOW_PRESIGNED_POST": "true",
        },
    )
    client(server, ADMIN).create_bucket(Bucket="uploads")
    yield server
    stop_proxy(server)


def _presigned_post(server: ProxyServer, key: str = "user/${filename}", **kw: object) -> dict:  # type: ignore[type-arg]
    s3 = client(server, ADMIN, signature_version="s3v4")
    return s3.generate_presigned_post(  # type: ignore[no-any-return]
        "uploads",
        key,
        Fields={"Content-Type": "text/plain", "x-amz-meta-origin": "browser"},
        Conditions=[
            ["starts-with", "$key", "user/"],
            {"Content-Type": "text/plain"},
            {"x-amz-meta-origin": "browser"},
            ["content-length-range", 1, 1000],
        ],
        ExpiresIn=600,
        **kw,
    )


def test_presigned_post_upload(form_proxy: ProxyServer) -> None:
    post = _presigned_post(form_proxy)
    resp = httpx.post(
        post["url"], data=post["fields"], files={"file": ("note.txt", b"from a form")}
    )
    assert resp.status_code == 204, resp.text
    got = client(form_proxy, ADMIN).get_object(Bucket="uploads", Key="user/note.txt")
    assert got["Body"].read() == b"from a form"
    assert got["ContentType"] == "text/plain"
    assert got["Metadata"] == {"origin": "browser"}
    assert resp.headers["etag"] == got["ETag"]

    post201 = client(form_proxy, ADMIN, signature_version="s3v4").generate_presigned_post(
        "uploads",
        "user/created.txt",
        Fields={"success_action_status": "201"},
        Conditions=[{"success_action_status": "201"}],
    )
    resp = httpx.post(post201["url"], data=post201["fields"], files={"file": ("x", b"x")})
    assert resp.status_code == 201
    assert "<Key>user/created.txt</Key>" in resp.text
    assert "<Bucket>uploads</Bucket>" in resp.text


@pytest.mark.parametrize(
    ("mutate", "body", "code"),
    [
        (lambda f: f.update(key="elsewhere/x"), b"x", "AccessDenied"),
        (lambda f: f.update({"x-amz-meta-origin": "script"}), b"x", "AccessDenied"),
        (lambda f: f.update({"x-amz-meta-extra": "1"}), b"x", "AccessDenied"),
        (lambda f: f.update(policy=f["policy"][:-4] + "AAAA"), b"x", "SignatureDoesNotMatch"),
        (lambda f: f.update({"x-amz-signature": "0" * 64}), b"x", "SignatureDoesNotMatch"),
        (lambda f: None, b"y" * 2000, "EntityTooLarge"),
        (lambda f: None, b"", "EntityTooSmall"),
    ],
)
def test_presigned_post_refusals(form_proxy: ProxyServer, mutate, body: bytes, code: str) -> None:  # type: ignore[no-untyped-def]
    post = _presigned_post(form_proxy, "user/refused.txt")
    fields = dict(post["fields"])
    mutate(fields)
    resp = httpx.post(post["url"], data=fields, files={"file": ("refused.txt", body)})
    assert resp.status_code in (400, 403), resp.text
    assert f"<Code>{code}</Code>" in resp.text
    with pytest.raises(ClientError):
        client(form_proxy, ADMIN).head_object(Bucket="uploads", Key="user/refused.txt")


def test_presigned_post_disabled_by_default(secured: ProxyServer) -> None:
    post = _presigned_post(secured)
    resp = httpx.post(
        post["url"].replace("uploads", "main"), data=post["fields"], files={"file": ("a", b"a")}
    )
    assert resp.status_code == 501


def test_anonymous_read_mode_and_signature_debugging(tmp_path: Path) -> None:
    server = start_proxy(
        tmp_path,
        "memory",
        env={
            "S3PROXY_AUTH__ACCESS_KEY_ID": ADMIN[0],
            "S3PROXY_AUTH__SECRET_ACCESS_KEY": ADMIN[1],
            "S3PROXY_AUTH__ANONYMOUS": "read",
            "S3PROXY_AUTH__DEBUG_SIGNATURES": "true",
        },
    )
    try:
        admin = client(server, ADMIN)
        admin.create_bucket(Bucket="open")
        admin.put_object(Bucket="open", Key="k", Body=b"readable")
        assert httpx.get(f"{server.endpoint}/open/k").content == b"readable"
        assert httpx.put(f"{server.endpoint}/open/k", content=b"x").status_code == 403
        assert httpx.delete(f"{server.endpoint}/open/k").status_code == 403
        with pytest.raises(ClientError) as exc:
            client(server, (ADMIN[0], "wrong")).get_object(Bucket="open", Key="k")
        err = exc.value.response["Error"]
        assert err["Code"] == "SignatureDoesNotMatch"
        assert err["StringToSign"].startswith("AWS4-HMAC-SHA256\n")
        assert err["CanonicalRequest"].startswith("GET\n/open/k\n")
    finally:
        stop_proxy(server)
