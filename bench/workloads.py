"""One measurement of one workload against one endpoint (bench/run.py repeats them).

Small requests go through wrk; large bodies, multipart uploads and listings through the
blocking client in ``rawhttp``. Every request here is unsigned: SeaweedFS without
identities, moto, and s3proxy in development mode (no credentials, loopback) accept it.
"""

from __future__ import annotations

import http.client
import re
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from bench import rawhttp, wrk
from bench.servers import Endpoint

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
_TOKEN = re.compile(rb"<NextContinuationToken>([^<]*)</NextContinuationToken>")
_UPLOAD_ID = re.compile(rb"<UploadId>([^<]+)</UploadId>")


@dataclass
class Transfer:
    """One large-body request: its size, duration and the client's CPU time."""

    size: int
    seconds: float
    client_cpu: float

    @property
    def mb_per_s(self) -> float:
        return self.size / 1e6 / self.seconds if self.seconds else 0.0


def key_path(ep: Endpoint, key: str) -> str:
    return f"/{ep.bucket}/{urllib.parse.quote(key)}"


def put_object(ep: Endpoint, key: str, size: int) -> Transfer:
    resp = rawhttp.request(
        ep.host, ep.port, "PUT", key_path(ep, key), headers=ep.headers, body_size=size
    )
    rawhttp.expect(resp, 200, what=f"{ep.name} PUT {key}")
    return Transfer(size, resp.seconds, resp.cpu)


def put_bytes(ep: Endpoint, key: str, data: bytes) -> str:
    """PUT a small object; its ETag (quoted, as sent back)."""
    resp = rawhttp.request(
        ep.host, ep.port, "PUT", key_path(ep, key), headers=ep.headers, body=data
    )
    rawhttp.expect(resp, 200, what=f"{ep.name} PUT {key}")
    return resp.headers.get("etag", "")


def get_object(ep: Endpoint, key: str, expected: int) -> Transfer:
    resp = rawhttp.request(
        ep.host, ep.port, "GET", key_path(ep, key), headers=ep.headers, keep_body=False
    )
    rawhttp.expect(resp, 200, what=f"{ep.name} GET {key}")
    if resp.received != expected:
        raise RuntimeError(f"{ep.name} GET {key}: {resp.received} bytes, expected {expected}")
    return Transfer(expected, resp.seconds, resp.cpu)


def delete_object(ep: Endpoint, key: str) -> None:
    resp = rawhttp.request(ep.host, ep.port, "DELETE", key_path(ep, key), headers=ep.headers)
    rawhttp.expect(resp, 204, 200, 404, what=f"{ep.name} DELETE {key}")


def small_get(ep: Endpoint, key: str, connections: int, seconds: float) -> wrk.WrkResult:
    args = ["GET", *_header_args(ep.headers)]
    result = wrk.run(
        ep.url + key_path(ep, key), "fixed", args, connections=connections, seconds=seconds
    )
    _check_wrk(ep, "GET", result)
    return result


def small_put(
    ep: Endpoint, prefix: str, size: int, connections: int, seconds: float, keys: int = 1000
) -> wrk.WrkResult:
    url = ep.url + key_path(ep, prefix)
    args = [str(size), str(keys), key_path(ep, prefix), *_header_args(ep.headers)]
    result = wrk.run(url, "put", args, connections=connections, seconds=seconds)
    _check_wrk(ep, "PUT", result)
    return result


def rejected(
    ep: Endpoint, key: str, headers: dict[str, str], connections: int, seconds: float
) -> wrk.WrkResult:
    """GETs that the server refuses (4xx) or answers without a body (304)."""
    args = ["GET", *_header_args({**ep.headers, **headers})]
    return wrk.run(
        ep.url + key_path(ep, key), "fixed", args, connections=connections, seconds=seconds
    )


def _header_args(headers: dict[str, str]) -> list[str]:
    return [f"{k}: {v}" for k, v in headers.items()]


def _check_wrk(ep: Endpoint, what: str, result: wrk.WrkResult) -> None:
    if result.requests == 0 or result.status_errors or result.socket_errors:
        raise RuntimeError(
            f"{ep.name} {what}: {result.requests} requests, {result.status_errors} error "
            f"statuses, {result.socket_errors} socket errors"
        )


