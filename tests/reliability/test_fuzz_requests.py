"""Bad input over the whole request surface (hypothesis), sent as raw HTTP to real proxies.

The invariants, for every request:

- an answer comes (no hang: the socket timeout is the safety net), and it is a success
  or a well-formed S3 XML error with a code and the request id; never a 500 (501
  NotImplemented names an operation the proxy does not serve);
- the worker never crashes (same process, health answers, no unhandled error logged);
- nothing is written outside the addressed bucket, whatever the key: ``..``, ``%2e%2e``,
  backslashes, NUL and overlong UTF-8 stay inside the bucket (local directory) or the
  configured prefix (cloud bucket);
- with credentials configured, no unsigned, badly signed or tampered request gets in.

Example budgets are small for CI; ``S3PROXY_FUZZ_EXAMPLES`` raises them (see
``bench/fuzz.py`` for the long run).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import os
import re
import socket
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import quote

import botocore.auth
import httpx
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ProxyServer, s3_client, start_proxy, stop_proxy
from tests.reliability.helpers import (
    CLOUD_PREFIX,
    TALLY,
    FaultyAws,
    cloud_keys,
    proxy_log_has_no_crash,
)

EXAMPLES = int(os.environ.get("S3PROXY_FUZZ_EXAMPLES", "0") or 0)
BUCKET = "fuzz"
SECRET_TEXT = b"outside-the-bucket: must never be served"
KEY_ID, SECRET = "fuzz-key", "fuzz-secret"


def budget(ci: int) -> Any:
    return settings(
        max_examples=EXAMPLES or ci,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=not EXAMPLES,  # CI: the same cases every run; long runs explore
        database=None,
    )


# -- raw HTTP ----------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def exchange(endpoint: str, raw: bytes, timeout: float = 30) -> Answer:
    """Send ``raw`` on a new connection; read one response (by its framing)."""
    host, port = endpoint.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(raw)
        data = b""
        with contextlib.suppress(ConnectionResetError):
            while b"\r\n\r\n" not in data and (chunk := sock.recv(65536)):
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            assert lines[0].startswith("HTTP/1.1 "), f"no HTTP answer: {data[:200]!r}"
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            # A tampered "Connection: close" leaves the connection open: read by length.
            length = None if raw.startswith(b"HEAD ") else headers.get("content-length")
            while (length is None or len(body) < int(length)) and (chunk := sock.recv(65536)):
                body += chunk
    return Answer(int(lines[0].split()[1]), headers, body)


def build(method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


_CONTROL_REF = re.compile(rb"&#x(?:[0-8BCEF]|1[0-9A-F]|FFF[EF]);", re.IGNORECASE)


def check(method: str, answer: Answer, *, allow_success: bool = True) -> None:
    """The invariant every answer must meet."""
    status = answer.status
    if status >= 500:
        TALLY.server_errors += status != 501
    assert status != 500 and (status < 500 or status == 501), answer
    assert answer.headers.get("x-amz-request-id"), answer
    if status < 300:
        assert allow_success, f"let in: {answer}"
    if method == "HEAD" or not answer.body:
        return
    if status >= 300 and status != 304:
        root = ET.fromstring(_CONTROL_REF.sub(b"?", answer.body))
        assert root.tag == "Error", answer
        assert root.findtext("Code"), answer
        assert root.findtext("RequestId") == answer.headers["x-amz-request-id"], answer
    elif "xml" in answer.headers.get("content-type", ""):
        # Keys may hold characters XML 1.0 cannot carry; S3 (and so the proxy) writes
        # them as character references, which a strict XML 1.0 parser refuses.
        ET.fromstring(_CONTROL_REF.sub(b"?", answer.body))


# -- strategies --------------------------------------------------------------------------------

# Printable ASCII plus a little latin-1: what can travel in a header value.
HEADER_TEXT = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"),
    max_size=60,
)
TRAVERSAL = [
    "..",
    ".",
    "%2e%2e",
    "%2E%2E",
    "%2e.",
    "%252e%252e",
    "..%2f",
    "..%2F..%2F",
    "..%5c",
    "..%5c..%5c",
    "%5c",
    "..\\..\\",
    "%00",
    "a%00b",
    "%c0%ae%c0%ae",
    "%c0%ae",
    "%e0%80%ae",
    "%c0%af",
    "%c1%9c",
    "%ff%fe",
    "",
    "%2F",
    "~",
    "etc",
    "passwd",
    "secret.txt",
    "%%!!mpu",
    "%25%25%21%21mpu",
    "%25%25%21%21bucket",
    "%%",
    "!o",
    "a!o",
    "%231",
    "%23",
    "%3F",
    "%20",
    "+",
    "%0a",
    "%0d%0a",
    "data",
]
SEGMENT = st.one_of(
    st.sampled_from(TRAVERSAL),
    st.text(max_size=12).map(lambda s: quote(s, safe="")),
    st.binary(max_size=6).map(lambda b: quote(b, safe="")),
)
KEY_PATH = st.lists(SEGMENT, min_size=1, max_size=6).map("/".join)
BUCKETS = st.sampled_from(
    [
        BUCKET,
        "fuzz-missing",
        "a",
        "UPPER",
        "..",
        "%2e%2e",
        "fuzz%2F..",
        "_s3proxy",
        "xn--x",
        "192.168.1.1",
        "fuzz.",
        "-fuzz",
        "f" * 64,
        "fu%00zz",
        "%ff",
    ]
)
PATHS = st.one_of(
    st.just("/"),
    BUCKETS.map(lambda b: f"/{b}"),
    st.tuples(BUCKETS, KEY_PATH).map(lambda t: f"/{t[0]}/{t[1]}"),
    st.tuples(st.just(BUCKET), KEY_PATH).map(lambda t: f"/{t[0]}/{t[1]}"),
)
QUERY_NAMES = st.sampled_from(
    [
        "list-type",
        "prefix",
        "delimiter",
        "max-keys",
        "continuation-token",
        "start-after",
        "encoding-type",
        "marker",
        "fetch-owner",
        "uploads",
        "uploadId",
        "partNumber",
        "max-parts",
        "part-number-marker",
        "key-marker",
        "upload-id-marker",
        "max-uploads",
        "versionId",
        "versions",
        "delete",
        "acl",
        "tagging",
        "location",
        "cors",
        "policy",
        "lifecycle",
        "attributes",
        "restore",
        "select",
        "response-content-type",
        "response-content-disposition",
        "response-expires",
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Signature",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "AWSAccessKeyId",
        "Signature",
        "Expires",
        "x-id",
    ]
)
QUERY_VALUES = st.one_of(
    st.sampled_from(
        [
            "",
            "2",
            "1",
            "0",
            "-1",
            "1000",
            "10001",
            "99999999999999999999",
            "url",
            "true",
            "abc",
            "../..",
            "%00",
            "AWS4-HMAC-SHA256",
            "x/20990101/us-east-1/s3/aws4_request",
            "fuzz-key/20250101/us-east-1/s3/aws4_request",
            "host",
            "604801",
            "0" * 64,
        ]
    ),
    st.text(max_size=40),
)
QUERIES = st.lists(
    st.tuples(st.one_of(QUERY_NAMES, st.text(max_size=10)), QUERY_VALUES), max_size=5
).map(lambda pairs: "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs))

DATES = st.one_of(
    st.sampled_from(
        [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Mon, 99 Foo 9999 99:99:99 GMT",
            "20990101T000000Z",
            "19700101T000000Z",
            "garbage",
            "",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "0",
        ]
    ),
    HEADER_TEXT,
)
RANGES = st.one_of(
    st.sampled_from(
        [
            "bytes=0-0",
            "bytes=-1",
            "bytes=5-",
            "bytes=1-0",
            "bytes=0-99999999999999999999",
            "bytes=a-b",
            "bytes=0-1,2-3",
            "items=0-1",
            "bytes=--1",
            "bytes=",
            "bytes=-0",
            "bytes= 0-1",
            "bytes=18446744073709551616-",
            "bytes=0-1 ",
        ]
    ),
    st.tuples(st.integers(-5, 2**70), st.integers(-5, 2**70)).map(lambda t: f"bytes={t[0]}-{t[1]}"),
    HEADER_TEXT,
)
SIGV4_AUTH = st.builds(
    lambda key, date, region, service, term, signed, sig: (
        f"AWS4-HMAC-SHA256 Credential={key}/{date}/{region}/{service}/{term}, "
        f"SignedHeaders={signed}, Signature={sig}"
    ),
    st.sampled_from([KEY_ID, "unknown", "", "a/b", "fuzz-key\x7e"]),
    st.sampled_from(["20250101", "2025-01-01", "", "99999999"]),
    st.sampled_from(["us-east-1", "eu-west-1", "", "../"]),
    st.sampled_from(["s3", "iam", ""]),
    st.sampled_from(["aws4_request", "", "x"]),
    st.sampled_from(["host;x-amz-date", "host", "", ";;", "HOST;X-AMZ-DATE", "x-amz-date;host"]),
    st.one_of(st.sampled_from(["0" * 64, "", "zz"]), st.text("0123456789abcdef", max_size=70)),
)
AUTHORIZATION = st.one_of(
    SIGV4_AUTH,
    st.sampled_from(
        ["AWS fuzz-key:c2lnbmF0dXJl", "AWS :", "AWS4-HMAC-SHA256", "Bearer x", "Basic Zm9vOmJhcg=="]
    ),
    HEADER_TEXT,
)
SHA256_MODES = st.sampled_from(
    [
        "UNSIGNED-PAYLOAD",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "deadbeef",
        hashlib.sha256(b"").hexdigest(),
        "",
    ]
)
HEADER_CHOICES: list[tuple[str, Any]] = [
    ("range", RANGES),
    ("if-modified-since", DATES),
    ("if-unmodified-since", DATES),
    ("if-match", st.sampled_from(['"abc"', "*", "", 'W/"x"', '"', ","])),
    ("if-none-match", st.sampled_from(['"abc"', "*", "", 'W/"x"'])),
    ("date", DATES),
    ("x-amz-date", DATES),
    ("authorization", AUTHORIZATION),
    ("x-amz-content-sha256", SHA256_MODES),
    ("x-amz-decoded-content-length", st.sampled_from(["0", "5", "-1", "x", "99999999999999"])),
    ("content-encoding", st.sampled_from(["aws-chunked", "gzip", "aws-chunked,gzip", ""])),
    ("content-md5", st.one_of(st.sampled_from(["", "x", "1B2M2Y8AsgTpgAmY7PhCfg=="]), HEADER_TEXT)),
    ("x-amz-trailer", st.sampled_from(["x-amz-checksum-crc32", "x-amz-checksum-bogus", ""])),
    ("x-amz-checksum-crc32", st.sampled_from(["AAAAAA==", "", "!!", "AAAAAAAAAAAA"])),
    ("x-amz-checksum-sha256", st.sampled_from(["", "x", base64.b64encode(b"0" * 32).decode()])),
    ("x-amz-sdk-checksum-algorithm", st.sampled_from(["CRC32", "SHA1", "MD5", "", "crc64nvme"])),
    (
        "x-amz-copy-source",
        st.one_of(
            st.sampled_from(
                [
                    "/fuzz/../../secret.txt",
                    "fuzz/%2e%2e/%2e%2e/secret.txt",
                    "/",
                    "",
                    "fuzz",
                    "fuzz/k?versionId=x",
                    "/fuzz-missing/k",
                    "%ff/x",
                    "fuzz/%00",
                ]
            ),
            st.tuples(BUCKETS, KEY_PATH).map(lambda t: f"/{t[0]}/{t[1]}"),
        ),
    ),
    ("x-amz-copy-source-range", RANGES),
    ("x-amz-metadata-directive", st.sampled_from(["COPY", "REPLACE", "", "x"])),
    ("x-amz-meta-fuzz", HEADER_TEXT),
    ("content-type", st.sampled_from(["application/xml", "multipart/form-data; boundary=x", ""])),
    ("x-amz-acl", st.sampled_from(["private", "public-read", ""])),
    ("x-amz-storage-class", st.sampled_from(["STANDARD", "GLACIER", "x", ""])),
    ("x-amz-tagging", HEADER_TEXT),
    ("expect", st.sampled_from(["100-continue", "x"])),
    ("origin", st.sampled_from(["https://example.com", "null", ""])),
    ("access-control-request-method", st.sampled_from(["GET", "PUT", "FOO", ""])),
    ("x-amz-expected-bucket-owner", st.sampled_from(["123456789012", "x", ""])),
    ("x-amz-object-lock-mode", st.sampled_from(["GOVERNANCE", "x"])),
    ("x-amz-server-side-encryption", st.sampled_from(["AES256", "aws:kms", "x"])),
]
HEADERS = st.lists(st.sampled_from(range(len(HEADER_CHOICES))), max_size=6, unique=True).flatmap(
    lambda picks: st.tuples(*(HEADER_CHOICES[i][1] for i in picks)).map(
        lambda values, picks=picks: [
            (HEADER_CHOICES[i][0], v) for i, v in zip(picks, values, strict=True)
        ]
    )
)


def _xml_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;")


DELETE_XML = st.lists(
    st.tuples(KEY_PATH, st.one_of(st.none(), st.sampled_from(["null", "x", ""]))), max_size=5
).map(
    lambda items: (
        "<Delete><Quiet>false</Quiet>"
        + "".join(
            f"<Object><Key>{_xml_text(k)}</Key>"
            + (f"<VersionId>{v}</VersionId>" if v is not None else "")
            + "</Object>"
            for k, v in items
        )
        + "</Delete>"
    ).encode()
)
COMPLETE_XML = st.lists(
    st.tuples(st.one_of(st.integers(-1, 10001), st.text(max_size=4)), HEADER_TEXT), max_size=5
).map(
    lambda parts: (
        "<CompleteMultipartUpload>"
        + "".join(
            f"<Part><PartNumber>{n}</PartNumber><ETag>{_xml_text(e)}</ETag></Part>"
            for n, e in parts
        )
        + "</CompleteMultipartUpload>"
    ).encode()
)
HOSTILE_XML = st.sampled_from(
    [
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;'
        b'&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;'
        b'&c;&c;&c;&c;&c;&c;&c;"><!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">]>'
        b"<Delete><Object><Key>&e;</Key></Object></Delete>",
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&x;</ETag></Part>"
        b"</CompleteMultipartUpload>",
        b"<Delete>" + b"<a>" * 50_000 + b"</a>" * 50_000 + b"</Delete>",
        b"<CompleteMultipartUpload>" + b"<Part>" * 20_000 + b"</CompleteMultipartUpload>",
        b"<Delete>" + b"<Object><Key>k</Key></Object>" * 1001 + b"</Delete>",
        b"<Delete><Object><Key>" + b"k" * 2_000_000 + b"</Key></Object></Delete>",
        b"<?xml version='1.0' encoding='utf-16'?><Delete/>",
        b"\xef\xbb\xbf<Delete><Object><Key>k</Key></Object></Delete>",
        b"<Delete",
        b"",
        b"<Delete><Object><Key>\xff\xfe</Key></Object></Delete>",
    ]
)
AWS_CHUNKED = st.lists(
    st.tuples(
        st.one_of(st.integers(0, 70), st.sampled_from([-1, 2**64])),
        st.sampled_from(["", ";chunk-signature=" + "0" * 64, ";chunk-signature=", ";x"]),
        st.binary(max_size=64),
        st.sampled_from([b"\r\n", b"", b"\n"]),
    ),
    max_size=4,
).map(
    lambda chunks: b"".join(
        (f"{n:x}" if n >= 0 else "-1").encode() + ext.encode() + b"\r\n" + data + end
        for n, ext, data, end in chunks
    )
)
BODIES = st.one_of(
    st.just(b""),
    st.binary(max_size=2048),
    DELETE_XML,
    COMPLETE_XML,
    HOSTILE_XML,
    AWS_CHUNKED,
    AWS_CHUNKED.map(lambda b: b + b"0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"),
)
METHODS = st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD", "OPTIONS", "PATCH", "FOO"])
REQUESTS = st.tuples(METHODS, PATHS, QUERIES, HEADERS, BODIES)


# -- proxies -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def open_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    """Development mode (no credentials): every request reaches the S3 layer."""
    root = tmp_path_factory.mktemp("fuzz-open")
    (root / "secret.txt").write_bytes(SECRET_TEXT)
    server = start_proxy(
        root,
        "local",
        env={
            "S3PROXY_LIMITS__BODY_IDLE_TIMEOUT": "5",
            "S3PROXY_MULTIPART__MIN_PART_SIZE": "1",
            "S3PROXY_S3__CORS__ALLOWED_ORIGINS": "https://example.com",
        },
    )
    s3 = s3_client(server.endpoint)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="k", Body=b"0123456789")
    yield server
    stop_proxy(server)


@pytest.fixture(scope="module")
def signed_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    """Credentials configured: only correctly signed requests may do anything."""
    server = start_proxy(
        tmp_path_factory.mktemp("fuzz-signed"),
        "local",
        env={
            "S3PROXY_AUTH__ACCESS_KEY_ID": KEY_ID,
            "S3PROXY_AUTH__SECRET_ACCESS_KEY": SECRET,
            "S3PROXY_AUTH__ALLOW_SIGV2": "true",
            "S3PROXY_AUTH__ALLOW_PRESIGNED_POST": "true",
        },
    )
    signed = signed_request("PUT", server.endpoint, f"/{BUCKET}", b"")
    assert exchange(server.endpoint, signed).status == 200
    put = signed_request("PUT", server.endpoint, f"/{BUCKET}/k", b"0123456789")
    assert exchange(server.endpoint, put).status == 200
    yield server
    stop_proxy(server)


def files_outside(root: Path, bucket_dir: Path) -> set[tuple[str, int]]:
    """Every file under ``root`` that is not inside ``bucket_dir``, with its size."""
    out = set()
    for path in root.rglob("*"):
        if (
            path.is_file()
            and not path.is_relative_to(bucket_dir)
            and not path.name.endswith(".log")
        ):
            out.add((str(path.relative_to(root)), path.stat().st_size))
    return out


# -- the surface -------------------------------------------------------------------------------


def test_fuzz_request_surface(open_proxy: ProxyServer) -> None:
    assert open_proxy.data_dir is not None
    root = open_proxy.data_dir.parent
    bucket_dir = open_proxy.data_dir / BUCKET
    outside = files_outside(root, bucket_dir)
    cases = 0

    @budget(300)
    @given(request=REQUESTS)
    def one(request: tuple[str, str, str, list[tuple[str, str]], bytes]) -> None:
        nonlocal cases
        method, path, query, headers, body = request
        target = f"{path}?{query}" if query else path
        cases += 1
        check(method, exchange(open_proxy.endpoint, build(method, target, headers, body)))

    try:
        one()
    finally:
        TALLY.fuzz_cases += cases
    assert httpx.get(f"{open_proxy.endpoint}/_s3proxy/health").status_code == 200
    proxy_log_has_no_crash(open_proxy)
    # Other buckets' directories and files beside the data directory are untouched:
    # only buckets the fuzz created (valid names) may have appeared.
    appeared = files_outside(root, bucket_dir) - outside
    assert all(name.startswith("data/") for name, _ in appeared), appeared
    assert (root / "secret.txt").read_bytes() == SECRET_TEXT


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /fuzz/a b HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /fuzz/\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /fuzz/\xc0\xae\xc0\xae/secret.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET fuzz/k HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET http://127.0.0.1/fuzz/k HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET * HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /fuzz/k HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"GET /fuzz/k HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"PUT /fuzz/te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"PUT /fuzz/te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Length: 3\r\n\r\n0\r\n\r\n",
        b"GET /fuzz/k HTTP/1.1\r\nHost: x\r\nX: " + b"v" * 70_000 + b"\r\n\r\n",
        b"GET /fuzz/k HTTP/1.1\r\n" + b"X-A: b\r\n" * 5000 + b"\r\n",
        b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /fuzz/k HTTP/9.9\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64),
        b"GET /fuzz/k HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    ],
)
def test_malformed_http_is_refused_cleanly(open_proxy: ProxyServer, raw: bytes) -> None:
    """Requests the HTTP layer rejects: an error or a closed connection, never a crash."""
    host, port = open_proxy.endpoint.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(raw)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        data = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                data += chunk
    TALLY.fuzz_cases += 1
    if data:
        status = int(data.split(b" ", 2)[1])
        assert status != 500 and (status < 500 or status == 501), data[:300]
        assert SECRET_TEXT not in data
    assert httpx.get(f"{open_proxy.endpoint}/_s3proxy/health").status_code == 200


# -- path traversal ----------------------------------------------------------------------------

TRAVERSAL_KEYS = (
    st.lists(
        st.one_of(st.sampled_from(TRAVERSAL), st.sampled_from(["..", "%2e%2e", "..%2f", "%5c.."])),
        min_size=1,
        max_size=8,
    )
    .map("/".join)
    .filter(bool)
)


def test_traversal_stays_in_the_bucket(open_proxy: ProxyServer) -> None:
    assert open_proxy.data_dir is not None
    root = open_proxy.data_dir.parent
    bucket_dir = open_proxy.data_dir / BUCKET
    outside = files_outside(root, bucket_dir)
    cases = 0

    @budget(150)
    @given(key_path=TRAVERSAL_KEYS)
    def one(key_path: str) -> None:
        nonlocal cases
        cases += 1
        marker = uuid.uuid4().hex.encode()
        path = f"/{BUCKET}/{key_path}"
        put = exchange(open_proxy.endpoint, build("PUT", path, [], marker))
        check("PUT", put)
        got = exchange(open_proxy.endpoint, build("GET", path, [], b""))
        check("GET", got)
        assert SECRET_TEXT not in got.body
        if put.status == 200:
            # Stored, under its own key: reading the same path gives the same bytes back.
            assert (got.status, got.body) == (200, marker)
            deleted = exchange(open_proxy.endpoint, build("DELETE", path, [], b""))
            assert deleted.status == 204, deleted
        else:
            assert put.status == 400, put  # InvalidURI and the like, nothing written

    try:
        one()
    finally:
        TALLY.fuzz_cases += cases
    assert files_outside(root, bucket_dir) == outside
    assert (root / "secret.txt").read_bytes() == SECRET_TEXT
    proxy_log_has_no_crash(open_proxy)


def test_traversal_stays_under_the_cloud_prefix(faulty_aws: FaultyAws) -> None:
    env = faulty_aws
    s3 = s3_client(env.proxy.endpoint)
    bucket = f"trav-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    cases = 0

    @budget(40)
    @given(key_path=TRAVERSAL_KEYS)
    def one(key_path: str) -> None:
        nonlocal cases
        cases += 1
        marker = uuid.uuid4().hex.encode()
        path = f"/{bucket}/{key_path}"
        put = exchange(env.proxy.endpoint, build("PUT", path, [], marker))
        check("PUT", put)
        if put.status == 200:
            got = exchange(env.proxy.endpoint, build("GET", path, [], b""))
            assert (got.status, got.body) == (200, marker)

    try:
        one()
    finally:
        TALLY.fuzz_cases += cases
    everything = cloud_keys(env.moto, env.cloud_bucket)
    assert everything and all(k.startswith(f"{CLOUD_PREFIX}/") for k in everything), [
        k for k in everything if not k.startswith(f"{CLOUD_PREFIX}/")
    ]
    # And inside the prefix, under this bucket's folder.
    mine = [k for k in everything if f"/{bucket}/" in k]
    assert all(k.startswith(f"{CLOUD_PREFIX}/{bucket}/") for k in mine)


# -- authentication ----------------------------------------------------------------------------


def signed_request(
    method: str,
    endpoint: str,
    target: str,
    body: bytes,
    headers: dict[str, str] | None = None,
    when: dt.datetime | None = None,
) -> bytes:
    """A correctly SigV4-signed raw request (botocore signs, we send the bytes)."""
    url = endpoint + target
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    req.headers["x-amz-content-sha256"] = hashlib.sha256(body).hexdigest()
    signer = botocore.auth.S3SigV4Auth(Credentials(KEY_ID, SECRET), "s3", "us-east-1")
    if when is not None:
        with mock.patch.object(botocore.auth, "get_current_datetime", return_value=when):
            signer.add_auth(req)
    else:
        signer.add_auth(req)
    prepared = req.prepare()
    host = endpoint.removeprefix("http://")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in prepared.headers.items() if k.lower() != "content-length"]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _mutate(raw: bytes, where: int, byte: int) -> bytes:
    """Change one byte of the request head (never the Content-Length digits)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    protected = head.find(b"Content-Length")
    positions = [i for i in range(len(head)) if head[i : i + 1] not in (b"\r", b"\n")]
    positions = [i for i in positions if protected < 0 or i < protected]
    i = positions[where % len(positions)]
    if head[i] == byte:
        byte = (byte + 1) % 256
    if byte in (10, 13):
        byte = 65
    return head[:i] + bytes([byte]) + head[i + 1 :] + sep + body


