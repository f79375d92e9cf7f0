"""The s3proxy extension contract: every pluggy hook the core calls.

Plugins are modules (or objects) with functions named after these specs and marked
with ``s3proxy.hookimpl``. Third-party plugins are found through the Python entry point
group ``s3proxy``; the core's own default behaviour is implemented as plugins through
the same hooks (see ``s3proxy.storage.builtin``).

pluggy hooks are synchronous: they are called once at start-up and return objects
(backends, async callables) that the core wires into the request path. No hook is
called per request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import pluggy

if TYPE_CHECKING:
    from s3proxy.auth import Principal
    from s3proxy.config import Config
    from s3proxy.events import EventSink
    from s3proxy.s3.http import S3Request
    from s3proxy.storage.backend import StorageBackend

PROJECT = "s3proxy"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: ``register(name, factory, config=None, description="")`` as passed to
#: :func:`register_backends`. ``factory(settings)`` builds the backend from an instance
#: of ``config`` (a ``msgspec.Struct`` type validated from ``[backends.<name>]``), or
#: from ``None`` when the backend takes no settings.
RegisterBackend = Callable[..., None]


# -- start-up ------------------------------------------------------------------------


@hookspec
def register_backends(register: RegisterBackend) -> None:
    """Register the storage backends this plugin provides.

    Called once when the plugin manager is built, before the configuration is
    validated, so that each backend's settings section can be checked against the
    ``config`` Struct it registers.

    :param register: call ``register(name, factory, config=SettingsStruct,
        description="...")`` once per backend. ``name`` is what users select with
        ``--backend`` / ``S3PROXY_BACKEND``; it must be unique across all plugins.
        ``factory(settings)`` must not open network connections or files: the core
        calls the backend's ``start()`` in each worker process for that.
    """


class Authenticator(Protocol):
    """Turns a request into a Principal, or raises ``S3Error`` (e.g. AccessDenied)."""

    async def authenticate(self, req: S3Request) -> Principal: ...


class Authorizer(Protocol):
    """Raises ``S3Error("AccessDenied")`` when ``principal`` may not make ``req``."""

    async def authorize(self, principal: Principal, req: S3Request) -> None: ...


# -- requests ------------------------------------------------------------------------


@hookspec(firstresult=True)
def make_authenticator(config: Config) -> Authenticator | None:
    """Return the authenticator for every S3 request (called once per worker at start).

    The first plugin to return one wins; the built-in SigV4 authenticator
    (``s3proxy.auth``) is registered ``trylast``, so any installed plugin that returns
    an authenticator replaces it. Return None to leave the choice to other plugins.

    :param config: the validated configuration.
    """


@hookspec
def make_authorizer(config: Config) -> Authorizer | None:
    """Return an authorizer, or None (called once per worker at start).

    Every returned authorizer is asked, in turn, before each operation runs; any of
    them can deny. The built-in one applies the per-key policy and anonymous rules, so
    a plugin's authorizer adds restrictions (e.g. a source-address allow-list).

    :param config: the validated configuration.
    """


# -- layers --------------------------------------------------------------------------


@hookspec
def wrap_backend(backend: StorageBackend, config: Config) -> StorageBackend | None:
    """Return a backend that wraps ``backend`` (a storage layer), or None to leave it.

    Called once per worker at start. Layers that change what is stored or how it is
    read (a read cache, at-rest encryption or compression) wrap the backend the S3
    handlers use, so every S3 semantic (ranges, conditionals, listings, multipart)
    keeps working on top of them. Implementations are chained: each receives the
    previous one's result. ``tryfirst`` implementations wrap first, i.e. sit closest to
    the storage (transforms); the rest wrap around them (caches).

    A layer may keep its own per-object data in ``ObjectMetadata.layers`` (stored with
    the object). It must report sizes, ETags and ranges as the client sees the object.

    :param backend: the backend to wrap (possibly already wrapped).
    :param config: the validated configuration.
    """


@hookspec
def make_event_sink(config: Config) -> EventSink | None:
    """Return a sink for S3 event notifications, or None (called once per worker).

    Every sink receives each event (``s3proxy.events.S3Event``: ObjectCreated:Put,
    :Post, :Copy, :CompleteMultipartUpload, ObjectRemoved:Delete) after the change has
    committed. ``publish`` is called on the request path and must only enqueue.

    :param config: the validated configuration.
    """


__all__ = [
    "PROJECT",
    "Authenticator",
    "Authorizer",
    "RegisterBackend",
    "hookimpl",
    "hookspec",
    "make_authenticator",
    "make_authorizer",
    "make_event_sink",
    "register_backends",
    "wrap_backend",
]