def bad_signature_headers(access_key: str) -> dict[str, str]:
    """A SigV4 header that names a real key and carries a wrong signature."""
    now = datetime.now(UTC)
    scope = f"{access_key}/{now:%Y%m%d}/us-east-1/s3/aws4_request"
    return {
        "x-amz-date": f"{now:%Y%m%dT%H%M%SZ}",
        "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential={scope}, "
            f"SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={'0' * 64}"
        ),
    }


def multipart_upload(ep: Endpoint, key: str, size: int, part_size: int, concurrency: int) -> float:
    """Create, upload the parts (``concurrency`` at a time), complete; wall seconds."""
    started = time.perf_counter()
    path = key_path(ep, key)
    resp = rawhttp.request(
        ep.host, ep.port, "POST", path + "?uploads", headers=ep.headers, body=b""
    )
    rawhttp.expect(resp, 200, what=f"{ep.name} CreateMultipartUpload")
    found = _UPLOAD_ID.search(resp.body)
    if found is None:
        raise RuntimeError(f"{ep.name}: no UploadId in {resp.body[:300]!r}")
    upload_id = urllib.parse.quote(found.group(1).decode(), safe="")
    sizes = [min(part_size, size - start) for start in range(0, size, part_size)]

    def part(number: int) -> str:
        query = f"?partNumber={number}&uploadId={upload_id}"
        r = rawhttp.request(
            ep.host, ep.port, "PUT", path + query, headers=ep.headers, body_size=sizes[number - 1]
        )
        rawhttp.expect(r, 200, what=f"{ep.name} UploadPart {number}")
        return r.headers["etag"]

    with ThreadPoolExecutor(concurrency) as pool:
        etags = list(pool.map(part, range(1, len(sizes) + 1)))
    parts = "".join(
        f"<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
        for n, etag in enumerate(etags, start=1)
    )
    doc = f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()
    resp = rawhttp.request(
        ep.host, ep.port, "POST", f"{path}?uploadId={upload_id}", headers=ep.headers, body=doc
    )
    rawhttp.expect(resp, 200, what=f"{ep.name} CompleteMultipartUpload")
    if b"CompleteMultipartUploadResult" not in resp.body:
        raise RuntimeError(f"{ep.name} CompleteMultipartUpload: {resp.body[:300]!r}")
    return time.perf_counter() - started


def populate(ep: Endpoint, prefix: str, count: int, size: int = 16, threads: int = 16) -> None:
    """PUT ``count`` small objects ``<prefix><n:06>`` over keep-alive connections."""
    body = b"x" * size

    def worker(numbers: range) -> None:
        conn = http.client.HTTPConnection(ep.host, ep.port, timeout=60)
        try:
            for n in numbers:
                conn.request("PUT", key_path(ep, f"{prefix}{n:06d}"), body, ep.headers)
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"{ep.name} populate: HTTP {resp.status}")
        finally:
            conn.close()

    step = -(-count // threads)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, [range(i, min(i + step, count)) for i in range(0, count, step)]))


def list_all(ep: Endpoint, prefix: str) -> tuple[float, int]:
    """ListObjectsV2 of every key under ``prefix``, 1000 a page: (seconds, keys)."""
    started = time.perf_counter()
    keys = 0
    token: str | None = None
    base = f"/{ep.bucket}?list-type=2&max-keys=1000&prefix={urllib.parse.quote(prefix, safe='')}"
    while True:
        path = base if token is None else f"{base}&continuation-token={token}"
        resp = rawhttp.request(ep.host, ep.port, "GET", path, headers=ep.headers)
        rawhttp.expect(resp, 200, what=f"{ep.name} ListObjectsV2")
        keys += resp.body.count(b"<Key>")
        found = _TOKEN.search(resp.body)
        if found is None or b"<IsTruncated>true</IsTruncated>" not in resp.body:
            break
        token = urllib.parse.quote(found.group(1).decode(), safe="")
    return time.perf_counter() - started, keys
