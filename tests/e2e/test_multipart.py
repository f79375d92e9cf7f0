"""Multipart uploads through a real proxy with boto3 and the AWS CLI, on both lanes."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from tests.conftest import ProxyServer, s3_client, start_proxy, stop_proxy

KiB = 1024
MiB = 1024 * KiB
# Parts other than the last must be at least this big on these proxies.
MIN_PART = 64 * KiB
ROOT = Path(__file__).resolve().parents[2]
AWS = str(Path(sys.executable).with_name("aws"))


@pytest.fixture(scope="module", params=["local", "memory"])
def mp(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    server = start_proxy(
        tmp_path_factory.mktemp(f"mp-{request.param}"),
        request.param,
        env={"S3PROXY_MULTIPART__MIN_PART_SIZE": str(MIN_PART)},
    )
    yield server
    stop_proxy(server)


@pytest.fixture
def s3(mp: ProxyServer):  # type: ignore[no-untyped-def]
    return s3_client(mp.endpoint)


@pytest.fixture
def bucket(s3) -> str:  # type: ignore[no-untyped-def]
    name = f"mp-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    resp = exc.value.response
    return resp["Error"]["Code"], resp["ResponseMetadata"]["HTTPStatusCode"]


def md5(data: bytes) -> bytes:
    return hashlib.md5(data).digest()


def multipart_etag(*parts: bytes) -> str:
    return f'"{hashlib.md5(b"".join(md5(p) for p in parts)).hexdigest()}-{len(parts)}"'


def upload_parts(s3, bucket: str, key: str, upload_id: str, parts: list[bytes]) -> list[dict]:  # type: ignore[no-untyped-def]
    done = []
    for number, data in enumerate(parts, start=1):
        resp = s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
        )
        assert resp["ETag"] == f'"{md5(data).hex()}"'
        done.append({"PartNumber": number, "ETag": resp["ETag"]})
    return done


def staged_files(server: ProxyServer, bucket: str) -> list[Path]:
    """Files of the bucket's private multipart area (local lane only)."""
    assert server.data_dir is not None
    return [p for p in (server.data_dir / bucket).rglob("*") if p.is_file() and "mpu" in str(p)]


# -- the happy path ------------------------------------------------------------------------


def test_low_level_round_trip(mp: ProxyServer, s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    key = "dir/big object.bin"
    created = s3.create_multipart_upload(
        Bucket=bucket,
        Key=key,
        ContentType="text/csv",
        CacheControl="max-age=60",
        Metadata={"color": "blue"},
    )
    upload_id = created["UploadId"]
    assert (created["Bucket"], created["Key"]) == (bucket, key)
    parts = [os.urandom(MIN_PART), os.urandom(MIN_PART + 1), b"tail"]
    done = upload_parts(s3, bucket, key, upload_id, parts)

    listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)
    assert [(p["PartNumber"], p["Size"]) for p in listed["Parts"]] == [
        (1, MIN_PART),
        (2, MIN_PART + 1),
        (3, 4),
    ]
    assert listed["IsTruncated"] is False
    uploads = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [(key, upload_id)]
    # Nothing staged shows up as an object.
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0

    result = s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
    )
    assert result["ETag"] == multipart_etag(*parts)
    assert (result["Bucket"], result["Key"]) == (bucket, key)
    assert result["Location"].endswith(f"/{bucket}/dir/big%20object.bin")

    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ETag"] == multipart_etag(*parts)
    assert head["ContentLength"] == sum(map(len, parts))
    assert (head["ContentType"], head["CacheControl"]) == ("text/csv", "max-age=60")
    assert head["Metadata"] == {"color": "blue"}
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"".join(parts)
    listing = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["ETag"]) for o in listing] == [(key, multipart_etag(*parts))]

    second = s3.get_object(Bucket=bucket, Key=key, PartNumber=2)
    assert second["Body"].read() == parts[1]
    assert second["PartsCount"] == 3
    assert second["ContentRange"] == f"bytes {MIN_PART}-{2 * MIN_PART}/{sum(map(len, parts))}"
    assert s3.head_object(Bucket=bucket, Key=key, PartNumber=3)["ContentLength"] == 4

    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)
    if mp.data_dir is not None:
        assert staged_files(mp, bucket) == []


