"""Configuration: one msgspec Struct tree.

Sources, highest first: environment variables ``S3PROXY_<FIELD>`` (nested fields joined
with ``__``, e.g. ``S3PROXY_SERVER__PORT=9000``, lists comma separated), the TOML file
named by ``--config`` / ``S3PROXY_CONFIG``, then the defaults below. Unknown keys and
wrong types are errors that name the field. ``S3PROXY_<PLUGIN>_<SETTING>`` variables,
where ``<plugin>`` names an installed plugin (entry point group ``s3proxy``) and is not
a field of the tree, are that plugin's own settings (e.g. ``S3PROXY_CACHE_URL``).

Backend settings live under ``[backends.<name>]`` and are validated against the Struct
that the backend's plugin registered (see ``hookspecs.register_backends``).
"""

from __future__ import annotations

import importlib.metadata
import os
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal

import msgspec

ENV_PREFIX = "S3PROXY_"
# Environment variables that steer start-up rather than fill the tree.
ENV_CONFIG_FILE = "S3PROXY_CONFIG"
ENV_PLUGINS = "S3PROXY_PLUGINS"
# Set by ``s3proxy serve`` for its workers: the marker file that announces draining.
ENV_DRAIN_FILE = "S3PROXY_DRAIN_FILE"
# Read by the test suite: a missing emulator fails instead of skipping its lane.
ENV_REQUIRE_EMULATORS = "S3PROXY_REQUIRE_EMULATORS"
_NOT_TREE = {ENV_CONFIG_FILE, ENV_PLUGINS, ENV_DRAIN_FILE, ENV_REQUIRE_EMULATORS}


class ConfigError(Exception):
    """Invalid configuration; the message names the field and what was expected."""


class ServerConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: Bind address; anything but loopback requires credentials (see ``[auth]``).
    host: str = "127.0.0.1"
    #: Bind port.
    port: int = 8080
    #: Worker processes; one per container is the norm (scale with replicas).
    workers: int = 1
    # Seconds in-flight requests get to finish after SIGTERM.
    shutdown_grace: float = 30.0
    # How long /_s3proxy/ready caches a backend probe.
    ready_cache_seconds: float = 2.0
    #: Take the request id from this request header (e.g. "x-request-id") when a
    #: trusted front proxy sets it; empty: always generate one.
    request_id_header: str = ""
    #: After SIGTERM, seconds to keep answering (readiness 503, new S3 requests 503)
    #: before the listener closes, so load balancers stop sending traffic first.
    drain_seconds: float = 0.0


class LimitsConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Protection against oversize, slow and abusive requests (0 turns a limit off)."""

    #: Largest object body (PutObject, UploadPart, POST) in bytes; S3 allows 5 GiB.
    max_object_size: int = 5 * 1024**3
    #: Largest request line path + query, and header section, in bytes.
    max_url_bytes: int = 8192
    #: Largest request header section, in bytes.
    max_header_bytes: int = 16384
    #: Requests served at once per worker; more are shed with 503 SlowDown.
    max_concurrent_requests: int = 1024
    #: Requests per second per client address (token bucket of ``rate_burst``).
    rate_per_client: float = 0.0
    #: Requests a client may make at once before the rate applies.
    rate_burst: int = 200
    #: Seconds the server waits for request headers (HTTP/1).
    header_timeout: float = 30.0
    #: Seconds a request body may stall between two chunks.
    body_idle_timeout: float = 60.0
    #: Seconds a non-streaming operation (listing, bucket calls, deletes) may take.
    request_timeout: float = 300.0


class TelemetryConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: Export spans over OTLP (configured by the standard OTEL_EXPORTER_OTLP_* vars).
    tracing: bool = False
    #: Put the bucket name on spans (it may be sensitive or high-cardinality).
    span_bucket_attribute: bool = False
    #: Compress XML responses (never object bodies) for clients that accept gzip.
    compress_xml: bool = True


class CorsConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """CORS for browser clients; no origin is allowed unless listed."""

    #: Origins allowed to call the proxy: exact, "*" or one wildcard such as
    #: "https://*.example.com".
    allowed_origins: list[str] = msgspec.field(default_factory=list)
    #: Methods a browser may use.
    allowed_methods: list[str] = msgspec.field(
        default_factory=lambda: ["GET", "PUT", "POST", "DELETE", "HEAD"]
    )
    #: Request headers a browser may send ("*" allows any).
    allowed_headers: list[str] = msgspec.field(default_factory=lambda: ["*"])
    #: Response headers scripts may read.
    expose_headers: list[str] = msgspec.field(
        default_factory=lambda: ["ETag", "x-amz-request-id", "x-amz-version-id", "Content-Range"]
    )
    #: Seconds a browser may cache a preflight answer.
    max_age: int = 3000


class S3Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: Region reported to clients (GetBucketLocation, x-amz-bucket-region).
    region: str = "us-east-1"
    #: Domains under which virtual-host style requests (``bucket.<domain>``) arrive;
    #: requests to the domain itself are path style.
    base_domains: list[str] = msgspec.field(default_factory=list)
    cors: CorsConfig = msgspec.field(default_factory=CorsConfig)


class LoggingConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: Lowest level logged.
    level: Literal["debug", "info", "warning", "error"] = "info"
    # "auto": human-readable on a terminal, JSON lines otherwise.
    format: Literal["auto", "json", "text"] = "auto"


class MultipartConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: Smallest size of a part other than the last (S3: 5 MiB; lower it only for tests).
    min_part_size: int = 5 * 1024 * 1024
    #: Seconds after which an unfinished upload and its parts are removed by the sweep.
    expiry: float = 7 * 24 * 3600.0
    #: Seconds between background expiry sweeps in each proxy process; 0 turns them off
    #: (run ``s3proxy gc`` instead).
    sweep_interval: float = 3600.0
    #: Seconds CompleteMultipartUpload waits for its outcome before answering 200 and
    #: sending whitespace at this interval while the object is assembled.
    keepalive: float = 5.0


class CredentialConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """An S3 access key the operator issues to clients, with an optional policy."""

    #: The access key id clients sign with (appears in the audit log).
    access_key_id: str
    #: Its secret (never logged or printed).
    secret_access_key: str
    #: Buckets this key may use (shell-style patterns; "*" for all).
    buckets: list[str] = msgspec.field(default_factory=lambda: ["*"])
    #: Only Get*/List*/Head* operations.
    read_only: bool = False
    #: S3 operations allowed (e.g. ["GetObject", "PutObject"]); empty allows all.
    operations: list[str] = msgspec.field(default_factory=list)


class AuthConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Client authentication (SigV4) and authorization.

    With no credentials configured the proxy only starts on a loopback address (and then
    accepts every request, for local development) unless ``anonymous`` is set.
    """

    #: Unsigned requests: "none" (refused), "read" (Get/List/Head only), "full".
    anonymous: Literal["none", "read", "full"] = "none"
    #: Buckets unsigned requests may read even when ``anonymous`` is "none".
    public_read_buckets: list[str] = msgspec.field(default_factory=list)
    #: One credential from the environment (S3PROXY_AUTH__ACCESS_KEY_ID / ..._SECRET...).
    access_key_id: str = ""
    #: The secret of ``access_key_id`` (never logged or printed).
    secret_access_key: str = ""
    #: Access keys with optional policies (``[[auth.credentials]]`` tables).
    credentials: list[CredentialConfig] = msgspec.field(default_factory=list)
    #: TOML file of ``[[credentials]]`` tables (e.g. a mounted Kubernetes Secret);
    #: re-read when it changes.
    credentials_file: str = ""
    #: Largest clock difference accepted for signed requests (S3: 15 minutes).
    max_skew_seconds: int = 900
    #: Put StringToSign and CanonicalRequest in SignatureDoesNotMatch errors.
    debug_signatures: bool = False
    #: Also accept legacy Signature Version 2 (header and query string), for older
    #: tools and boto3's default presigned URLs in us-east-1.
    allow_sigv2: bool = False
    #: Accept browser form uploads (PostObject with a signed POST policy).
    allow_presigned_post: bool = False


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: Name of the default storage backend (see ``s3proxy plugins``).
    backend: str = "local"
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    s3: S3Config = msgspec.field(default_factory=S3Config)
    logging: LoggingConfig = msgspec.field(default_factory=LoggingConfig)
    multipart: MultipartConfig = msgspec.field(default_factory=MultipartConfig)
    auth: AuthConfig = msgspec.field(default_factory=AuthConfig)
    limits: LimitsConfig = msgspec.field(default_factory=LimitsConfig)
    telemetry: TelemetryConfig = msgspec.field(default_factory=TelemetryConfig)
    #: Plugins not to load, by name (``s3proxy plugins`` shows the names).
    disable_plugins: list[str] = msgspec.field(default_factory=list)
    #: Settings per backend name, validated by the backend's own Struct.
    backends: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    #: Settings of layer plugins (``[plugins.<name>]``, e.g.
    #: ``S3PROXY_PLUGINS__TRANSFORM__KEY``), validated by each plugin.
    plugins: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    #: Per-bucket routes: ``[buckets.<name>]`` with ``backend = "<name>"`` plus settings
    #: that override ``[backends.<name>]`` for this bucket (see storage/routing.py).
    buckets: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)


# Field names whose values are secrets: redacted by ``s3proxy config``.
SECRET_WORDS = ("secret", "password", "token", "key", "credential", "sas", "connection_string")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _field_type(struct: Any, path: list[str]) -> Any:
    """The annotated type at a dotted path of the Config tree (Any when unknown)."""
    tp: Any = struct
    for name in path:
        origin = typing.get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
            hints = typing.get_type_hints(tp)
            if name not in hints:
                return Any
            tp = hints[name]
        elif origin is dict:
            tp = typing.get_args(tp)[1]
        else:
            return Any
    return tp


def _is_list(tp: Any) -> bool:
    if typing.get_origin(tp) in (list, tuple, set):
        return True
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return any(_is_list(a) for a in typing.get_args(tp))
    return False


