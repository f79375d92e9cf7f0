"""The event sink's settings: ``S3PROXY_EVENTS_*`` environment variables, over the
``[plugins.events]`` section of the configuration file where the core has plugin
sections. Each variable (``S3PROXY_EVENTS_<FIELD>``) or key maps to one field of
``EventsSettings``; an unknown name or a bad value is a ``ConfigError`` naming it.

``S3PROXY_EVENTS_WEBHOOKS`` is a comma separated list of webhooks (in the file: a list
of strings, one webhook each). Each is a URL, optionally followed by whitespace
separated filters (all of them must match)::

    https://hooks.example/all,
    https://thumbs.example/in events=s3:ObjectCreated:* bucket=photos|static-* prefix=img/

- ``events``: S3 event name patterns, ``|`` separated: an exact name
  (``s3:ObjectCreated:Put``), a family (``s3:ObjectCreated:*``) or ``s3:*``. The
  ``s3:`` prefix may be left out. Default: every event.
- ``bucket``: bucket names or globs, ``|`` separated. Default: every bucket.
- ``prefix`` / ``suffix``: the object key must start / end with it (as S3's filter
  rules). Values are percent-decoded, so ``prefix=my%20dir/`` or ``%2C`` for a comma.
- ``name``: the webhook's label in metrics and logs (default: the URL's host:port).

A URL that contains a space, or a comma in the comma separated form, must
percent-encode it.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

import msgspec

from s3proxy import events
from s3proxy.config import ConfigError, plugin_section, plugin_settings
from s3proxy.events import S3Event

ENV_PREFIX = "S3PROXY_EVENTS_"
SECTION = "events"
WHERE = f"plugins.{SECTION}"
WEBHOOKS_ENV = ENV_PREFIX + "WEBHOOKS"

#: Every event name the proxy emits (without ``s3:``), to check patterns against.
EMITTED = (
    events.OBJECT_CREATED_PUT,
    events.OBJECT_CREATED_POST,
    events.OBJECT_CREATED_COPY,
    events.OBJECT_CREATED_COMPLETE,
    events.OBJECT_REMOVED_DELETE,
)
_FILTERS = ("events", "bucket", "prefix", "suffix", "name")


def _pattern_matches(pattern: str, name: str) -> bool:
    if pattern.endswith("*"):
        return name.startswith(pattern[:-1])
    return name == pattern


class Webhook(msgspec.Struct, frozen=True, kw_only=True):
    """One receiver and the events it wants."""

    url: str
    #: Event name patterns without ``s3:`` (``ObjectCreated:*``); empty: all.
    events: tuple[str, ...] = ()
    #: Bucket names or globs; empty: all.
    buckets: tuple[str, ...] = ()
    prefix: str = ""
    suffix: str = ""
    name: str = ""

    def matches(self, event: S3Event) -> bool:
        if self.events and not any(_pattern_matches(p, event.name) for p in self.events):
            return False
        if self.buckets and not any(fnmatch.fnmatchcase(event.bucket, b) for b in self.buckets):
            return False
        return event.key.startswith(self.prefix) and event.key.endswith(self.suffix)

    @property
    def label(self) -> str:
        return self.name or urlsplit(self.url).netloc.rpartition("@")[2]


class EventsSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """``S3PROXY_EVENTS_<FIELD>``; the sink is on when ``webhooks`` names at least one."""

    #: Receivers and their filters (see the module docstring for the syntax).
    webhooks: tuple[Webhook, ...] = ()
    #: Events waiting per webhook, at most; past it ``overflow`` decides.
    queue_size: Annotated[int, msgspec.Meta(ge=1)] = 10_000
    #: Which event to give up when a queue is full: ``drop-oldest`` keeps the latest
    #: changes, ``drop-newest`` the earliest. Either way it is counted as dropped.
    overflow: Literal["drop-oldest", "drop-newest"] = "drop-oldest"
    #: Attempts per event (the first delivery included) before it counts as failed.
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=100)] = 5
    #: Seconds before the first retry; doubles per retry (with jitter) up to
    #: ``max_backoff``.
    backoff: Annotated[float, msgspec.Meta(ge=0)] = 0.5
    max_backoff: Annotated[float, msgspec.Meta(ge=0)] = 30.0
    #: Seconds per attempt (connect, send, answer).
    timeout: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    #: When set, each POST carries ``X-S3proxy-Signature: sha256=<hex HMAC-SHA256 of
    #: the body>`` so that receivers can check where it came from.
    secret: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.webhooks)


def _parse_patterns(where: str, value: str) -> tuple[str, ...]:
    patterns = []
    for raw in value.split("|"):
        pattern = raw.strip().removeprefix("s3:")
        if pattern == "":
            continue
        if "*" in pattern[:-1] or not any(_pattern_matches(pattern, n) for n in EMITTED):
            known = ", ".join(f"s3:{n}" for n in EMITTED)
            raise ConfigError(
                f"invalid {where}: event pattern {raw.strip()!r} matches no event the proxy "
                f"sends (one of {known}, a family like s3:ObjectCreated:*, or s3:*)"
            )
        patterns.append(pattern)
    return tuple(patterns)


def parse_webhooks(value: str | list[str], where: str = WEBHOOKS_ENV) -> tuple[Webhook, ...]:
    """Webhooks from one comma separated string, or a list (one webhook per item);
    ConfigError names the bad entry."""
    entries = value.split(",") if isinstance(value, str) else value
    hooks = []
    for number, raw_entry in enumerate(entries, start=1):
        if not isinstance(raw_entry, str):
            raise ConfigError(f"invalid {where}: entry {number} is not a string")
        entry = raw_entry.strip()
        if not entry:
            continue
        at = f"{where} entry {number} ({entry!r})"
        url, *filters = entry.split()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"invalid {at}: {url!r} is not an http:// or https:// URL")
        fields: dict[str, Any] = {"url": url}
        for item in filters:
            key, eq, raw = item.partition("=")
            if not eq or key not in _FILTERS:
                raise ConfigError(
                    f"invalid {at}: {item!r} is not a filter "
                    f"(expected key=value with key one of {', '.join(_FILTERS)})"
                )
            if key in fields or (key == "bucket" and "buckets" in fields):
                raise ConfigError(f"invalid {at}: {key} given twice")
            if key == "events":
                fields["events"] = _parse_patterns(at, raw)
            elif key == "bucket":
                fields["buckets"] = tuple(unquote(b) for b in raw.split("|") if b)
            else:
                fields[key] = unquote(raw)
        hooks.append(Webhook(**fields))
    return tuple(hooks)


def section(config: Any) -> Mapping[str, Any]:
    """The ``[plugins.events]`` section, when the core configuration has plugin sections."""
    return plugin_section(config, SECTION)


def load(
    section: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> EventsSettings:
    """Settings from ``[plugins.events]`` (``section``), overridden by
    ``S3PROXY_EVENTS_*`` variables; a ConfigError names the bad key or variable."""
    environ = os.environ if environ is None else environ
    raw, origin = plugin_settings(
        section or {},
        environ,
        fields=EventsSettings.__struct_fields__,
        where=WHERE,
        env_prefix=ENV_PREFIX,
    )
    raw = {field: v.strip() if isinstance(v, str) else v for field, v in raw.items()}
    hooks = raw.pop("webhooks", "")
    if not isinstance(hooks, str | list):
        raise ConfigError(f"invalid {origin['webhooks']}: expected a string or a list of strings")
    webhooks = parse_webhooks(hooks, origin.get("webhooks", WEBHOOKS_ENV))
    try:
        settings = msgspec.convert(raw, EventsSettings, strict=False)
    except msgspec.ValidationError as exc:
        msg, _, at = str(exc).rpartition(" - at `$.")
        field = at.rstrip("`")
        if field == "overflow":
            msg += " (expected drop-oldest or drop-newest)"
        raise ConfigError(f"invalid {origin.get(field, WHERE)}: {msg or exc}") from None
    return msgspec.structs.replace(settings, webhooks=webhooks)
