"""Entry point module of s3proxy-example-backend: the ``example`` backend.

A template for third-party backends (docs/plugins.md walks through it). The backend
keeps its buckets in an obstore store named by a URL:

- ``file:///srv/s3/tenant-a``: files under that directory (created if missing);
- ``memory:///``: process memory, for tests.

It goes through ``ObstoreBackend``, the core's adapter from any obstore store to the
``StorageBackend`` contract, so every S3 feature (metadata, conditional writes,
multipart, listings) works without code here. A backend for a store obstore does not
support implements ``s3proxy.storage.backend.StorageBackend`` itself instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import msgspec
from obstore.store import LocalStore, MemoryStore

from s3proxy.config import ConfigError
from s3proxy.hookspecs import RegisterBackend, hookimpl
from s3proxy.storage.objectstore import ObstoreBackend

NAME = "example"


class ExampleSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``[backends.example]``, or ``S3PROXY_BACKENDS__EXAMPLE__URL=...`` from the env.

    The core validates the section against this Struct before calling the factory, so
    unknown fields and wrong types are reported with the field's name.
    """

    #: Where the buckets live: ``file:///absolute/dir`` or ``memory:///``.
    url: str = ""


def _store_factory(url: str) -> tuple[Any, bool]:
    """(factory building the obstore store, whether it is a directory tree)."""
    parts = urlsplit(url)
    if parts.scheme == "memory":
        return MemoryStore, False
    if parts.scheme == "file" and parts.netloc in ("", "localhost") and parts.path:
        root = Path(unquote(parts.path))

        def local() -> LocalStore:
            root.mkdir(parents=True, exist_ok=True)
            return LocalStore(root, automatic_cleanup=True)

        return local, True
    raise ConfigError(
        f"invalid config backends.{NAME}.url: expected file:///<absolute dir> or "
        f"memory:///, got {url!r}"
    )


def make_backend(settings: ExampleSettings) -> ObstoreBackend:
    """The factory ``register`` gets: settings in, an unstarted backend out.

    No I/O here: the core builds backends before forking workers, and obstore stores
    are not fork-safe. ``ObstoreBackend`` calls the store factory lazily, in the worker
    (its ``start()``).
    """
    if not settings.url:
        raise ConfigError(f"invalid config backends.{NAME}.url: required")
    factory, tree = _store_factory(settings.url)
    # A directory tree needs the filesystem key layout (keys like "a//b" or "../x" are
    # escaped) and does not list in key order; object stores list sorted.
    return ObstoreBackend(NAME, factory, filesystem=tree, sorted_listing=False)


@hookimpl
def register_backends(register: RegisterBackend) -> None:
    register(
        NAME,
        make_backend,
        config=ExampleSettings,
        description="example plugin: buckets in an obstore store named by URL",
    )
