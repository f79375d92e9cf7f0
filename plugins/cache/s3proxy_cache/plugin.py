"""Entry point module of the s3proxy-cache plugin: the ``wrap_backend`` hook.

Not ``tryfirst``: the cache wraps around the layers that change what is stored
(transforms), so it keeps the bytes and metadata exactly as clients see them.
"""

from __future__ import annotations

import logging

from s3proxy.config import Config
from s3proxy.hookspecs import hookimpl
from s3proxy.storage.backend import StorageBackend
from s3proxy_cache import settings as settings_mod
from s3proxy_cache.layer import CacheLayer

log = logging.getLogger("s3proxy.cache")


@hookimpl
def wrap_backend(backend: StorageBackend, config: Config) -> StorageBackend | None:
    """A CacheLayer around ``backend`` when a Redis URL is configured."""
    settings = settings_mod.load(settings_mod.section(config))
    if not settings.enabled:
        return None
    log.info(
        "cache: Redis at %s, objects up to %d bytes, TTL %gs, buckets %s",
        settings.redacted_url(),
        settings.max_object_size,
        settings.ttl,
        ",".join(settings.buckets),
    )
    return CacheLayer(backend, settings)
