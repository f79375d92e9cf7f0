"""Upload state lives in the backend: proxies sharing a data directory share uploads."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from tests.conftest import ProxyServer, s3_client, start_proxy, stop_proxy
from tests.e2e.test_multipart import MIN_PART, multipart_etag


def _proxy(tmp: Path, name: str, data: Path) -> ProxyServer:
    (tmp / name).mkdir(exist_ok=True)
    return start_proxy(
        tmp / name,
        "local",
        env={
            "S3PROXY_BACKENDS__LOCAL__PATH": str(data),
            "S3PROXY_MULTIPART__MIN_PART_SIZE": str(MIN_PART),
        },
    )


def test_upload_moves_between_proxies_and_survives_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "shared-data"
    first = _proxy(tmp_path, "a", data)
    second = _proxy(tmp_path, "b", data)
    try:
        a, b = s3_client(first.endpoint), s3_client(second.endpoint)
        bucket = f"rep-{uuid.uuid4().hex[:10]}"
        a.create_bucket(Bucket=bucket)
        key = "shared/object.bin"
        upload_id = a.create_multipart_upload(Bucket=bucket, Key=key, Metadata={"from": "a"})[
            "UploadId"
        ]
        # Both proxies see the upload at once.
        for client in (a, b):
            uploads = client.list_multipart_uploads(Bucket=bucket)["Uploads"]
            assert [u["UploadId"] for u in uploads] == [upload_id]

        parts = [os.urandom(MIN_PART + i) for i in range(5)]
        done = []
        for number, chunk in enumerate(parts, start=1):
            client = a if number % 2 else b
            if number == 3:
                # Restart the first proxy in the middle of the upload.
                stop_proxy(first)
                first = _proxy(tmp_path, "a2", data)
                a = s3_client(first.endpoint)
                client = a
            resp = client.upload_part(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=chunk
            )
            done.append({"PartNumber": number, "ETag": resp["ETag"]})

        for client in (a, b):
            listed = client.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)["Parts"]
            assert [p["ETag"] for p in listed] == [p["ETag"] for p in done]

        result = b.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
        )
        assert result["ETag"] == multipart_etag(*parts)
        got = a.get_object(Bucket=bucket, Key=key)
        assert got["Body"].read() == b"".join(parts)
        assert got["Metadata"] == {"from": "a"}
        for client in (a, b):
            assert "Uploads" not in client.list_multipart_uploads(Bucket=bucket)
    finally:
        stop_proxy(first)
        stop_proxy(second)