def _plugin_env_prefixes() -> tuple[str, ...]:
    """``S3PROXY_<NAME>_`` for every installed plugin: variables a plugin reads itself."""
    names = {ep.name for ep in importlib.metadata.entry_points(group="s3proxy")}
    return tuple(f"{ENV_PREFIX}{n.upper().replace('-', '_')}_" for n in names)


def env_overrides(environ: typing.Mapping[str, str]) -> dict[str, Any]:
    """The nested dict that S3PROXY_* environment variables describe."""
    tree: dict[str, Any] = {}
    fields = set(Config.__struct_fields__)
    plugin_prefixes: tuple[str, ...] | None = None
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in _NOT_TREE:
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if path[0] not in fields:
            # Not the tree's: a plugin's own setting, or an error reported below.
            if plugin_prefixes is None:
                plugin_prefixes = _plugin_env_prefixes()
            if name.startswith(plugin_prefixes):
                continue
        if not all(path):
            raise ConfigError(f"environment variable {name}: empty name segment")
        if _is_list(_field_type(Config, path)):
            parsed: Any = [v.strip() for v in value.split(",") if v.strip()]
        else:
            parsed = value
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {name} conflicts with another")
        node[path[-1]] = parsed
    return tree


def read_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        with Path(path).open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path}: not found") from None
    except OSError as exc:  # a directory, no permission, ...
        raise ConfigError(f"config file {path}: cannot read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        # tomllib decodes the bytes itself; invalid UTF-8 is not a TOMLDecodeError.
        raise ConfigError(f"config file {path}: invalid TOML: {exc}") from None


def raw_config(
    config_file: str | None = None, environ: typing.Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Merge file and environment into one plain dict (not yet validated)."""
    environ = os.environ if environ is None else environ
    config_file = config_file or environ.get(ENV_CONFIG_FILE) or None
    data = read_file(config_file) if config_file else {}
    return _merge(data, env_overrides(environ))


def convert(data: Any, type_: type[Any], where: str) -> Any:
    """Validate ``data`` as ``type_``; errors name the field under ``where``."""
    try:
        # strict=False lets "9000" from the environment become an int.
        return msgspec.convert(data, type_, strict=False)
    except msgspec.ValidationError as exc:
        msg = str(exc)
        field = ""
        if " - at `$" in msg:
            msg, _, at = msg.rpartition(" - at `$")
            field = at.rstrip("`").lstrip(".")
        name = ".".join(p for p in (where, field) if p)
        raise ConfigError(
            f"invalid config {name}: {msg}" if name else f"invalid config: {msg}"
        ) from None


def plugin_section(config: Any, name: str) -> typing.Mapping[str, Any]:
    """The raw ``[plugins.<name>]`` section of the core configuration ({} when absent)."""
    sections = getattr(config, "plugins", None)
    if not isinstance(sections, typing.Mapping):
        return {}
    found = sections.get(name)
    return found if isinstance(found, typing.Mapping) else {}


def plugin_settings(
    section: typing.Mapping[str, Any],
    environ: typing.Mapping[str, str],
    *,
    fields: tuple[str, ...],
    where: str,
    env_prefix: str,
) -> tuple[dict[str, Any], dict[str, str]]:
    """A plugin's raw settings: the fields of its section, overridden by
    ``<env_prefix><FIELD>`` variables, and where each came from (for its error messages).
    An unknown field or variable is a ConfigError naming the known ones."""
    raw: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for field, value in section.items():
        if field not in fields:
            raise ConfigError(
                f"invalid config {where}: unknown field `{field}` (known: {', '.join(fields)})"
            )
        origin[field] = f"config {where}.{field}"
        raw[field] = value
    for name, value in environ.items():
        if not name.startswith(env_prefix):
            continue
        field = name[len(env_prefix) :].lower()
        if field not in fields:
            known = ", ".join(env_prefix + f.upper() for f in fields)
            raise ConfigError(f"unknown setting {name} (known: {known})")
        origin[field] = name
        raw[field] = value
    return raw, origin


def load(config_file: str | None = None, environ: typing.Mapping[str, str] | None = None) -> Config:
    """Load and validate the core tree (backend sections are checked by the plugins)."""
    cfg: Config = convert(raw_config(config_file, environ), Config, "")
    if cfg.server.workers < 1:
        raise ConfigError("invalid config server.workers: Expected a value >= 1")
    if cfg.multipart.min_part_size < 0 or cfg.multipart.keepalive <= 0:
        raise ConfigError("invalid config multipart: sizes and intervals must be positive")
    return cfg


def extra_plugins(environ: typing.Mapping[str, str] | None = None) -> list[str]:
    """Plugin modules named by ``S3PROXY_PLUGINS`` (comma separated import paths)."""
    environ = os.environ if environ is None else environ
    return [m.strip() for m in environ.get(ENV_PLUGINS, "").split(",") if m.strip()]


def redacted(data: Any, _field: str = "") -> Any:
    """A copy of a plain config dict with secret-looking values replaced."""
    if isinstance(data, dict):
        return {k: redacted(v, k) for k, v in data.items()}
    if isinstance(data, list):
        return [redacted(v, _field) for v in data]
    if data not in (None, "") and any(w in _field.lower() for w in SECRET_WORDS):
        return "***"
    return data