def test_reupload_replaces_and_complete_a_subset(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=1, Body=b"x" * MIN_PART)
    first = b"y" * MIN_PART
    etag1 = s3.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=1, Body=first)
    s3.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=2, Body=b"skipped")
    etag5 = s3.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=5, Body=b"end")
    parts = s3.list_parts(Bucket=bucket, Key="k", UploadId=upload_id)["Parts"]
    assert parts[0]["ETag"] == etag1["ETag"]
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="k",
        UploadId=upload_id,
        MultipartUpload={
            "Parts": [
                {"PartNumber": 1, "ETag": etag1["ETag"]},
                {"PartNumber": 5, "ETag": etag5["ETag"]},
            ]
        },
    )
    obj = s3.get_object(Bucket=bucket, Key="k")
    assert obj["Body"].read() == first + b"end"
    assert obj["ETag"] == multipart_etag(first, b"end")


def test_upload_file_with_small_threshold(s3, bucket: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = os.urandom(12 * MiB + 3)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    s3.upload_file(str(src), bucket, "uploaded.bin", Config=config)
    head = s3.head_object(Bucket=bucket, Key="uploaded.bin", ChecksumMode="ENABLED")
    chunks = [data[: 5 * MiB], data[5 * MiB : 10 * MiB], data[10 * MiB :]]
    assert head["ETag"] == multipart_etag(*chunks)
    # boto3 asks for CRC32 by default: a composite checksum over the part CRCs.
    part_crcs = b"".join(zlib.crc32(c).to_bytes(4, "big") for c in chunks)
    composite = base64.b64encode(zlib.crc32(part_crcs).to_bytes(4, "big")).decode()
    assert head["ChecksumCRC32"] == f"{composite}-3"
    assert head["ChecksumType"] == "COMPOSITE"
    dst = tmp_path / "dst.bin"
    s3.download_file(bucket, "uploaded.bin", str(dst), Config=config)
    assert dst.read_bytes() == data


def test_full_object_crc32(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    upload_id = s3.create_multipart_upload(
        Bucket=bucket, Key="k", ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT"
    )["UploadId"]
    parts = [os.urandom(MIN_PART), os.urandom(1000)]
    done = []
    for number, data in enumerate(parts, start=1):
        resp = s3.upload_part(
            Bucket=bucket,
            Key="k",
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
            ChecksumAlgorithm="CRC32",
        )
        assert (
            resp["ChecksumCRC32"] == base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
        )
        done.append(
            {"PartNumber": number, "ETag": resp["ETag"], "ChecksumCRC32": resp["ChecksumCRC32"]}
        )
    whole = base64.b64encode(zlib.crc32(b"".join(parts)).to_bytes(4, "big")).decode()
    result = s3.complete_multipart_upload(
        Bucket=bucket, Key="k", UploadId=upload_id, MultipartUpload={"Parts": done}
    )
    assert (result["ChecksumCRC32"], result["ChecksumType"]) == (whole, "FULL_OBJECT")
    head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == whole


def test_sha256_composite_and_listings_report_it(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    created = s3.create_multipart_upload(Bucket=bucket, Key="k", ChecksumAlgorithm="SHA256")
    upload_id = created["UploadId"]
    assert created["ChecksumAlgorithm"] == "SHA256"
    data = os.urandom(2000)
    resp = s3.upload_part(
        Bucket=bucket,
        Key="k",
        UploadId=upload_id,
        PartNumber=1,
        Body=data,
        ChecksumAlgorithm="SHA256",
    )
    digest = hashlib.sha256(data).digest()
    assert resp["ChecksumSHA256"] == base64.b64encode(digest).decode()
    listed = s3.list_parts(Bucket=bucket, Key="k", UploadId=upload_id)
    assert listed["ChecksumAlgorithm"] == "SHA256"
    assert listed["Parts"][0]["ChecksumSHA256"] == resp["ChecksumSHA256"]
    upload = s3.list_multipart_uploads(Bucket=bucket)["Uploads"][0]
    assert upload["ChecksumAlgorithm"] == "SHA256"
    # A part checksum the Complete request disputes is an InvalidPart.
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="k",
            UploadId=upload_id,
            MultipartUpload={
                "Parts": [
                    {
                        "PartNumber": 1,
                        "ETag": resp["ETag"],
                        "ChecksumSHA256": base64.b64encode(b"0" * 32).decode(),
                    }
                ]
            },
        )
    assert error_of(exc) == ("InvalidPart", 400)
    result = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="k",
        UploadId=upload_id,
        MultipartUpload={
            "Parts": [
                {"PartNumber": 1, "ETag": resp["ETag"], "ChecksumSHA256": resp["ChecksumSHA256"]}
            ]
        },
    )
    expected = base64.b64encode(hashlib.sha256(digest).digest()).decode() + "-1"
    assert result["ChecksumSHA256"] == expected


# -- copy ----------------------------------------------------------------------------------


def test_upload_part_copy_with_ranges(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    source = os.urandom(3 * MIN_PART)
    s3.put_object(Bucket=bucket, Key="src/é x", Body=source)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    ranges = [(0, MIN_PART + 9), (MIN_PART + 10, 3 * MIN_PART - 1)]
    done = []
    for number, (first, last) in enumerate(ranges, start=1):
        resp = s3.upload_part_copy(
            Bucket=bucket,
            Key="dst",
            UploadId=upload_id,
            PartNumber=number,
            CopySource={"Bucket": bucket, "Key": "src/é x"},
            CopySourceRange=f"bytes={first}-{last}",
        )
        assert resp["CopyPartResult"]["ETag"] == f'"{md5(source[first : last + 1]).hex()}"'
        done.append({"PartNumber": number, "ETag": resp["CopyPartResult"]["ETag"]})
    # Without a range the whole source is the part.
    whole = s3.upload_part_copy(
        Bucket=bucket,
        Key="dst",
        UploadId=upload_id,
        PartNumber=3,
        CopySource=f"{bucket}/src/é x",  # botocore encodes it
    )
    assert whole["CopyPartResult"]["ETag"] == f'"{md5(source).hex()}"'
    s3.complete_multipart_upload(
        Bucket=bucket, Key="dst", UploadId=upload_id, MultipartUpload={"Parts": done}
    )
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == source


def test_upload_part_copy_errors(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="src", Body=b"0123456789")
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]

    def copy(**kw: object) -> tuple[str, int]:
        args = {
            "Bucket": bucket,
            "Key": "dst",
            "UploadId": upload_id,
            "PartNumber": 1,
            "CopySource": {"Bucket": bucket, "Key": "src"},
            **kw,
        }
        with pytest.raises(ClientError) as exc:
            s3.upload_part_copy(**args)
        return error_of(exc)

    assert copy(CopySourceRange="bytes=5-10") == ("InvalidArgument", 400)
    assert copy(CopySourceRange="bytes=5-") == ("InvalidArgument", 400)
    assert copy(CopySource={"Bucket": bucket, "Key": "missing"}) == ("NoSuchKey", 404)
    assert copy(CopySourceIfMatch='"nope"') == ("PreconditionFailed", 412)
    assert copy(UploadId="0" * 46) == ("NoSuchUpload", 404)
    assert "Parts" not in s3.list_parts(Bucket=bucket, Key="dst", UploadId=upload_id)


# -- errors --------------------------------------------------------------------------------


def test_error_codes(mp: ProxyServer, s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    big, small = b"b" * MIN_PART, b"s" * (MIN_PART - 1)
    e1 = s3.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=1, Body=small)
    e2 = s3.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=2, Body=big)

    def complete(parts: list[dict], upload: str = upload_id, key: str = "k") -> tuple[str, int]:  # type: ignore[type-arg]
        with pytest.raises(ClientError) as exc:
            s3.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
            )
        return error_of(exc)

    p1 = {"PartNumber": 1, "ETag": e1["ETag"]}
    p2 = {"PartNumber": 2, "ETag": e2["ETag"]}
    assert complete([p2, p1]) == ("InvalidPartOrder", 400)
    assert complete([p1, {"PartNumber": 2, "ETag": e1["ETag"]}]) == ("InvalidPart", 400)
    assert complete([p1, {"PartNumber": 3, "ETag": e2["ETag"]}]) == ("InvalidPart", 400)
    assert complete([p1, p2]) == ("EntityTooSmall", 400)
    assert complete([p1], upload="f" * 46) == ("NoSuchUpload", 404)
    assert complete([p1], key="other-key") == ("NoSuchUpload", 404)

    url = f"{mp.endpoint}/{bucket}/k?uploadId={upload_id}"
    for body in (b"<not xml", b"<CompleteMultipartUpload/>", b"<Other><Part/></Other>"):
        resp = httpx.post(url, content=body)
        assert (resp.status_code, "<Code>MalformedXML</Code>" in resp.text) == (400, True)

    for number in (0, 10001):
        resp = httpx.put(f"{url}&partNumber={number}", content=b"x")
        assert resp.status_code == 400
        assert "<Code>InvalidArgument</Code>" in resp.text

    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket=bucket, Key="k", UploadId="nope", PartNumber=1, Body=b"x")
    assert error_of(exc) == ("NoSuchUpload", 404)
    assert exc.value.response["Error"]["UploadId"] == "nope"
    for call in (s3.list_parts, s3.abort_multipart_upload):
        with pytest.raises(ClientError) as exc:
            call(Bucket=bucket, Key="k", UploadId="0" * 46)
        assert error_of(exc) == ("NoSuchUpload", 404)
    with pytest.raises(ClientError) as exc:
        s3.create_multipart_upload(Bucket=f"nope-{uuid.uuid4().hex[:8]}", Key="k")
    assert error_of(exc) == ("NoSuchBucket", 404)
    with pytest.raises(ClientError) as exc:
        s3.upload_part(
            Bucket=bucket,
            Key="k",
            UploadId=upload_id,
            PartNumber=3,
            Body=b"x",
            ChecksumCRC32="AAAAAA==",
        )
    assert error_of(exc) == ("BadDigest", 400)

    # None of the failures touched the upload: it still completes.
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="k",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": e2["ETag"]}]},
    )
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == big


