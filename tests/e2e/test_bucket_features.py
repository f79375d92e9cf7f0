"""Addressing, CORS, bucket sub-resources and version listing through a running proxy."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.conftest import ProxyServer, raw_request, s3_client, start_proxy, stop_proxy
from tests.e2e.test_boto3_core import error_of

ORIGIN = "https://app.example.com"


@pytest.fixture(scope="module")
def configured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    server = start_proxy(
        tmp_path_factory.mktemp("features"),
        "local",
        env={
            "S3PROXY_S3__BASE_DOMAINS": "s3.example.test,objects.internal",
            "S3PROXY_S3__CORS__ALLOWED_ORIGINS": f"{ORIGIN},https://*.partner.test",
            "S3PROXY_S3__REGION": "eu-central-1",
        },
    )
    yield server
    stop_proxy(server)


def _host(server: ProxyServer) -> str:
    return server.endpoint.removeprefix("http://")


def test_virtual_host_addressing_keeps_raw_keys(configured: ProxyServer) -> None:
    s3 = s3_client(configured.endpoint)
    s3.create_bucket(Bucket="vhost")
    port = _host(configured).split(":")[1]
    vhost = {"host": f"vhost.s3.example.test:{port}"}
    url = configured.endpoint
    for key in ("a//b/", "x%2Fy", "dir/"):
        resp = httpx.put(f"{url}/{key}", content=key.encode(), headers=vhost)
        assert resp.status_code == 200, resp.text
    # Path style sees the same objects, with the keys exactly as sent.
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="vhost")["Contents"]]
    assert keys == ["a//b/", "dir/", "x/y"]
    assert httpx.get(f"{url}/a//b/", headers=vhost).content == b"a//b/"
    listing = httpx.get(f"{url}/?list-type=2", headers={"host": f"VHOST.objects.internal:{port}"})
    assert "<Key>a//b/</Key>" in listing.text
    # The base domain itself is path style.
    resp = httpx.get(f"{url}/vhost/dir/", headers={"host": f"s3.example.test:{port}"})
    assert resp.content == b"dir/"
    # A host outside the base domains is path style too.
    assert httpx.get(f"{url}/vhost/dir/").content == b"dir/"


def test_cors_preflight_and_response_headers(configured: ProxyServer) -> None:
    s3_client(configured.endpoint).create_bucket(Bucket="cors")
    url = f"{configured.endpoint}/cors/file.txt"
    ok = httpx.options(
        url,
        headers={
            "origin": ORIGIN,
            "access-control-request-method": "PUT",
            "access-control-request-headers": "content-type, x-amz-meta-a",
        },
    )
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == ORIGIN
    assert "PUT" in ok.headers["access-control-allow-methods"]
    assert ok.headers["access-control-allow-headers"] == "content-type, x-amz-meta-a"
    assert "ETag" in ok.headers["access-control-expose-headers"]
    wildcard = httpx.options(
        url,
        headers={"origin": "https://eu.partner.test", "access-control-request-method": "GET"},
    )
    assert wildcard.status_code == 200
    denied = httpx.options(
        url, headers={"origin": "https://evil.test", "access-control-request-method": "GET"}
    )
    assert denied.status_code == 403
    assert "<Code>AccessForbidden</Code>" in denied.text
    bad = httpx.options(url)
    assert bad.status_code == 400

    put = httpx.put(url, content=b"x", headers={"origin": ORIGIN})
    assert put.headers["access-control-allow-origin"] == ORIGIN
    other = httpx.get(url, headers={"origin": "https://evil.test"})
    assert "access-control-allow-origin" not in other.headers


def test_location_reports_configured_region(configured: ProxyServer) -> None:
    s3 = s3_client(configured.endpoint)
    s3.create_bucket(Bucket="where")
    assert s3.get_bucket_location(Bucket="where")["LocationConstraint"] == "eu-central-1"


def test_location_us_east_1_is_empty(s3, bucket) -> None:
    assert s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") is None


def test_versioning_and_acls(s3, bucket) -> None:
    versioning = s3.get_bucket_versioning(Bucket=bucket)
    assert "Status" not in versioning
    acl = s3.get_bucket_acl(Bucket=bucket)
    assert [g["Permission"] for g in acl["Grants"]] == ["FULL_CONTROL"]
    assert acl["Grants"][0]["Grantee"]["ID"] == acl["Owner"]["ID"]
    assert acl["Grants"][0]["Grantee"]["Type"] == "CanonicalUser"
    s3.put_bucket_acl(Bucket=bucket, ACL="private")
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    assert error_of(exc) == ("NotImplemented", 501)
    s3.put_object(Bucket=bucket, Key="obj", Body=b"x")
    assert s3.get_object_acl(Bucket=bucket, Key="obj")["Grants"][0]["Permission"] == "FULL_CONTROL"
    s3.put_object_acl(Bucket=bucket, Key="obj", ACL="private")
    # The owner-only policy as a body is the same thing as "private".
    s3.put_object_acl(
        Bucket=bucket,
        Key="obj",
        AccessControlPolicy={"Owner": acl["Owner"], "Grants": acl["Grants"]},
    )
    with pytest.raises(ClientError) as exc:
        s3.get_object_acl(Bucket=bucket, Key="missing")
    assert error_of(exc) == ("NoSuchKey", 404)
    assert s3.get_object_tagging(Bucket=bucket, Key="obj")["TagSet"] == []


@pytest.mark.parametrize(
    ("call", "code"),
    [
        ("get_bucket_cors", "NoSuchCORSConfiguration"),
        ("get_bucket_policy", "NoSuchBucketPolicy"),
        ("get_bucket_lifecycle_configuration", "NoSuchLifecycleConfiguration"),
        ("get_bucket_tagging", "NoSuchTagSet"),
        ("get_bucket_website", "NoSuchWebsiteConfiguration"),
        ("get_bucket_encryption", "ServerSideEncryptionConfigurationNotFoundError"),
        ("get_public_access_block", "NoSuchPublicAccessBlockConfiguration"),
        ("get_object_lock_configuration", "ObjectLockConfigurationNotFoundError"),
        ("get_bucket_ownership_controls", "OwnershipControlsNotFoundError"),
        ("get_bucket_replication", "ReplicationConfigurationNotFoundError"),
    ],
)
def test_not_configured_answers(s3, bucket, call: str, code: str) -> None:
    with pytest.raises(ClientError) as exc:
        getattr(s3, call)(Bucket=bucket)
    assert error_of(exc) == (code, 404)
    with pytest.raises(ClientError) as exc:
        getattr(s3, call)(Bucket=f"nope-{uuid.uuid4().hex[:10]}")
    assert error_of(exc) == ("NoSuchBucket", 404)


def test_fixed_answers_and_deletes(s3, bucket) -> None:
    assert s3.get_bucket_request_payment(Bucket=bucket)["Payer"] == "BucketOwner"
    assert "Status" not in s3.get_bucket_accelerate_configuration(Bucket=bucket)
    assert "LoggingEnabled" not in s3.get_bucket_logging(Bucket=bucket)
    s3.get_bucket_notification_configuration(Bucket=bucket)
    for call in ("delete_bucket_cors", "delete_bucket_policy", "delete_bucket_tagging"):
        resp = getattr(s3, call)(Bucket=bucket)
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_list_object_versions_unversioned(s3, bucket) -> None:
    for key in ("a", "b/1", "b/2", "c"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    resp = s3.list_object_versions(Bucket=bucket, Delimiter="/")
    assert [(v["Key"], v["VersionId"], v["IsLatest"]) for v in resp["Versions"]] == [
        ("a", "null", True),
        ("c", "null", True),
    ]
    assert [p["Prefix"] for p in resp["CommonPrefixes"]] == ["b/"]
    paginator = s3.get_paginator("list_object_versions")
    keys = [
        v["Key"]
        for page in paginator.paginate(Bucket=bucket, PaginationConfig={"PageSize": 1})
        for v in page.get("Versions", [])
    ]
    assert keys == ["a", "b/1", "b/2", "c"]


def test_listing_other_delimiter_and_url_encoding(proxy: ProxyServer, s3, bucket) -> None:
    for key in ("2024-01-a", "2024-01-b", "2024-02-a", "plain key+1"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    resp = s3.list_objects_v2(Bucket=bucket, Delimiter="-", Prefix="2024-")
    assert [p["Prefix"] for p in resp["CommonPrefixes"]] == ["2024-01-", "2024-02-"]
    raw = httpx.get(f"{proxy.endpoint}/{bucket}?list-type=2&encoding-type=url&prefix=plain")
    assert "<Key>plain%20key%2B1</Key>" in raw.text
    assert "<EncodingType>url</EncodingType>" in raw.text
    capped = httpx.get(f"{proxy.endpoint}/{bucket}?list-type=2&max-keys=5000")
    assert "<MaxKeys>1000</MaxKeys>" in capped.text
    bad = httpx.get(f"{proxy.endpoint}/{bucket}?list-type=2&max-keys=-1")
    assert bad.status_code == 400


def test_path_traversal_stays_inside_the_bucket(configured: ProxyServer) -> None:
    s3 = s3_client(configured.endpoint)
    s3.create_bucket(Bucket="inside")
    s3.create_bucket(Bucket="victim")
    s3.put_object(Bucket="victim", Key="secret", Body=b"secret")
    for key in ("../victim/secret", "%2e%2e/victim/secret", "..%2Fvictim%2Fsecret"):
        status, body = raw_request(configured.endpoint, "GET", f"/inside/{key}")
        assert status == 404, key
        assert b"<Code>NoSuchKey</Code>" in body
    status, _ = raw_request(configured.endpoint, "PUT", "/inside/../victim/secret", b"new")
    assert status == 200  # stored as the key "../victim/secret" inside "inside"
    assert s3.get_object(Bucket="victim", Key="secret")["Body"].read() == b"secret"
    assert s3.get_object(Bucket="inside", Key="../victim/secret")["Body"].read() == b"new"
