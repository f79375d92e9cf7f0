"""Litestar application factory: admin routes under /_s3proxy and the S3 mount."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from litestar import Litestar, Response, asgi, get
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from s3proxy import config as config_mod
from s3proxy.config import Config
from s3proxy.observability import new_request_id, setup_logging
from s3proxy.plugins import make_plugin_manager
from s3proxy.s3.handler import S3App
from s3proxy.s3.operations import all_handlers
from s3proxy.storage.backend import StorageBackend, StorageError

log = logging.getLogger("s3proxy.app")

ADMIN_PREFIX = "/_s3proxy"


class Readiness:
    """Backend probe for /_s3proxy/ready, cached briefly so probes cannot overload it."""

    def __init__(self, backend: StorageBackend, ttl: float) -> None:
        self.backend = backend
        self.ttl = ttl
        self._checked = -float("inf")
        self._ok = False
        self._detail = "not checked"
        self._lock = asyncio.Lock()

    async def check(self) -> tuple[bool, str]:
        async with self._lock:
            if time.monotonic() - self._checked >= self.ttl:
                try:
                    await asyncio.wait_for(self.backend.check_ready(), timeout=5)
                    self._ok, self._detail = True, "ok"
                except (StorageError, TimeoutError) as exc:
                    self._ok, self._detail = False, f"backend unavailable: {type(exc).__name__}"
                self._checked = time.monotonic()
            return self._ok, self._detail


def _admin_response(body: dict[str, Any], status: int) -> Response[dict[str, Any]]:
    rid = new_request_id()
    return Response(body, status_code=status, headers={"x-amz-request-id": rid, "x-amz-id-2": rid})


def create_app(cfg: Config | None = None, backend: StorageBackend | None = None) -> Litestar:
    """Build the app from the effective configuration (env / file when not given)."""
    if cfg is None:
        cfg = config_mod.load()
    setup_logging(cfg.logging.level, cfg.logging.format)
    if backend is None:
        plugins = make_plugin_manager(cfg.disable_plugins, config_mod.extra_plugins())
        backend = plugins.build_backend(cfg.backend, cfg)
    s3 = S3App(backend, all_handlers(), cfg)
    readiness = Readiness(backend, cfg.server.ready_cache_seconds)

    @get(f"{ADMIN_PREFIX}/health", sync_to_thread=False)
    def health() -> Response[dict[str, Any]]:
        # Liveness: the process answers; independent of backend health.
        return _admin_response({"status": "ok"}, HTTP_200_OK)

    @get(f"{ADMIN_PREFIX}/ready")
    async def ready() -> Response[dict[str, Any]]:
        ok, detail = await readiness.check()
        status = HTTP_200_OK if ok else HTTP_503_SERVICE_UNAVAILABLE
        return _admin_response(
            {"status": "ready" if ok else "not ready", "backends": {backend.name: detail}},
            status,
        )

    @asgi("/", is_mount=True, copy_scope=False)
    async def s3_mount(scope: Any, receive: Any, send: Any) -> None:
        await s3(scope, receive, send)

    async def startup() -> None:
        await backend.start()
        log.info("serving backend %s", backend.name)

    async def shutdown() -> None:
        await backend.close()

    return Litestar(
        route_handlers=[health, ready, s3_mount],
        on_startup=[startup],
        on_shutdown=[shutdown],
        openapi_config=None,
        logging_config=None,
    )
