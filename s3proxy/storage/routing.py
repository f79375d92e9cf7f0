"""Buckets on several backends: a default backend plus per-bucket routes.

::

    backend = "aws"                 # every bucket without a route

    [backends.aws]                  # settings shared by every use of the backend
    bucket = "main-bucket"

    [buckets.photos]                # the proxy bucket "photos" ...
    backend = "azure"               # ... lives on this backend,
    container = "photos"            # with these settings overriding [backends.azure]
    prefix = "tenant-a"

Each route gets its own backend instance, built by the backend's plugin from
``[backends.<backend>]`` with the route's keys laid over it and validated by the
plugin's settings Struct. A backend serving a fixed bucket (``dynamic_buckets`` False,
such as a cloud bucket) is addressed by its own bucket name; any other gets the route's
name. The bucket name, the cloud bucket and the prefix never reach the client: object
keys are passed through unchanged and errors carry no backend detail.

Routed buckets are configuration. They always exist: CreateBucket answers
BucketAlreadyOwnedByYou, DeleteBucket AccessDenied (nothing is deleted; remove the route
instead), and a route to a backend with dynamic buckets creates its bucket at start-up.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from s3proxy.config import ConfigError, convert
from s3proxy.storage.backend import (
    BackendUnavailable,
    BucketAlreadyExists,
    BucketInfo,
    GetResult,
    ObjectInfo,
    PutBody,
    PutMode,
    ReadPlan,
    StorageBackend,
    StorageError,
)

if TYPE_CHECKING:
    from s3proxy.config import Config
    from s3proxy.plugins import Plugins

_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
READY_TIMEOUT = 5.0


class BucketConfigured(StorageError):
    """CreateBucket/DeleteBucket of a bucket that exists by configuration (AccessDenied)."""

    code = "AccessDenied"

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


@dataclass(slots=True)
class Route:
    name: str
    backend: StorageBackend
    #: The backend's name as configured (``[buckets.<name>] backend``).
    kind: str
    #: The bucket name to use inside ``backend`` (resolved at start).
    inner: str = ""


class RoutingBackend:
    """A StorageBackend that sends each bucket to its configured backend."""

    def __init__(self, default: StorageBackend, default_kind: str, routes: list[Route]) -> None:
        self.default = default
        self.default_kind = default_kind
        self.routes = {r.name: r for r in routes}
        kinds = sorted({default_kind, *(r.kind for r in routes)})
        self.name = "+".join(kinds)
        self.capabilities = default.capabilities

    def _pick(self, bucket: str) -> tuple[StorageBackend, str]:
        route = self.routes.get(bucket)
        return (self.default, bucket) if route is None else (route.backend, route.inner)

    def _backends(self) -> builtins.list[StorageBackend]:
        return [self.default, *(r.backend for r in self.routes.values())]

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        for backend in self._backends():
            await backend.start()
        for route in self.routes.values():
            if route.backend.capabilities.dynamic_buckets:
                route.inner = route.name
                with contextlib.suppress(BucketAlreadyExists):
                    await route.backend.create_bucket(route.name)
            else:
                own = await route.backend.list_buckets()
                if len(own) != 1:
                    raise ConfigError(
                        f"invalid config buckets.{route.name}: backend {route.kind} "
                        f"serves {len(own)} buckets, a route needs exactly one"
                    )
                route.inner = own[0].name

    async def close(self) -> None:
        for backend in self._backends():
            await backend.close()

    async def readiness(self) -> dict[str, str]:
        """Probe every backend: {"default (aws)": "ok", "bucket photos (azure)": ...}."""
        labelled = {f"default ({self.default_kind})": self.default}
        for route in self.routes.values():
            labelled[f"bucket {route.name} ({route.kind})"] = route.backend

        async def probe(backend: StorageBackend) -> str:
            try:
                await asyncio.wait_for(backend.check_ready(), READY_TIMEOUT)
            except (StorageError, TimeoutError) as exc:
                return f"unavailable: {type(exc).__name__}"
            return "ok"

        results = await asyncio.gather(*(probe(b) for b in labelled.values()))
        return dict(zip(labelled, results, strict=True))

    async def check_ready(self) -> None:
        failed = [label for label, state in (await self.readiness()).items() if state != "ok"]
        if failed:
            raise BackendUnavailable(", ".join(failed))

    # -- buckets -----------------------------------------------------------------------

    async def list_buckets(self) -> builtins.list[BucketInfo]:
        found = {b.name: b for b in await self.default.list_buckets() if b.name not in self.routes}
        for route in self.routes.values():
            info = await route.backend.head_bucket(route.inner)
            found[route.name] = BucketInfo(name=route.name, created=info.created)
        return [found[name] for name in sorted(found)]

    async def create_bucket(self, bucket: str) -> None:
        if bucket in self.routes:
            raise BucketAlreadyExists()
        await self.default.create_bucket(bucket)

    async def head_bucket(self, bucket: str) -> BucketInfo:
        backend, inner = self._pick(bucket)
        info = await backend.head_bucket(inner)
        return BucketInfo(name=bucket, created=info.created)

    async def delete_bucket(self, bucket: str) -> None:
        if bucket in self.routes:
            raise BucketConfigured(f"bucket {bucket} is configured; remove its route instead")
        await self.default.delete_bucket(bucket)

    # -- objects -----------------------------------------------------------------------

    async def head(self, bucket: str, key: str, *, namespace: str = "") -> ObjectInfo:
        backend, inner = self._pick(bucket)
        return await backend.head(inner, key, namespace=namespace)

    async def get(
        self, bucket: str, key: str, plan: ReadPlan | None = None, *, namespace: str = ""
    ) -> GetResult:
        backend, inner = self._pick(bucket)
        return await backend.get(inner, key, plan, namespace=namespace)

    async def put(
        self,
        bucket: str,
        key: str,
        body: PutBody,
        *,
        namespace: str = "",
        mode: PutMode = "overwrite",
        if_match: str | None = None,
    ) -> ObjectInfo:
        backend, inner = self._pick(bucket)
        return await backend.put(
            inner, key, body, namespace=namespace, mode=mode, if_match=if_match
        )

    async def delete(self, bucket: str, key: str, *, namespace: str = "") -> None:
        backend, inner = self._pick(bucket)
        await backend.delete(inner, key, namespace=namespace)

    async def list(
        self,
        bucket: str,
        prefix: str = "",
        start_after: str = "",
        delimiter: str = "",
        *,
        namespace: str = "",
    ) -> AsyncIterator[ObjectInfo | str]:
        backend, inner = self._pick(bucket)
        async for entry in backend.list(inner, prefix, start_after, delimiter, namespace=namespace):
            yield entry


def build_routes(plugins: Plugins, cfg: Config) -> builtins.list[Route]:
    """Validate ``[buckets.<name>]`` and build each route's backend (no I/O)."""
    routes: builtins.list[Route] = []
    for name, raw in sorted(cfg.buckets.items()):
        where = f"buckets.{name}"
        if not _BUCKET_NAME.match(name) or ".." in name:
            raise ConfigError(f"invalid config {where}: not a valid S3 bucket name")
        if not isinstance(raw, dict):
            raise ConfigError(f"invalid config {where}: Expected `object`")
        overrides: dict[str, Any] = dict(raw)
        kind = overrides.pop("backend", None)
        if not isinstance(kind, str) or not kind:
            raise ConfigError(f"invalid config {where}.backend: a route names its backend")
        spec = plugins.backends.get(kind)
        if spec is None:
            known = ", ".join(sorted(plugins.backends)) or "none"
            raise ConfigError(
                f"invalid config {where}.backend: unknown backend {kind!r} (known: {known})"
            )
        settings = {**cfg.backends.get(kind, {}), **overrides}
        if spec.config is None:
            if overrides:
                raise ConfigError(f"invalid config {where}: backend {kind} takes no settings")
            backend = spec.factory(None)
        else:
            backend = spec.factory(convert(settings, spec.config, where))
        routes.append(Route(name=name, backend=backend, kind=kind))
    return routes


def build_backend(plugins: Plugins, cfg: Config) -> StorageBackend:
    """The backend the S3 layer uses: the default one, wrapped when routes exist."""
    default = plugins.build_backend(cfg.backend, cfg)
    routes = build_routes(plugins, cfg)
    return RoutingBackend(default, cfg.backend, routes) if routes else default
