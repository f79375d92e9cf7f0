"""S3PROXY_EVENTS_* parsing (webhook syntax, errors) and the hook."""

from __future__ import annotations

import pytest
from s3proxy_events import plugin
from s3proxy_events.settings import Webhook, load, parse_webhooks
from s3proxy_events.sink import WebhookSink

from s3proxy import config as config_mod
from s3proxy.config import Config, ConfigError
from s3proxy.events import S3Event


def ev(name: str = "ObjectCreated:Put", bucket: str = "b", key: str = "k") -> S3Event:
    return S3Event(name=name, bucket=bucket, key=key, request_id="r", region="us-east-1")


def test_defaults_leave_the_sink_off() -> None:
    settings = load(None, {})
    assert not settings.enabled
    assert (settings.queue_size, settings.overflow, settings.max_attempts) == (
        10_000,
        "drop-oldest",
        5,
    )


def test_all_settings() -> None:
    settings = load(
        None,
        {
            "S3PROXY_EVENTS_WEBHOOKS": "https://a.example/x , http://b.example:8080/y name=b",
            "S3PROXY_EVENTS_QUEUE_SIZE": "10",
            "S3PROXY_EVENTS_OVERFLOW": "drop-newest",
            "S3PROXY_EVENTS_MAX_ATTEMPTS": "2",
            "S3PROXY_EVENTS_BACKOFF": "0.1",
            "S3PROXY_EVENTS_MAX_BACKOFF": "1",
            "S3PROXY_EVENTS_TIMEOUT": "3",
            "S3PROXY_EVENTS_SECRET": "k",
        },
    )
    assert [h.url for h in settings.webhooks] == ["https://a.example/x", "http://b.example:8080/y"]
    assert [h.label for h in settings.webhooks] == ["a.example", "b"]
    assert (settings.queue_size, settings.overflow, settings.max_attempts) == (10, "drop-newest", 2)
    assert (settings.backoff, settings.max_backoff, settings.timeout) == (0.1, 1, 3)
    assert settings.secret == "k"


def test_webhook_filters() -> None:
    [hook] = parse_webhooks(
        "https://h.example/in events=s3:ObjectCreated:*|ObjectRemoved:Delete "
        "bucket=photos|pics-* prefix=my%20dir/ suffix=.jpg name=thumbs"
    )
    assert hook == Webhook(
        url="https://h.example/in",
        events=("ObjectCreated:*", "ObjectRemoved:Delete"),
        buckets=("photos", "pics-*"),
        prefix="my dir/",
        suffix=".jpg",
        name="thumbs",
    )
    assert hook.matches(ev(bucket="pics-1", key="my dir/a.jpg"))
    assert hook.matches(ev("ObjectRemoved:Delete", "photos", "my dir/x.jpg"))
    assert not hook.matches(ev(bucket="other", key="my dir/a.jpg"))
    assert not hook.matches(ev(key="my dir/a.png", bucket="photos"))
    assert not hook.matches(ev(key="elsewhere/a.jpg", bucket="photos"))
    [everything] = parse_webhooks("http://h/ events=s3:*")
    assert everything.matches(ev("ObjectRemoved:Delete"))
    [exact] = parse_webhooks("http://h/ events=s3:ObjectCreated:Copy")
    assert exact.matches(ev("ObjectCreated:Copy")) and not exact.matches(ev())


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ftp://h/x", "entry 1 ('ftp://h/x'): 'ftp://h/x' is not an http:// or https:// URL"),
        ("http://h/, /relative", "entry 2"),
        ("http://h/ color=red", "'color=red' is not a filter (expected key=value"),
        ("http://h/ prefix", "'prefix' is not a filter"),
        ("http://h/ prefix=a prefix=b", "prefix given twice"),
        ("http://h/ events=s3:ObjectCreate:*", "event pattern 's3:ObjectCreate:*' matches no"),
        ("http://h/ events=s3:Object*:Put", "matches no event"),
        ("http://h/ events=s3:ObjectRestore:Post", "matches no event"),
    ],
)
def test_webhook_errors_name_the_entry(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load(None, {"S3PROXY_EVENTS_WEBHOOKS": value})
    assert "S3PROXY_EVENTS_WEBHOOKS" in str(exc.value)
    assert message in str(exc.value)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "S3PROXY_EVENTS_QUEUE_SIZE",
            "0",
            "invalid S3PROXY_EVENTS_QUEUE_SIZE: Expected `int` >= 1",
        ),
        (
            "S3PROXY_EVENTS_OVERFLOW",
            "drop-all",
            "S3PROXY_EVENTS_OVERFLOW: Invalid enum value 'drop-all' (expected drop-oldest or",
        ),
        ("S3PROXY_EVENTS_MAX_ATTEMPTS", "many", "invalid S3PROXY_EVENTS_MAX_ATTEMPTS"),
        ("S3PROXY_EVENTS_TIMEOUT", "0", "invalid S3PROXY_EVENTS_TIMEOUT: Expected `float` > 0"),
        ("S3PROXY_EVENTS_WEBHOOK", "http://h/", "unknown setting S3PROXY_EVENTS_WEBHOOK"),
    ],
)
def test_errors_name_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load(None, {"S3PROXY_EVENTS_WEBHOOKS": "http://h/", name: value})
    assert message in str(exc.value)


def test_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("S3PROXY_EVENTS_WEBHOOKS", raising=False)
    assert plugin.make_event_sink(config=Config()) is None
    monkeypatch.setenv("S3PROXY_EVENTS_WEBHOOKS", "http://127.0.0.1:1/x")
    assert isinstance(plugin.make_event_sink(config=Config()), WebhookSink)
    # The core configuration leaves the plugin's variables alone.
    assert config_mod.load(environ={"S3PROXY_EVENTS_WEBHOOKS": "http://h/"}).backend == "local"


def test_section_under_the_environment() -> None:
    section = {
        "webhooks": ["http://a.example/x?list=1,2 events=s3:ObjectCreated:*", "http://b.example/"],
        "max_attempts": 2,
    }
    settings = load(section, {})
    assert [h.url for h in settings.webhooks] == [
        "http://a.example/x?list=1,2",
        "http://b.example/",
    ]
    assert settings.max_attempts == 2
    settings = load(section, {"S3PROXY_EVENTS_WEBHOOKS": "http://c.example/"})
    assert [h.url for h in settings.webhooks] == ["http://c.example/"]
    with pytest.raises(ConfigError, match=r"invalid config plugins.events: unknown field `hooks`"):
        load({"hooks": []}, {})
    with pytest.raises(ConfigError, match=r"plugins.events.webhooks entry 1 .* not an http"):
        load({"webhooks": ["nope"]}, {})
    with pytest.raises(ConfigError, match=r"invalid config plugins.events.queue_size: Expected"):
        load({"queue_size": -1}, {})


@pytest.mark.skipif(
    "plugins" not in Config.__struct_fields__, reason="the core has no [plugins.<name>] sections"
)
def test_hook_reads_the_plugins_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("S3PROXY_EVENTS_WEBHOOKS", raising=False)
    cfg = config_mod.load(environ={"S3PROXY_PLUGINS__EVENTS__WEBHOOKS": "http://h.example/"})
    sink = plugin.make_event_sink(config=cfg)
    assert isinstance(sink, WebhookSink)
    assert [d.hook.url for d in sink.deliveries] == ["http://h.example/"]