def test_unsigned_and_forged_requests_never_get_in(signed_proxy: ProxyServer) -> None:
    cases = 0

    @budget(200)
    @given(request=REQUESTS)
    def one(request: tuple[str, str, str, list[tuple[str, str]], bytes]) -> None:
        nonlocal cases
        method, path, query, headers, body = request
        if method == "OPTIONS":
            method = "GET"  # preflights are answered without credentials by design
        if method == "POST" and path.count("/") == 1:
            method = "PUT"  # browser form uploads carry their own signature in the form
        target = f"{path}?{query}" if query else path
        cases += 1
        answer = exchange(signed_proxy.endpoint, build(method, target, headers, body))
        check(method, answer, allow_success=False)

    try:
        one()
    finally:
        TALLY.fuzz_cases += cases
    proxy_log_has_no_crash(signed_proxy)


def test_tampered_signed_requests_never_get_in(signed_proxy: ProxyServer) -> None:
    endpoint = signed_proxy.endpoint
    good_get = signed_request("GET", endpoint, f"/{BUCKET}/k", b"")
    good_put = signed_request("PUT", endpoint, f"/{BUCKET}/k", b"0123456789")
    # Sanity: untampered, both pass (so a refusal below is the tampering's doing).
    assert exchange(endpoint, good_get).status == 200
    assert exchange(endpoint, good_put).status == 200
    cases = 0

    @budget(200)
    @given(
        which=st.sampled_from(["get", "put"]),
        where=st.integers(0, 10_000),
        byte=st.integers(32, 126),
    )
    def one(which: str, where: int, byte: int) -> None:
        nonlocal cases
        raw = _mutate(good_get if which == "get" else good_put, where, byte)
        cases += 1
        answer = exchange(endpoint, raw)
        if answer.status < 300:
            # Only a change to something unsigned may pass (the Connection header, the
            # case of a header name): what was signed must be exactly the original.
            good = good_get if which == "get" else good_put
            assert _signed_parts(raw) == _signed_parts(good), raw
        elif answer.status == 400 and "x-amz-request-id" not in answer.headers:
            pass  # no longer valid HTTP: refused by the HTTP layer, before the S3 layer
        else:
            check("GET", answer, allow_success=False)

    try:
        one()
    finally:
        TALLY.fuzz_cases += cases
    # The object was never changed by a forged PUT.
    got = exchange(endpoint, signed_request("GET", endpoint, f"/{BUCKET}/k", b""))
    assert (got.status, got.body) == (200, b"0123456789")
    proxy_log_has_no_crash(signed_proxy)


_SIGNED = {b"host", b"x-amz-date", b"x-amz-content-sha256", b"authorization"}


def _signed_parts(raw: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """Request line and the values of the signed headers (names case-insensitive)."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    fields = []
    for line in head[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() in _SIGNED:
            fields.append((name.strip().lower(), value.strip()))
    return head[0], sorted(fields)


def test_replayed_stale_signature_is_refused(signed_proxy: ProxyServer) -> None:
    old = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=1)
    raw = signed_request("GET", signed_proxy.endpoint, f"/{BUCKET}/k", b"", when=old)
    answer = exchange(signed_proxy.endpoint, raw)
    check("GET", answer, allow_success=False)
    assert b"<Code>RequestTimeTooSkewed</Code>" in answer.body
