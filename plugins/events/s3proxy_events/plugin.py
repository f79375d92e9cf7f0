"""Entry point module of the s3proxy-events plugin: the ``make_event_sink`` hook."""

from __future__ import annotations

import logging

from s3proxy.config import Config
from s3proxy.events import EventSink
from s3proxy.hookspecs import hookimpl
from s3proxy_events import settings as settings_mod
from s3proxy_events.sink import WebhookSink

log = logging.getLogger("s3proxy.events")


@hookimpl
def make_event_sink(config: Config) -> EventSink | None:
    """A WebhookSink when the settings name at least one webhook."""
    settings = settings_mod.load(settings_mod.section(config))
    if not settings.enabled:
        return None
    log.info(
        "events: delivering to %d webhook(s): %s",
        len(settings.webhooks),
        ", ".join(h.label for h in settings.webhooks),
    )
    return WebhookSink(settings)
