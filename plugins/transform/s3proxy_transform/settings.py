"""Settings of the transform layer: the ``[plugins.transform]`` section of the config.

In the TOML file::

    [plugins.transform]
    buckets = ["secure-*", "logs"]      # globs of the buckets whose new objects are encrypted
    key_file = "/run/secrets/s3proxy-transform-key"
    compress_types = ["text/*", "application/json"]

or from the environment: ``S3PROXY_PLUGINS__TRANSFORM__BUCKETS="secure-*,logs"``,
``S3PROXY_PLUGINS__TRANSFORM__KEY=<base64 of 32 bytes>``, and so on (lists comma
separated). Key material is never logged nor shown in errors or ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from s3proxy.config import Config, ConfigError, convert
from s3proxy_transform.chunks import DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE

SECTION = "transform"
WHERE = f"plugins.{SECTION}"
MIN_CHUNK_SIZE = 4096
_LIST_FIELDS = ("buckets", "previous_keys", "compress_types")


class TransformSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: Globs of the bucket names whose new objects are encrypted (``*`` for all).
    #: Objects of other buckets, and objects written before, are stored as they come;
    #: every object the layer wrote stays readable whatever this list says later.
    buckets: list[str] = []
    #: The master key: base64 of 32 random bytes (``openssl rand -base64 32``). Secret.
    key: str = ""
    #: A file holding the master key instead: base64 text (one key per line, the first
    #: is current, the others are previous keys) or exactly 32 raw bytes.
    key_file: str = ""
    #: Former master keys (base64), still accepted to read objects after a rotation.
    previous_keys: list[str] = []
    #: ``static`` (the keys above) or the name of a key provider plugin (entry point
    #: group ``s3proxy_transform.key_providers``), or ``module:factory``.
    key_provider: str = "static"
    #: Settings passed to a key provider plugin (e.g. a KMS key ARN).
    key_provider_options: dict[str, str] = {}
    #: Content types compressed with zstd before encryption (globs, e.g. ``text/*``).
    compress_types: list[str] = []
    #: zstd level (1-22; 3 is zstd's default balance of speed and ratio).
    compress_level: int = 3
    #: Plaintext bytes per encrypted chunk: a range read decrypts whole chunks.
    chunk_size: int = DEFAULT_CHUNK_SIZE

    def __repr__(self) -> str:
        hidden = "<hidden>" if self.key or self.previous_keys else "''"
        return (
            f"TransformSettings(buckets={self.buckets!r}, key={hidden}, "
            f"key_file={self.key_file!r}, key_provider={self.key_provider!r}, "
            f"compress_types={self.compress_types!r}, chunk_size={self.chunk_size})"
        )

    @property
    def enabled(self) -> bool:
        """Whether the layer is wanted at all (any key source or bucket configured)."""
        return bool(self.buckets or self.key or self.key_file or self.key_provider != "static")

    def encrypts(self, bucket: str) -> bool:
        return any(fnmatch.fnmatchcase(bucket, pattern) for pattern in self.buckets)

    def compresses(self, content_type: str | None) -> bool:
        if not content_type or not self.compress_types:
            return False
        media = content_type.split(";", 1)[0].strip().lower()
        return any(fnmatch.fnmatchcase(media, pattern) for pattern in self.compress_types)

    def master_keys(self) -> list[bytes]:
        """The static master keys, current first (reads ``key_file``)."""
        keys: list[bytes] = []
        if self.key:
            keys.append(_decode_key(self.key, "key"))
        if self.key_file:
            keys.extend(_read_key_file(self.key_file))
        keys.extend(_decode_key(k, f"previous_keys[{i}]") for i, k in enumerate(self.previous_keys))
        if not keys:
            raise ConfigError(
                f"invalid config {WHERE}: no master key (set key or key_file, "
                "or choose a key_provider)"
            )
        return keys


def _decode_key(value: str, name: str) -> bytes:
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        # Never echo the value: it is (or is meant to be) a secret.
        raise ConfigError(f"invalid config {WHERE}.{name}: expected base64 of 32 bytes")
    return raw


def _read_key_file(path: str) -> list[bytes]:
    where = f"{WHERE}.key_file"
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise ConfigError(f"invalid config {where}: cannot read {path}: {exc.strerror}") from None
    if len(data) == 32:
        return [data]
    try:
        lines = [line.strip() for line in data.decode("ascii").splitlines() if line.strip()]
    except UnicodeDecodeError:
        lines = []
    if not lines:
        raise ConfigError(f"invalid config {where}: expected base64 keys or 32 raw bytes")
    return [_decode_key(line, f"key_file line {i + 1}") for i, line in enumerate(lines)]


def parse(raw: Mapping[str, Any]) -> TransformSettings:
    """Validate a raw section (from TOML or the environment) into settings."""
    data = dict(raw)
    for name in _LIST_FIELDS:
        value = data.get(name)
        if isinstance(value, str):  # from the environment: comma separated
            data[name] = [v.strip() for v in value.split(",") if v.strip()]
    settings: TransformSettings = convert(data, TransformSettings, WHERE)
    if settings.key and settings.key_file:
        raise ConfigError(f"invalid config {WHERE}: set key or key_file, not both")
    if not MIN_CHUNK_SIZE <= settings.chunk_size <= MAX_CHUNK_SIZE:
        raise ConfigError(
            f"invalid config {WHERE}.chunk_size: expected {MIN_CHUNK_SIZE} to {MAX_CHUNK_SIZE}"
        )
    if not 1 <= settings.compress_level <= 22:
        raise ConfigError(f"invalid config {WHERE}.compress_level: expected 1 to 22")
    settings.compress_types = [t.strip().lower() for t in settings.compress_types]
    if settings.key_provider == "static" and settings.enabled:
        settings.master_keys()  # fail at start, not on the first request
    return settings


def section(config: Config) -> Mapping[str, Any] | None:
    """The raw ``[plugins.transform]`` section, or None when there is none.

    Read from ``Config.plugins`` (per-plugin sections validated by their plugin).
    """
    sections = getattr(config, "plugins", None)
    if not isinstance(sections, Mapping):
        return None
    raw = sections.get(SECTION)
    return raw if isinstance(raw, Mapping) else None