def test_abort_leaves_nothing(mp: ProxyServer, s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    upload_parts(s3, bucket, "k", upload_id, [b"a" * MIN_PART, b"b"])
    if mp.data_dir is not None:
        assert len(staged_files(mp, bucket)) == 3
    resp = s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=upload_id)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket=bucket, Key="k", UploadId=upload_id)
    assert error_of(exc) == ("NoSuchUpload", 404)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="k")
    if mp.data_dir is not None:
        assert staged_files(mp, bucket) == []


def test_delete_bucket_with_upload_in_progress(s3) -> None:  # type: ignore[no-untyped-def]
    name = f"mp-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    upload_id = s3.create_multipart_upload(Bucket=name, Key="k")["UploadId"]
    s3.upload_part(Bucket=name, Key="k", UploadId=upload_id, PartNumber=1, Body=b"x")
    s3.put_object(Bucket=name, Key="obj", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=name)
    assert error_of(exc) == ("BucketNotEmpty", 409)
    s3.delete_object(Bucket=name, Key="obj")
    # Only an in-progress upload left: like an S3 general purpose bucket, it goes too.
    s3.delete_bucket(Bucket=name)
    s3.create_bucket(Bucket=name)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=name)
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket=name, Key="k", UploadId=upload_id)
    assert error_of(exc) == ("NoSuchUpload", 404)


