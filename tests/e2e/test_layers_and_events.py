"""The wrap_backend and make_event_sink hooks, through a running proxy."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import s3_client, start_proxy, stop_proxy

ROOT = Path(__file__).resolve().parents[2]


def test_layer_and_events(tmp_path: Path) -> None:
    events_file = tmp_path / "events.jsonl"
    server = start_proxy(
        tmp_path,
        "local",
        env={
            "S3PROXY_PLUGINS": "tests.plugin_samples.layers",
            "PYTHONPATH": str(ROOT),
            "EVENTS_FILE": str(events_file),
        },
    )
    try:
        s3 = s3_client(server.endpoint)
        s3.create_bucket(Bucket="layered")
        s3.put_object(Bucket="layered", Key="dir/a b.txt", Body=b"hello layers")
        # The client sees its own bytes; the backend holds the transformed ones.
        assert s3.get_object(Bucket="layered", Key="dir/a b.txt")["Body"].read() == b"hello layers"
        got = s3.get_object(Bucket="layered", Key="dir/a b.txt", Range="bytes=6-11")
        assert got["Body"].read() == b"layers"
        assert server.data_dir is not None
        stored = b"".join(p.read_bytes() for p in (server.data_dir / "layered").rglob("*!o"))
        assert b"HELLO LAYERS" in stored and b"hello layers" not in stored

        s3.copy_object(Bucket="layered", Key="copy", CopySource="layered/dir/a b.txt")
        upload = s3.create_multipart_upload(Bucket="layered", Key="mpu")
        part = s3.upload_part(
            Bucket="layered", Key="mpu", UploadId=upload["UploadId"], PartNumber=1, Body=b"p"
        )
        s3.complete_multipart_upload(
            Bucket="layered",
            Key="mpu",
            UploadId=upload["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        )
        s3.delete_object(Bucket="layered", Key="copy")
        s3.delete_objects(Bucket="layered", Delete={"Objects": [{"Key": "mpu"}]})
    finally:
        stop_proxy(server)
    records = [json.loads(line)["Records"][0] for line in events_file.read_text().splitlines()]
    assert [(r["eventName"], r["s3"]["object"]["key"]) for r in records] == [
        ("ObjectCreated:Put", "dir/a+b.txt"),
        ("ObjectCreated:Copy", "copy"),
        ("ObjectCreated:CompleteMultipartUpload", "mpu"),
        ("ObjectRemoved:Delete", "copy"),
        ("ObjectRemoved:Delete", "mpu"),
    ]
    put = records[0]
    assert put["eventSource"] == "aws:s3"
    assert put["s3"]["bucket"]["name"] == "layered"
    assert put["s3"]["bucket"]["arn"] == "arn:aws:s3:::layered"
    assert put["s3"]["object"]["size"] == len(b"hello layers")
    assert put["responseElements"]["x-amz-request-id"]
    assert put["requestParameters"]["sourceIPAddress"] == "127.0.0.1"
    assert records[2]["s3"]["object"]["eTag"].endswith("-1")
