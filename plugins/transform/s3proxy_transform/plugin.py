"""Entry point module of s3proxy-transform: the ``wrap_backend`` storage layer.

Registered ``tryfirst`` so that it sits closest to the storage: every other layer (a
cache, say) sees and keeps plaintext, and only ciphertext reaches the backend. With no
``[plugins.transform]`` settings the plugin does nothing.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from s3proxy.config import Config
from s3proxy.hookspecs import hookimpl
from s3proxy.storage.backend import PutBody, StorageBackend
from s3proxy_transform import settings as settings_mod
from s3proxy_transform.keys import make_provider
from s3proxy_transform.layer import TransformBackend

log = logging.getLogger("s3proxy.transform")


def build(backend: StorageBackend, raw: Mapping[str, Any]) -> TransformBackend | None:
    """The layer over ``backend`` for a raw settings section; None when not enabled."""
    settings = settings_mod.parse(raw)
    if not settings.enabled:
        return None
    keys = make_provider(settings)
    if settings.compress_types and "metadata" not in {f.name for f in dataclasses.fields(PutBody)}:
        log.warning(
            "compress_types is set but this s3proxy does not tell layers an upload's "
            "content type (PutBody.metadata): objects are stored uncompressed"
        )
    log.info(
        "at-rest encryption for buckets %s (key provider %s, compression for %s)",
        settings.buckets or "none (reads only)",
        settings.key_provider,
        settings.compress_types or "no content type",
    )
    return TransformBackend(backend, settings, keys)


@hookimpl(tryfirst=True)
def wrap_backend(backend: StorageBackend, config: Config) -> StorageBackend | None:
    raw = settings_mod.section(config)
    return None if raw is None else build(backend, raw)
