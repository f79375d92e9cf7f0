"""s3proxy-events: S3-style event notifications delivered to webhooks, as an s3proxy
event sink (``make_event_sink``). See README.md for settings and delivery guarantees."""

from s3proxy_events.settings import EventsSettings, Webhook
from s3proxy_events.sink import WebhookSink

__all__ = ["EventsSettings", "Webhook", "WebhookSink"]