# -- listings ------------------------------------------------------------------------------


def test_list_parts_pagination(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    for number in (1, 2, 3, 7, 12):
        s3.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=number, Body=b"p")
    page = s3.list_parts(Bucket=bucket, Key="k", UploadId=upload_id, MaxParts=2)
    assert [p["PartNumber"] for p in page["Parts"]] == [1, 2]
    assert (page["IsTruncated"], page["NextPartNumberMarker"], page["MaxParts"]) == (True, 2, 2)
    page = s3.list_parts(Bucket=bucket, Key="k", UploadId=upload_id, MaxParts=2, PartNumberMarker=3)
    assert [p["PartNumber"] for p in page["Parts"]] == [7, 12]
    assert page["IsTruncated"] is False
    paginator = s3.get_paginator("list_parts")
    pages = paginator.paginate(
        Bucket=bucket, Key="k", UploadId=upload_id, PaginationConfig={"PageSize": 2}
    )
    assert [p["PartNumber"] for page in pages for p in page["Parts"]] == [1, 2, 3, 7, 12]


def test_list_multipart_uploads(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    keys = ["a/1", "a/2", "b", "b", "c/d/e", "é"]
    ids = [s3.create_multipart_upload(Bucket=bucket, Key=k)["UploadId"] for k in keys]
    everything = s3.list_multipart_uploads(Bucket=bucket)
    assert [(u["Key"], u["UploadId"]) for u in everything["Uploads"]] == list(
        zip(keys, ids, strict=True)
    )

    top = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
    assert [u["Key"] for u in top["Uploads"]] == ["b", "b", "é"]
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["a/", "c/"]
    inner = s3.list_multipart_uploads(Bucket=bucket, Prefix="c/", Delimiter="/")
    assert [p["Prefix"] for p in inner["CommonPrefixes"]] == ["c/d/"]

    page = s3.list_multipart_uploads(Bucket=bucket, MaxUploads=3)
    assert page["IsTruncated"] is True
    assert (page["NextKeyMarker"], page["NextUploadIdMarker"]) == ("b", ids[2])
    rest = s3.list_multipart_uploads(
        Bucket=bucket, KeyMarker="b", UploadIdMarker=ids[2], MaxUploads=10
    )
    assert [u["UploadId"] for u in rest["Uploads"]] == ids[3:]
    after_b = s3.list_multipart_uploads(Bucket=bucket, KeyMarker="b")
    assert [u["Key"] for u in after_b["Uploads"]] == ["c/d/e", "é"]

    paginator = s3.get_paginator("list_multipart_uploads")
    pages = list(paginator.paginate(Bucket=bucket, Delimiter="/", PaginationConfig={"PageSize": 1}))
    seen = [u["Key"] for page in pages for u in page.get("Uploads", [])] + [
        p["Prefix"] for page in pages for p in page.get("CommonPrefixes", [])
    ]
    assert sorted(seen) == sorted(["a/", "b", "b", "c/", "é"])

    encoded = s3.list_multipart_uploads(Bucket=bucket, Prefix="é", EncodingType="url")
    assert encoded["Uploads"][0]["Key"] == "%C3%A9"
    assert encoded["Prefix"] == "%C3%A9"


# -- clients -------------------------------------------------------------------------------


def test_aws_cli_cp_200_mib(mp: ProxyServer, tmp_path: Path, bucket: str) -> None:
    config = tmp_path / "aws-config"
    config.write_text(
        "[default]\nregion = us-east-1\ns3 =\n"
        "    multipart_threshold = 8MB\n    multipart_chunksize = 8MB\n"
    )
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "test-access-key",
        "AWS_SECRET_ACCESS_KEY": "test-secret-key",
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }

    def aws(*args: str) -> str:
        result = subprocess.run(
            [AWS, "--endpoint-url", mp.endpoint, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    src = tmp_path / "big.bin"
    digest = hashlib.md5()
    chunk_md5s = []
    with src.open("wb") as fh:
        for _ in range(25):
            block = os.urandom(8 * MiB)
            digest.update(block)
            chunk_md5s.append(md5(block))
            fh.write(block)
    aws("s3", "cp", str(src), f"s3://{bucket}/big.bin")
    head = s3_client(mp.endpoint).head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == 200 * MiB
    assert head["ETag"] == f'"{hashlib.md5(b"".join(chunk_md5s)).hexdigest()}-25"'
    src.unlink()  # keep the disk footprint down
    dst = tmp_path / "back.bin"
    aws("s3", "cp", f"s3://{bucket}/big.bin", str(dst))
    got = hashlib.md5()
    with dst.open("rb") as fh:
        while block := fh.read(8 * MiB):
            got.update(block)
    assert got.hexdigest() == digest.hexdigest()
    aws("s3", "rm", f"s3://{bucket}/big.bin")


# -- Complete keep-alive --------------------------------------------------------------------


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    server = start_proxy(
        tmp_path_factory.mktemp("slow"),
        "slowparts",
        env={
            "S3PROXY_PLUGINS": "tests.plugin_samples.slow_parts",
            "PYTHONPATH": str(ROOT),
            "S3PROXY_MULTIPART__MIN_PART_SIZE": "1",
            "S3PROXY_MULTIPART__KEEPALIVE": "0.1",
        },
    )
    s3 = s3_client(server.endpoint)
    for name in ("slow", "broken"):
        s3.create_bucket(Bucket=name)
    yield server
    stop_proxy(server)


def _three_parts(s3, bucket: str) -> tuple[str, bytes]:  # type: ignore[no-untyped-def]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    parts = [b"one", b"two", b"three"]
    done = upload_parts(s3, bucket, "k", upload_id, parts)
    body = "".join(
        f"<Part><PartNumber>{p['PartNumber']}</PartNumber><ETag>{p['ETag']}</ETag></Part>"
        for p in done
    )
    return upload_id, f"<CompleteMultipartUpload>{body}</CompleteMultipartUpload>".encode()


def test_slow_complete_streams_whitespace_then_result(slow: ProxyServer) -> None:
    s3 = s3_client(slow.endpoint)
    upload_id, xml_body = _three_parts(s3, "slow")
    resp = httpx.post(f"{slow.endpoint}/slow/k?uploadId={upload_id}", content=xml_body, timeout=30)
    assert resp.status_code == 200
    declaration = b'<?xml version="1.0" encoding="UTF-8"?>\n'
    assert resp.content.startswith(declaration + b" ")
    rest = resp.content[len(declaration) :].lstrip(b" ")
    assert rest.startswith(b"<CompleteMultipartUploadResult")
    assert multipart_etag(b"one", b"two", b"three").strip('"').encode() in rest
    assert s3.get_object(Bucket="slow", Key="k")["Body"].read() == b"onetwothree"

    # boto3 parses the padded response like any other.
    upload_id, _ = _three_parts(s3, "slow")
    parts = s3.list_parts(Bucket="slow", Key="k", UploadId=upload_id)["Parts"]
    result = s3.complete_multipart_upload(
        Bucket="slow",
        Key="k",
        UploadId=upload_id,
        MultipartUpload={
            "Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in parts]
        },
    )
    assert result["ETag"] == multipart_etag(b"one", b"two", b"three")


def test_failure_after_200_is_an_error_document(slow: ProxyServer) -> None:
    s3 = s3_client(slow.endpoint)
    upload_id, xml_body = _three_parts(s3, "broken")
    resp = httpx.post(
        f"{slow.endpoint}/broken/k?uploadId={upload_id}", content=xml_body, timeout=30
    )
    assert resp.status_code == 200
    assert b"<Error><Code>InternalError</Code>" in resp.content
    assert b"backend read failed" not in resp.content
    # Nothing partial became visible and the upload is still there to retry or abort.
    with pytest.raises(ClientError):
        s3.head_object(Bucket="broken", Key="k")
    assert len(s3.list_parts(Bucket="broken", Key="k", UploadId=upload_id)["Parts"]) == 3
    # botocore recognises the error inside the 200.
    parts = s3.list_parts(Bucket="broken", Key="k", UploadId=upload_id)["Parts"]
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket="broken",
            Key="k",
            UploadId=upload_id,
            MultipartUpload={
                "Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in parts]
            },
        )
    assert exc.value.response["Error"]["Code"] == "InternalError"
