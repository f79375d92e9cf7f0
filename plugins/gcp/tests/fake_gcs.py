"""A fake Google Cloud Storage server for tests (stdlib only, in memory).

It implements the XML API calls obstore's GCSStore makes, with GCS's behaviour where it
matters to the proxy:

- PUT object (attributes as headers, ``x-goog-meta-*``, ``x-goog-if-generation-match``),
  PUT with ``x-goog-copy-source`` (copy; generation-match 0 = copy if not exists);
- XML multipart uploads: POST ``?uploads``, PUT ``?partNumber&uploadId``, POST
  ``?uploadId`` (complete), DELETE ``?uploadId`` (abort);
- GET/HEAD with ``Range`` (416 when unsatisfiable, as for any range of an empty object),
  ``If-Match``/``If-None-Match``, ``x-goog-generation``; decompressive transcoding of
  ``Content-Encoding: gzip`` objects unless the client accepts gzip;
- DELETE object (404 when missing), GET bucket ``?list-type=2`` with prefix, delimiter,
  start-after and continuation tokens (pages of ``--page-size`` entries);
- ETag: the MD5 of the bytes for single-request uploads, ``md5(part md5s)-N`` for
  multipart ones; custom metadata limited to 8 KiB.

Test controls under ``/_fake/``: ``health``, ``PUT buckets/<name>`` (create a bucket),
``POST faults`` (JSON ``{"status": 503, "count": 2, "code": "SlowDown"}``: the next
``count`` storage requests fail so; ``{"delay": 2}`` makes them answer late;
``DELETE faults`` clears them), ``GET auth`` (the Authorization headers seen).
With ``--token``, storage requests need ``Authorization: Bearer <token>``.

Run: ``python fake_gcs.py --port 4443 [--token T] [--page-size 100]``.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import json
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import escape

METADATA_LIMIT = 8 * 1024
CONTENT_HEADERS = (
    "content-type",
    "content-encoding",
    "content-disposition",
    "content-language",
    "cache-control",
)


@dataclass
class Obj:
    data: bytes
    headers: dict[str, str]  # content headers and x-goog-meta-*
    etag: str
    generation: int
    updated: float = field(default_factory=time.time)


@dataclass
class Upload:
    bucket: str
    name: str
    headers: dict[str, str]
    parts: dict[int, bytes] = field(default_factory=dict)


class State:
    def __init__(self, token: str, page_size: int) -> None:
        self.lock = threading.Lock()
        self.buckets: dict[str, dict[str, Obj]] = {}
        self.uploads: dict[str, Upload] = {}
        self.generation = int(time.time() * 1000)
        self.token = token
        self.page_size = page_size
        self.faults: list[tuple[int, str, float]] = []
        self.auth_seen: list[str] = []

    def next_generation(self) -> int:
        self.generation += 1
        return self.generation


class GcsError(Exception):
    def __init__(self, status: int, code: str, message: str = "") -> None:
        super().__init__(code)
        self.status, self.code, self.message = status, code, message or code


def _object_headers(headers: dict[str, str]) -> dict[str, str]:
    kept = {
        k: v for k, v in headers.items() if k in CONTENT_HEADERS or k.startswith("x-goog-meta-")
    }
    size = sum(
        len(k) - len("x-goog-meta-") + len(v)
        for k, v in kept.items()
        if k.startswith("x-goog-meta-")
    )
    if size > METADATA_LIMIT:
        raise GcsError(400, "InvalidArgument", "custom metadata exceeds 8 KiB")
    kept.setdefault("content-type", "application/octet-stream")
    return kept


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """Half-open (start, end) of a ``bytes=`` range; GcsError 416 when unsatisfiable."""
    m = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None
    if not m.group(1):
        n = int(m.group(2))
        if n == 0 or size == 0:
            raise GcsError(416, "InvalidRange")
        return max(0, size - n), size
    start = int(m.group(1))
    end = min(int(m.group(2)) + 1, size) if m.group(2) else size
    if start >= size or start >= end:
        raise GcsError(416, "InvalidRange")
    return start, end


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, delayed ACKs stall
        # every keep-alive request by tens of milliseconds.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    # -- plumbing --------------------------------------------------------------------

    def _body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, err: GcsError) -> None:
        body = (
            f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{err.code}</Code>"
            f"<Message>{escape(err.message)}</Message></Error>"
        ).encode()
        self._send(err.status, body, {"content-type": "application/xml"})

    def _dispatch(self) -> None:
        self._request_body = self._body() if self.command in ("PUT", "POST") else b""
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            if url.path.startswith("/_fake/"):
                self._control(url.path[len("/_fake/") :])
                return
            self._check_auth()
            self._check_faults()
            bucket, _, name = url.path.lstrip("/").partition("/")
            self._storage(unquote(bucket), unquote(name), query)
        except GcsError as err:
            self._error(err)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _dispatch

    def _check_auth(self) -> None:
        auth = self.headers.get("authorization", "")
        state = self.server.state
        with state.lock:
            state.auth_seen.append(auth)
        if state.token and auth != f"Bearer {state.token}":
            raise GcsError(401, "AuthenticationRequired", "bad or missing bearer token")

    def _check_faults(self) -> None:
        state = self.server.state
        with state.lock:
            if not state.faults:
                return
            status, code, delay = state.faults.pop(0)
        if delay:
            time.sleep(delay)  # a slow answer, then a normal one
            return
        raise GcsError(status, code, "injected fault")

    def _control(self, path: str) -> None:
        state = self.server.state
        if path == "health":
            self._send(200, b"ok")
        elif path.startswith("buckets/") and self.command == "PUT":
            with state.lock:
                state.buckets.setdefault(path[len("buckets/") :], {})
            self._send(200)
        elif path == "faults" and self.command == "POST":
            spec = json.loads(self._request_body or b"{}")
            fault = (
                int(spec.get("status", 503)),
                str(spec.get("code", "SlowDown")),
                float(spec.get("delay", 0)),
            )
            with state.lock:
                state.faults.extend([fault] * int(spec.get("count", 1)))
            self._send(200)
        elif path == "faults" and self.command == "DELETE":
            with state.lock:
                state.faults.clear()
            self._send(204)
        elif path == "auth":
            with state.lock:
                seen = list(state.auth_seen)
            self._send(200, json.dumps(seen).encode(), {"content-type": "application/json"})
        else:
            raise GcsError(404, "NotFound")

    # -- storage ---------------------------------------------------------------------

    def _bucket(self, bucket: str) -> dict[str, Obj]:
        objects = self.server.state.buckets.get(bucket)
        if objects is None:
            raise GcsError(404, "NoSuchBucket", "The specified bucket does not exist.")
        return objects

    def _storage(self, bucket: str, name: str, query: dict[str, str]) -> None:
        state = self.server.state
        with state.lock:
            objects = self._bucket(bucket)
            if not name:
                if self.command != "GET":
                    raise GcsError(405, "MethodNotAllowed")
                self._list(objects, query)
            elif "uploads" in query and self.command == "POST":
                self._initiate(bucket, name)
            elif "uploadId" in query:
                self._multipart(objects, bucket, name, query)
            elif self.command in ("GET", "HEAD"):
                self._get(objects, name)
            elif self.command == "PUT":
                self._put(objects, name)
            elif self.command == "DELETE":
                if objects.pop(name, None) is None:
                    raise GcsError(404, "NoSuchKey", "No such object.")
                self._send(204)
            else:
                raise GcsError(405, "MethodNotAllowed")

    def _check_generation(self, objects: dict[str, Obj], name: str) -> None:
        match = self.headers.get("x-goog-if-generation-match")
        if match is None:
            return
        current = objects.get(name)
        if (current.generation if current else 0) != int(match):
            raise GcsError(
                412,
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold.",
            )

    def _store(
        self, objects: dict[str, Obj], name: str, data: bytes, headers: dict[str, str], etag: str
    ) -> Obj:
        obj = Obj(data, headers, etag, self.server.state.next_generation())
        objects[name] = obj
        return obj

    def _put(self, objects: dict[str, Obj], name: str) -> None:
        source = self.headers.get("x-goog-copy-source")
        self._check_generation(objects, name)
        if source is not None:
            src_bucket, _, src_name = unquote(source).partition("/")
            src = self._bucket(src_bucket).get(src_name)
            if src is None:
                raise GcsError(404, "NoSuchKey", "No such object.")
            obj = self._store(objects, name, src.data, dict(src.headers), src.etag)
            body = f'<CopyObjectResult><ETag>"{obj.etag}"</ETag></CopyObjectResult>'.encode()
            self._send(200, body, {"x-goog-generation": str(obj.generation)})
            return
        data = self._request_body
        headers = _object_headers({k.lower(): v for k, v in self.headers.items()})
        obj = self._store(objects, name, data, headers, hashlib.md5(data).hexdigest())
        self._send(200, b"", {"etag": f'"{obj.etag}"', "x-goog-generation": str(obj.generation)})

    def _initiate(self, bucket: str, name: str) -> None:
        headers = _object_headers({k.lower(): v for k, v in self.headers.items()})
        upload_id = uuid.uuid4().hex
        self.server.state.uploads[upload_id] = Upload(bucket, name, headers)
        body = (
            "<?xml version='1.0' encoding='UTF-8'?><InitiateMultipartUploadResult>"
            f"<Bucket>{escape(bucket)}</Bucket><Key>{escape(name)}</Key>"
            f"<UploadId>{upload_id}</UploadId></InitiateMultipartUploadResult>"
        ).encode()
        self._send(200, body, {"content-type": "application/xml"})

    def _multipart(
        self, objects: dict[str, Obj], bucket: str, name: str, query: dict[str, str]
    ) -> None:
        upload = self.server.state.uploads.get(query["uploadId"])
        if upload is None or (upload.bucket, upload.name) != (bucket, name):
            raise GcsError(404, "NoSuchUpload")
        if self.command == "PUT":
            part = self._request_body
            upload.parts[int(query["partNumber"])] = part
            self._send(200, b"", {"etag": f'"{hashlib.md5(part).hexdigest()}"'})
        elif self.command == "DELETE":
            del self.server.state.uploads[query["uploadId"]]
            self._send(204)
        elif self.command == "POST":
            root = ElementTree.fromstring(self._request_body)
            numbers = [int(p.findtext("PartNumber") or 0) for p in root.iter("Part")]
            if not numbers or any(n not in upload.parts for n in numbers):
                raise GcsError(400, "InvalidPart")
            data = b"".join(upload.parts[n] for n in numbers)
            digests = b"".join(hashlib.md5(upload.parts[n]).digest() for n in numbers)
            etag = f"{hashlib.md5(digests).hexdigest()}-{len(numbers)}"
            obj = self._store(objects, name, data, upload.headers, etag)
            del self.server.state.uploads[query["uploadId"]]
            body = (
                "<?xml version='1.0' encoding='UTF-8'?><CompleteMultipartUploadResult>"
                f"<Bucket>{escape(bucket)}</Bucket><Key>{escape(name)}</Key>"
                f'<ETag>"{etag}"</ETag></CompleteMultipartUploadResult>'
            ).encode()
            self._send(
                200,
                body,
                {"x-goog-generation": str(obj.generation), "content-type": "application/xml"},
            )
        else:
            raise GcsError(405, "MethodNotAllowed")

    def _get(self, objects: dict[str, Obj], name: str) -> None:
        obj = objects.get(name)
        if obj is None:
            raise GcsError(404, "NoSuchKey", "No such object.")
        quoted = f'"{obj.etag}"'
        if_match = self.headers.get("if-match")
        if if_match is not None and if_match.strip() not in (quoted, obj.etag, "*"):
            raise GcsError(412, "PreconditionFailed")
        if_none = self.headers.get("if-none-match")
        if if_none is not None and if_none.strip() in (quoted, obj.etag, "*"):
            self._send(304, b"", {"etag": quoted})
            return
        data, headers = obj.data, dict(obj.headers)
        accepts_gzip = "gzip" in self.headers.get("accept-encoding", "")
        if headers.get("content-encoding") == "gzip" and not accepts_gzip:
            try:  # GCS's decompressive transcoding
                data = gzip.decompress(data)
                del headers["content-encoding"]
            except (OSError, EOFError):
                pass
        headers.update(
            {
                "etag": quoted,
                "x-goog-generation": str(obj.generation),
                "last-modified": formatdate(obj.updated, usegmt=True),
                "accept-ranges": "bytes",
            }
        )
        status = 200
        if "range" in self.headers:
            selected = _parse_range(self.headers["range"], len(data))
            if selected is not None:
                start, end = selected
                headers["content-range"] = f"bytes {start}-{end - 1}/{len(data)}"
                data, status = data[start:end], 206
        if self.command == "HEAD":
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            return
        self._send(status, data, headers)

    def _list(self, objects: dict[str, Obj], query: dict[str, str]) -> None:
        prefix = query.get("prefix", "")
        delimiter = query.get("delimiter", "")
        token = query.get("continuation-token")
        after = base64.urlsafe_b64decode(token).decode() if token else query.get("start-after", "")
        limit = min(int(query.get("max-keys") or 1000), self.server.state.page_size)
        contents: list[str] = []
        prefixes: list[str] = []
        last = ""
        truncated = False
        for name in sorted(objects, key=lambda n: n.encode()):
            if not name.startswith(prefix) or name.encode() <= after.encode():
                continue
            if len(contents) + len(prefixes) >= limit:
                truncated = True
                break
            if delimiter and delimiter in name[len(prefix) :]:
                common = name[: name.index(delimiter, len(prefix)) + len(delimiter)]
                if common not in prefixes:
                    prefixes.append(common)
                last = common + "\U0010ffff"
                continue
            obj = objects[name]
            modified = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(obj.updated))
            contents.append(
                f"<Contents><Key>{escape(name)}</Key><Size>{len(obj.data)}</Size>"
                f'<LastModified>{modified}</LastModified><ETag>"{obj.etag}"</ETag></Contents>'
            )
            last = name
        parts = ["<?xml version='1.0' encoding='UTF-8'?><ListBucketResult>", *contents]
        parts += [
            f"<CommonPrefixes><Prefix>{escape(p)}</Prefix></CommonPrefixes>" for p in prefixes
        ]
        if truncated:
            next_token = base64.urlsafe_b64encode(last.encode()).decode()
            parts.append(
                f"<IsTruncated>true</IsTruncated><NextContinuationToken>{next_token}</NextContinuationToken>"
            )
        parts.append("</ListBucketResult>")
        self._send(200, "".join(parts).encode(), {"content-type": "application/xml"})


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, token: str = "", page_size: int = 1000) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.state = State(token, page_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", default="", help="bearer token to require")
    parser.add_argument("--page-size", type=int, default=100, help="list page size")
    args = parser.parse_args()
    Server(args.port, args.token, args.page_size).serve_forever()


if __name__ == "__main__":
    main()
