"""s3proxy-cache: a read-through Redis cache of small objects and HEAD metadata, as an
s3proxy storage layer (``wrap_backend``). See README.md for settings and limits."""

from s3proxy_cache.layer import CacheLayer
from s3proxy_cache.settings import CacheSettings

__all__ = ["CacheLayer", "CacheSettings"]
