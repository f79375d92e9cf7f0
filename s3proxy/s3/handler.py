"""The S3 ASGI application: request id -> dispatch -> handler -> response or S3 error."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from opentelemetry import propagate, trace

from s3proxy.auth import Principal
from s3proxy.config import Config
from s3proxy.events import EventSink
from s3proxy.hookspecs import Authenticator, Authorizer
from s3proxy.observability import (
    active_requests,
    auth_failures,
    new_request_id,
    operation_var,
    rejected_requests,
    request_id_var,
    tracing_active,
)
from s3proxy.s3 import cors, xml
from s3proxy.s3.dispatch import (
    Target,
    operation,
    parse_target,
    valid_bucket_name,
    virtual_host_path,
)
from s3proxy.s3.errors import S3Error, from_storage
from s3proxy.s3.exchange import Exchange, audit, record
from s3proxy.s3.http import ClientDisconnected, S3Request, S3Response
from s3proxy.s3.limits import Limits
from s3proxy.s3.operations import Handlers
from s3proxy.s3.post_policy import Policy
from s3proxy.storage.backend import StorageBackend, StorageError

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


async def _body(receive: Receive, exchange: Exchange) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        chunk = message.get("body", b"")
        if chunk:
            exchange.bytes_in += len(chunk)
            yield chunk
        if not message.get("more_body", False):
            exchange.body_done = True
            return


def _has_body(headers: dict[str, str]) -> bool:
    length = headers.get("content-length", "0")
    return "transfer-encoding" in headers or (length != "0" and length != "")


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else ""


def error_body(err: S3Error, request_id: str) -> bytes:
    # Written directly rather than through xml.document: refusals are the requests a
    # proxy must answer cheapest.
    esc = xml.escape
    out = [f"{xml.DECLARATION}<Error><Code>{err.code}</Code><Message>{esc(err.message)}</Message>"]
    for name, value in err.extra.items():
        out.append(f"<{name}>{esc(str(value))}</{name}>")
    if err.resource:
        out.append(f"<Resource>{esc(err.resource)}</Resource>")
    out.append(f"<RequestId>{request_id}</RequestId></Error>")
    return "".join(out).encode()


# Operations whose duration follows the size of a body: no whole-request timeout.
STREAMING_OPERATIONS = frozenset(
    {
        "GetObject",
        "PutObject",
        "UploadPart",
        "UploadPartCopy",
        "CopyObject",
        "CompleteMultipartUpload",
        "PostObject",
    }
)
_COMPRESS_MIN = 1024
_tracer = trace.get_tracer("s3proxy")
# Without a tracer provider, no span at all (entering a no-op span still costs).
_NO_SPAN = contextlib.nullcontext(trace.INVALID_SPAN)


class S3App:
    """Serves the S3 API for one backend."""

    def __init__(
        self,
        backend: StorageBackend,
        handlers: Handlers,
        config: Config,
        authenticator: Authenticator,
        authorizers: list[Authorizer],
        draining: Callable[[], bool] = lambda: False,
        sinks: tuple[EventSink, ...] = (),
    ) -> None:
        self.backend = backend
        self.handlers = handlers
        self.config = config
        self.authenticator = authenticator
        self.authorizers = authorizers
        self.limits = Limits(config.limits)
        # The gauge reads the limiter's count: one worker serves one app.
        active_requests.read = lambda: self.limits.in_flight
        self.draining = draining
        self.sinks = sinks

    def _request_id(self, headers: dict[str, str]) -> str:
        name = self.config.server.request_id_header
        if name:
            given = headers.get(name.lower(), "")
            # Only ids that are safe to echo in headers and logs.
            if 0 < len(given) <= 128 and given.isprintable() and given.isascii():
                return given
        return new_request_id()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = _headers(scope)
        request_id = self._request_id(headers)
        request_id_var.set(request_id)
        operation_var.set("")
        method = scope["method"]
        original_path = (scope.get("raw_path") or scope["path"].encode()).split(b"?", 1)[0]
        raw_path = original_path
        if self.config.s3.base_domains and "host" in headers:
            raw_path = virtual_host_path(raw_path, headers["host"], self.config.s3.base_domains)
        exchange = Exchange(request_id, method, raw_path.decode("latin-1"), _client(scope))
        span_context: contextlib.AbstractContextManager[trace.Span] = _NO_SPAN
        if tracing_active():
            span_context = _tracer.start_as_current_span(
                method, context=propagate.extract(headers), kind=trace.SpanKind.SERVER
            )
        with span_context as span:
            self.limits.in_flight += 1
            try:
                await self._serve(scope, receive, send, original_path, raw_path, headers, exchange)
            finally:
                self.limits.in_flight -= 1
                record(exchange, span, self.config.telemetry.span_bucket_attribute)
                audit(exchange)

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        original_path: bytes,
        raw_path: bytes,
        headers: dict[str, str],
        exchange: Exchange,
    ) -> None:
        method = exchange.method
        cors_cfg = self.config.s3.cors
        try:
            if method == "OPTIONS":
                exchange.operation = "PreflightRequest"
                operation_var.set(exchange.operation)
                response = cors.preflight(cors_cfg, headers)
            else:
                if self.draining():
                    raise S3Error("ServiceUnavailable", "The server is shutting down.")
                header_bytes = sum(len(k) + len(v) + 4 for k, v in scope["headers"])
                self.limits.admit(
                    exchange.client.rsplit(":", 1)[0],
                    raw_path,
                    scope.get("query_string", b""),
                    headers,
                    header_bytes,
                )
                response = await self._handle(
                    scope, receive, original_path, raw_path, headers, exchange
                )
                await _prime(response)
        except S3Error as err:
            if err.code in ("SlowDown", "EntityTooLarge", "RequestTimeout"):
                rejected_requests.add(1, {"reason": err.code})
            response = self._error(err, exchange)
        except StorageError as exc:
            # A streamed body that failed before its first byte (see _prime).
            response = self._error(from_storage(exc), exchange)
        except ClientDisconnected:
            log.info("client disconnected before the request body was complete")
            exchange.status = 499  # nginx's "client closed request": nothing was sent
            return
        except Exception:
            log.exception("unhandled error")
            response = self._error(S3Error("InternalError"), exchange)
        if cors_cfg.allowed_origins and method != "OPTIONS":
            response.headers.extend(cors.response_headers(cors_cfg, headers))
        if self.config.telemetry.compress_xml:
            _maybe_compress(response, headers)
        if not exchange.body_done and _has_body(headers):
            # A refusal sent before the body was read: the unread bytes would be taken
            # for the next request on this connection, so end the connection instead.
            response.headers.append(("connection", "close"))
        exchange.status = response.status
        await self._send(send, receive, response, exchange, head=method == "HEAD")

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        original_path: bytes,
        raw_path: bytes,
        headers: dict[str, str],
        exchange: Exchange,
    ) -> S3Response:
        method = scope["method"]
        target = parse_target(raw_path)
        query = _query(scope)
        name = operation(method, target, query, headers)
        exchange.operation, exchange.bucket, exchange.key = name, target.bucket, target.key
        operation_var.set(name)
        self._check_bucket_name(target, exchange.resource)
        req = S3Request(
            method=method,
            operation=name,
            bucket=target.bucket,
            key=target.key,
            query=query,
            headers=headers,
            body=self.limits.body(_body(receive, exchange)),
            backend=self.backend,
            request_id=exchange.request_id,
            resource=exchange.resource,
            config=self.config,
            raw_path=original_path,
            raw_query=scope.get("query_string", b""),
            client=exchange.client,
            sinks=self.sinks,
        )
        if name == "PostObject":
            # The credentials travel inside the form body: the handler calls back.
            req.verify_form = functools.partial(self._verify_form, req, exchange)
        else:
            await self._authenticate(req, exchange, self.authenticator.authenticate(req))
        handler = self.handlers.get(name)
        if handler is None:
            raise S3Error(
                "NotImplemented",
                f"The {name} operation is not implemented by this proxy.",
                resource=exchange.resource,
            )
        timeout = self.config.limits.request_timeout
        if name in STREAMING_OPERATIONS or not timeout:
            return await handler(req)
        try:
            async with asyncio.timeout(timeout):
                return await handler(req)
        except TimeoutError:
            raise S3Error("ServiceUnavailable", "The request took too long; try again.") from None

    async def _authenticate(
        self, req: S3Request, exchange: Exchange, attempt: Awaitable[Principal]
    ) -> None:
        try:
            principal = await attempt
        except S3Error:
            auth_failures.add(1)
            raise
        req.principal = principal
        exchange.principal = principal.name
        for authorizer in self.authorizers:
            await authorizer.authorize(principal, req)

    async def _verify_form(
        self, req: S3Request, exchange: Exchange, fields: dict[str, str]
    ) -> Policy | None:
        authenticate_form = getattr(self.authenticator, "authenticate_form", None)
        if authenticate_form is None:
            raise S3Error("NotImplemented", "The authenticator does not accept form uploads.")
        policy: Policy | None = None

        async def attempt() -> Principal:
            nonlocal policy
            principal, policy = await authenticate_form(req, fields)
            return principal  # type: ignore[no-any-return]

        await self._authenticate(req, exchange, attempt())
        return policy

    @staticmethod
    def _check_bucket_name(target: Target, resource: str) -> None:
        if target.bucket is not None and not valid_bucket_name(target.bucket):
            raise S3Error(
                "InvalidBucketName", resource=resource, extra={"BucketName": target.bucket}
            )

    def _error(self, err: S3Error, exchange: Exchange) -> S3Response:
        if err.resource is None:
            err.resource = exchange.resource
        # A client error is one field of the request's audit line; a server error gets a
        # warning line of its own too.
        exchange.error, exchange.error_message = err.code, err.message
        if err.status >= 500:
            log.warning("%s %s: %s", err.status, err.code, err.message)
        body = error_body(err, exchange.request_id)
        headers = [("content-type", "application/xml"), *err.headers]
        return S3Response(status=err.status, headers=headers, body=body, document=True)

    async def _send(
        self, send: Send, receive: Receive, response: S3Response, exchange: Exchange, head: bool
    ) -> None:
        rid = exchange.request_id.encode()
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
        headers.append((b"x-amz-request-id", rid))
        headers.append((b"x-amz-id-2", rid))
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
            exchange.bytes_out = 0 if head else len(body)
            return
        if response.content_length is not None:
            headers.append((b"content-length", str(response.content_length).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        sent = 0
        # The server drops sends to a closed connection silently: watch for the client
        # leaving, or a dropped download would still read the whole object.
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            async for chunk in body:
                if gone.done():
                    log.info("client disconnected after %d bytes of the response", sent)
                    return
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                sent += len(chunk)
                exchange.bytes_out = sent
        except Exception:
            # Headers are gone: the only honest signal left is to cut the connection.
            log.exception("response body failed after %d bytes", sent)
            raise
        finally:
            gone.cancel()
            # A client that goes away mid-download closes the backend stream now.
            aclose = getattr(body, "aclose", None)
            if aclose is not None:
                await aclose()
        await send({"type": "http.response.body", "body": b""})


async def _disconnected(receive: Receive) -> None:
    """Return once the client has gone (any unread request body is discarded)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _prime(response: S3Response) -> None:
    """Read a streamed body's first chunk before the status line goes out.

    A backend read that fails before its first byte then becomes an S3 error response
    (the ASGI server would otherwise answer a bare 500 for a response that was started
    but sent nothing); once bytes are out, only cutting the connection is left.
    """
    body = response.body
    if isinstance(body, bytes):
        return
    try:
        first = await anext(body)
    except StopAsyncIteration:
        first = b""
    if isinstance(first, bytes) and len(first) == response.content_length:
        # The whole body came in its first chunk (small objects): send it as one
        # message, without the streaming machinery.
        aclose = getattr(body, "aclose", None)
        if aclose is not None:
            await aclose()
        response.body = first
        return
    response.body = _chain(first, body)


async def _chain(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        if first:
            yield first
        async for chunk in rest:
            yield chunk
    finally:
        aclose = getattr(rest, "aclose", None)
        if aclose is not None:
            await aclose()


def _maybe_compress(response: S3Response, headers: dict[str, str]) -> None:
    """gzip XML documents for clients that accept it; object bodies are never touched."""
    body = response.body
    if not response.document or not isinstance(body, bytes) or len(body) < _COMPRESS_MIN:
        return
    if "gzip" not in headers.get("accept-encoding", ""):
        return
    response.body = gzip.compress(body, compresslevel=5)
    response.headers += [("content-encoding", "gzip"), ("vary", "Accept-Encoding")]
