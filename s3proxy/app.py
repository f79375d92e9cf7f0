"""Application factory: the S3 app, and Litestar for the admin routes under /_s3proxy."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from litestar import Litestar, Response, get
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from s3proxy import config as config_mod
from s3proxy.config import Config
from s3proxy.observability import (
    new_request_id,
    prometheus_text,
    refresh_tracing,
    setup_logging,
    setup_telemetry,
)
from s3proxy.plugins import make_plugin_manager
from s3proxy.s3.handler import S3App
from s3proxy.s3.operations import all_handlers
from s3proxy.storage import routing
from s3proxy.storage.backend import StorageBackend, StorageError
from s3proxy.storage.instrumented import InstrumentedBackend
from s3proxy.storage.multipart import run_sweeper
from s3proxy.storage.routing import RoutingBackend

log = logging.getLogger("s3proxy.app")

ADMIN_PREFIX = "/_s3proxy"
ADMIN_PATHS = frozenset(f"{ADMIN_PREFIX}/{name}" for name in ("health", "ready", "metrics"))


class Readiness:
    """Backend probes for /_s3proxy/ready, cached briefly so probes cannot overload them.

    With bucket routes every configured backend is probed and reported on its own.
    """

    def __init__(self, backend: StorageBackend, ttl: float) -> None:
        self.backend = backend
        self.ttl = ttl
        self._checked = -float("inf")
        self._details: dict[str, str] = {backend.name: "not checked"}
        self._lock = asyncio.Lock()

    async def _probe(self) -> dict[str, str]:
        if isinstance(self.backend, RoutingBackend):
            return await self.backend.readiness()
        try:
            await asyncio.wait_for(self.backend.check_ready(), timeout=5)
        except (StorageError, TimeoutError) as exc:
            return {self.backend.name: f"backend unavailable: {type(exc).__name__}"}
        return {self.backend.name: "ok"}

    async def check(self) -> tuple[bool, dict[str, str]]:
        async with self._lock:
            if time.monotonic() - self._checked >= self.ttl:
                self._details = await self._probe()
                self._checked = time.monotonic()
            return all(d == "ok" for d in self._details.values()), self._details


def _admin_response(body: dict[str, Any], status: int) -> Response[dict[str, Any]]:
    rid = new_request_id()
    return Response(body, status_code=status, headers={"x-amz-request-id": rid, "x-amz-id-2": rid})


class Drain:
    """Whether this worker is draining: the ``serve`` command creates the marker file on
    SIGTERM (``S3PROXY_DRAIN_FILE``) and closes the listener ``drain_seconds`` later."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._seen = False
        self._checked = -float("inf")

    def __call__(self) -> bool:
        if self.path is None or self._seen:
            return self._seen
        now = time.monotonic()
        if now - self._checked >= 0.1:  # at most ten stat() calls a second
            self._checked = now
            self._seen = os.path.exists(self.path)
        return self._seen


def _is_plain_metrics_scrape(scope: dict[str, Any]) -> bool:
    """``GET /metrics`` from a scraper: unsigned, no query. The same path signed (or with
    a query) is S3's ListObjects of a bucket named "metrics", which must keep working."""
    if scope.get("method") != "GET" or scope.get("query_string"):
        return False
    if (scope.get("raw_path") or b"").split(b"?", 1)[0] != b"/metrics":
        return False
    return not any(name.lower() == b"authorization" for name, _ in scope.get("headers", ()))


async def _send_metrics(send: Any) -> None:
    body, content_type = prometheus_text()
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_app(cfg: Config | None = None, backend: StorageBackend | None = None) -> App:
    """Build the app from the effective configuration (env / file when not given)."""
    if cfg is None:
        cfg = config_mod.load()
    setup_logging(cfg.logging.level, cfg.logging.format)
    setup_telemetry(cfg.telemetry.tracing)
    refresh_tracing()  # also a provider installed by whoever embeds the app
    plugins = make_plugin_manager(cfg.disable_plugins, config_mod.extra_plugins())
    if backend is None:
        backend = routing.build_backend(plugins, cfg)
    hooks = plugins.manager.hook
    authenticator = hooks.make_authenticator(config=cfg)
    authorizers = [a for a in hooks.make_authorizer(config=cfg) if a is not None]
    draining = Drain(os.environ.get(config_mod.ENV_DRAIN_FILE))
    served = plugins.wrap_backend(InstrumentedBackend(backend), cfg)
    sinks = plugins.event_sinks(cfg)
    s3 = S3App(served, all_handlers(), cfg, authenticator, authorizers, draining, sinks)
    readiness = Readiness(backend, cfg.server.ready_cache_seconds)

    @get(f"{ADMIN_PREFIX}/health", sync_to_thread=False)
    def health() -> Response[dict[str, Any]]:
        # Liveness: the process answers; independent of backend health.
        return _admin_response({"status": "ok"}, HTTP_200_OK)

    @get(f"{ADMIN_PREFIX}/ready")
    async def ready() -> Response[dict[str, Any]]:
        if draining():
            return _admin_response({"status": "draining"}, HTTP_503_SERVICE_UNAVAILABLE)
        ok, details = await readiness.check()
        status = HTTP_200_OK if ok else HTTP_503_SERVICE_UNAVAILABLE
        return _admin_response(
            {"status": "ready" if ok else "not ready", "backends": details},
            status,
        )

    @get(f"{ADMIN_PREFIX}/metrics", sync_to_thread=False)
    def metrics() -> Response[bytes]:
        body, content_type = prometheus_text()
        return Response(body, media_type=content_type)

    sweeper: list[asyncio.Task[None]] = []

    async def startup() -> None:
        # Through the layers: each starts what it holds, then what it wraps.
        await served.start()
        log.info("serving backend %s", backend.name)
        mp = cfg.multipart
        if mp.sweep_interval > 0:
            sweep = run_sweeper(backend, mp.expiry, mp.sweep_interval)
            sweeper.append(asyncio.create_task(sweep))

    async def shutdown() -> None:
        for task in sweeper:
            task.cancel()
        for sink in sinks:
            close = getattr(sink, "close", None)
            if close is not None:
                await close()  # deliver what is queued, bounded by the sink
        await served.close()

    admin = Litestar(
        route_handlers=[health, ready, metrics],
        on_startup=[startup],
        on_shutdown=[shutdown],
        openapi_config=None,
        logging_config=None,
    )
    return App(admin, s3)


class App:
    """The ASGI entry: S3 requests go straight to the S3 app; admin routes and the
    lifespan go through Litestar.

    Litestar's routing and exception middleware cost about a tenth of a small request, and
    the S3 app reads the raw path itself anyway (Litestar's path params lose ``%2F``,
    ``//`` and trailing slashes).
    """

    def __init__(self, admin: Litestar, s3: S3App) -> None:
        self.admin = admin
        self.s3 = s3

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in ADMIN_PATHS:
            await self.admin(scope, receive, send)
        elif _is_plain_metrics_scrape(scope):
            await _send_metrics(send)
        else:
            await self.s3(scope, receive, send)
