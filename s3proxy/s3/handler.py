"""The S3 ASGI application: request id -> dispatch -> handler -> response or S3 error."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

from s3proxy.config import Config
from s3proxy.observability import new_request_id, operation_var, request_id_var
from s3proxy.s3 import cors, xml
from s3proxy.s3.dispatch import (
    Target,
    operation,
    parse_target,
    valid_bucket_name,
    virtual_host_path,
)
from s3proxy.s3.errors import S3Error
from s3proxy.s3.http import ClientDisconnected, S3Request, S3Response
from s3proxy.s3.operations import Handlers
from s3proxy.storage.backend import StorageBackend

log = logging.getLogger("s3proxy.s3")

Scope = dict[str, Any]
Receive = Any
Send = Any


def _headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        # latin-1 keeps every byte: non-ASCII metadata round-trips unchanged.
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        out[name] = f"{out[name]},{value}" if name in out else value
    return out


def _query(scope: Scope) -> dict[str, str]:
    raw = scope.get("query_string", b"").decode("latin-1")
    out: dict[str, str] = {}
    for name, value in parse_qsl(raw, keep_blank_values=True, encoding="utf-8"):
        out.setdefault(name, value)
    return out


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


def error_body(err: S3Error, request_id: str) -> bytes:
    fields: list[xml.Node] = [("Code", err.code), ("Message", err.message)]
    fields.extend(err.extra.items())
    if err.resource:
        fields.append(("Resource", err.resource))
    fields.append(("RequestId", request_id))
    return xml.document("Error", fields, namespace=False)


class S3App:
    """Serves the S3 API for one backend."""

    def __init__(self, backend: StorageBackend, handlers: Handlers, config: Config) -> None:
        self.backend = backend
        self.handlers = handlers
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request_id = new_request_id()
        request_id_var.set(request_id)
        operation_var.set("")
        method = scope["method"]
        headers = _headers(scope)
        raw_path = scope.get("raw_path") or scope["path"].encode()
        raw_path = raw_path.split(b"?", 1)[0]
        if self.config.s3.base_domains and "host" in headers:
            raw_path = virtual_host_path(raw_path, headers["host"], self.config.s3.base_domains)
        resource = raw_path.decode("latin-1")
        cors_cfg = self.config.s3.cors
        try:
            if method == "OPTIONS":
                operation_var.set("PreflightRequest")
                response = cors.preflight(cors_cfg, headers)
            else:
                response = await self._handle(
                    scope, receive, raw_path, headers, request_id, resource
                )
        except S3Error as err:
            response = self._error(err, request_id, resource)
        except ClientDisconnected:
            log.info("client disconnected before the request body was complete")
            return
        except Exception:
            log.exception("unhandled error")
            response = self._error(S3Error("InternalError"), request_id, resource)
        if cors_cfg.allowed_origins and method != "OPTIONS":
            response.headers.extend(cors.response_headers(cors_cfg, headers))
        await self._send(send, response, request_id, head=method == "HEAD")

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        raw_path: bytes,
        headers: dict[str, str],
        request_id: str,
        resource: str,
    ) -> S3Response:
        method = scope["method"]
        target = parse_target(raw_path)
        query = _query(scope)
        name = operation(method, target, query, headers)
        operation_var.set(name)
        self._check_bucket_name(target, resource)
        handler = self.handlers.get(name)
        if handler is None:
            raise S3Error(
                "NotImplemented",
                f"The {name} operation is not implemented by this proxy.",
                resource=resource,
            )
        req = S3Request(
            method=method,
            operation=name,
            bucket=target.bucket,
            key=target.key,
            query=query,
            headers=headers,
            body=_body(receive),
            backend=self.backend,
            request_id=request_id,
            resource=resource,
            config=self.config,
        )
        return await handler(req)

    @staticmethod
    def _check_bucket_name(target: Target, resource: str) -> None:
        if target.bucket is not None and not valid_bucket_name(target.bucket):
            raise S3Error(
                "InvalidBucketName", resource=resource, extra={"BucketName": target.bucket}
            )

    def _error(self, err: S3Error, request_id: str, resource: str) -> S3Response:
        if err.resource is None:
            err.resource = resource
        level = logging.WARNING if err.status >= 500 else logging.INFO
        log.log(level, "%s %s: %s", err.status, err.code, err.message)
        body = error_body(err, request_id)
        headers = [("content-type", "application/xml"), *err.headers]
        return S3Response(status=err.status, headers=headers, body=body)

    async def _send(self, send: Send, response: S3Response, request_id: str, head: bool) -> None:
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
        headers.append((b"x-amz-request-id", request_id.encode()))
        headers.append((b"x-amz-id-2", request_id.encode()))
        headers.append((b"server", b"s3proxy"))
        body = response.body
        if isinstance(body, bytes):
            length = (
                response.content_length
                if head and response.content_length is not None
                else len(body)
            )
            headers.append((b"content-length", str(length).encode()))
            await send(
                {"type": "http.response.start", "status": response.status, "headers": headers}
            )
            await send({"type": "http.response.body", "body": b"" if head else body})
            return
        if response.content_length is not None:
            headers.append((b"content-length", str(response.content_length).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        sent = 0
        try:
            async for chunk in body:
                sent += len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except Exception:
            # Headers are gone: the only honest signal left is to cut the connection.
            log.exception("response body failed after %d bytes", sent)
            raise
        finally:
            # A client that goes away mid-download closes the backend stream now.
            aclose = getattr(body, "aclose", None)
            if aclose is not None:
                await aclose()
        await send({"type": "http.response.body", "body": b""})
