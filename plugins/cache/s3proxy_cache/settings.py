"""The cache's settings: ``S3PROXY_CACHE_*`` environment variables, over the
``[plugins.cache]`` section of the configuration file where the core has plugin sections.

Each variable (``S3PROXY_CACHE_<FIELD>``) or key maps to one field of ``CacheSettings``;
the core leaves ``S3PROXY_<plugin>_*`` variables of installed plugins alone. An unknown
name or a bad value is a ``ConfigError`` that names the variable or the key.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

from s3proxy.config import ConfigError, plugin_section, plugin_settings

ENV_PREFIX = "S3PROXY_CACHE_"
SECTION = "cache"
WHERE = f"plugins.{SECTION}"
KiB = 1024
MiB = 1024 * KiB
#: Redis refuses string values above 512 MB; a body is one value.
MAX_OBJECT_SIZE_LIMIT = 512 * 1000 * 1000

_SIZE = re.compile(r"^\s*(\d+)\s*(|b|k|kb|kib|m|mb|mib)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": KiB, "kb": 1000, "kib": KiB, "m": MiB, "mb": 1000**2, "mib": MiB}


class CacheSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """``S3PROXY_CACHE_<FIELD>``; the layer is on when ``url`` is set."""

    #: Redis URL: ``redis://[user:password@]host:port/db``, ``rediss://`` (TLS) or
    #: ``unix:///path/to/socket``. Setting it turns the cache on.
    url: str = ""
    #: Largest object (bytes; ``KiB``/``MiB`` suffixes allowed) whose body is cached.
    #: Metadata (HEAD) is cached for objects of any size.
    max_object_size: Annotated[int, msgspec.Meta(ge=0, le=MAX_OBJECT_SIZE_LIMIT)] = MiB
    #: Seconds an entry lives; also the bound on staleness after writes that bypass
    #: the proxy.
    ttl: Annotated[float, msgspec.Meta(gt=0)] = 300.0
    #: Buckets to cache, as comma separated globs (``photos,static-*``); default all.
    buckets: list[str] = msgspec.field(default_factory=lambda: ["*"])
    #: Seconds to wait for Redis per call before falling through to the backend.
    timeout: Annotated[float, msgspec.Meta(gt=0)] = 0.5
    #: Seconds to leave Redis alone after a failure before trying it again.
    retry_after: Annotated[float, msgspec.Meta(ge=0)] = 5.0
    #: Prefix of every Redis key, to share one Redis between deployments.
    key_prefix: str = "s3proxy:cache"

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    def caches_bucket(self, bucket: str) -> bool:
        return any(fnmatch.fnmatchcase(bucket, glob) for glob in self.buckets)

    def redacted_url(self) -> str:
        """``url`` without its password, for log lines."""
        parts = urlsplit(self.url)
        if parts.password is None:
            return self.url
        netloc = parts.netloc.rpartition("@")[2]
        user = f"{parts.username}:***@" if parts.username else ":***@"
        return urlunsplit(parts._replace(netloc=user + netloc))


def _size(name: str, raw: str) -> int:
    match = _SIZE.match(raw)
    if match is None:
        raise ConfigError(f"invalid {name}: {raw!r} is not a size (e.g. 1048576, 512KiB, 1MiB)")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def _value(field: str, value: Any, where: str) -> Any:
    """Strings (environment variables, or TOML strings) in each field's own syntax."""
    if not isinstance(value, str):
        return value
    if field == "max_object_size":
        return _size(where, value)
    if field == "buckets":
        return [g.strip() for g in value.split(",") if g.strip()] or ["*"]
    return value.strip()


def section(config: Any) -> Mapping[str, Any]:
    """The ``[plugins.cache]`` section, when the core configuration has plugin sections."""
    return plugin_section(config, SECTION)


def load(
    section: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> CacheSettings:
    """Settings from ``[plugins.cache]`` (``section``), overridden by ``S3PROXY_CACHE_*``
    variables; a ConfigError names the bad key or variable."""
    environ = os.environ if environ is None else environ
    raw, origin = plugin_settings(
        section or {},
        environ,
        fields=CacheSettings.__struct_fields__,
        where=WHERE,
        env_prefix=ENV_PREFIX,
    )
    raw = {field: _value(field, value, origin[field]) for field, value in raw.items()}
    try:
        settings = msgspec.convert(raw, CacheSettings, strict=False)
    except msgspec.ValidationError as exc:
        msg, _, at = str(exc).rpartition(" - at `$.")
        field = at.rstrip("`").split(".")[0].split("[")[0]
        raise ConfigError(f"invalid {origin.get(field, WHERE)}: {msg or exc}") from None
    if settings.url:
        scheme = urlsplit(settings.url).scheme
        if scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(
                f"invalid {origin['url']}: scheme must be redis://, rediss:// or unix://"
            )
    return settings
