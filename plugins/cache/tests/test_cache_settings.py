"""S3PROXY_CACHE_* parsing, the hook, and the core config leaving the plugin's variables
alone."""

from __future__ import annotations

import pytest
from s3proxy_cache import plugin
from s3proxy_cache.layer import CacheLayer
from s3proxy_cache.settings import MiB, load

from s3proxy import config as config_mod
from s3proxy.config import Config, ConfigError
from s3proxy.storage.builtin import make_memory


def test_defaults_leave_the_cache_off() -> None:
    settings = load(None, {})
    assert not settings.enabled
    assert settings.max_object_size == MiB
    assert settings.ttl == 300
    assert settings.buckets == ["*"]


def test_all_settings() -> None:
    settings = load(
        None,
        {
            "S3PROXY_CACHE_URL": "redis://:secret@cache:6379/2",
            "S3PROXY_CACHE_MAX_OBJECT_SIZE": "256KiB",
            "S3PROXY_CACHE_TTL": "30",
            "S3PROXY_CACHE_BUCKETS": "photos, static-* ,",
            "S3PROXY_CACHE_TIMEOUT": "0.1",
            "S3PROXY_CACHE_RETRY_AFTER": "2",
            "S3PROXY_CACHE_KEY_PREFIX": "prod",
            "S3PROXY_SERVER__PORT": "9000",  # not ours
        },
    )
    assert settings.enabled
    assert settings.max_object_size == 256 * 1024
    assert (settings.ttl, settings.timeout, settings.retry_after) == (30, 0.1, 2)
    assert settings.buckets == ["photos", "static-*"]
    assert settings.caches_bucket("static-js") and settings.caches_bucket("photos")
    assert not settings.caches_bucket("photos2")
    assert settings.redacted_url() == "redis://:***@cache:6379/2"
    assert "secret" not in settings.redacted_url()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("S3PROXY_CACHE_TTL", "soon", "invalid S3PROXY_CACHE_TTL: Expected `float`"),
        ("S3PROXY_CACHE_TTL", "0", "invalid S3PROXY_CACHE_TTL: Expected `float` > 0"),
        ("S3PROXY_CACHE_MAX_OBJECT_SIZE", "1GB?", "invalid S3PROXY_CACHE_MAX_OBJECT_SIZE"),
        ("S3PROXY_CACHE_MAX_OBJECT_SIZE", "1024MiB", "S3PROXY_CACHE_MAX_OBJECT_SIZE: Expected"),
        ("S3PROXY_CACHE_URL", "http://cache:6379", "S3PROXY_CACHE_URL: scheme must be"),
        ("S3PROXY_CACHE_TTLS", "1", "unknown setting S3PROXY_CACHE_TTLS (known: "),
    ],
)
def test_errors_name_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load(None, {"S3PROXY_CACHE_URL": "redis://localhost", name: value})
    assert message in str(exc.value)


def test_section_under_the_environment() -> None:
    section = {"url": "redis://file:6379", "ttl": 60, "buckets": ["a", "b*"], "max_object_size": 10}
    settings = load(section, {})
    assert (settings.url, settings.ttl, settings.buckets) == ("redis://file:6379", 60, ["a", "b*"])
    # Strings in the section use the same syntax as the variables.
    assert load({"max_object_size": "2KiB", "buckets": "x,y"}, {}).max_object_size == 2048
    env = {"S3PROXY_CACHE_URL": "redis://env:6379", "S3PROXY_CACHE_TTL": "5"}
    settings = load(section, env)
    assert (settings.url, settings.ttl, settings.max_object_size) == ("redis://env:6379", 5, 10)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"urls": "redis://x"}, "invalid config plugins.cache: unknown field `urls` (known: url,"),
        ({"url": "redis://x", "ttl": "never"}, "invalid config plugins.cache.ttl: Expected"),
        ({"url": "redis://x", "buckets": [1]}, "invalid config plugins.cache.buckets: Expected"),
        ({"url": "memcached://x"}, "invalid config plugins.cache.url: scheme must be"),
    ],
)
def test_section_errors_name_the_key(section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load(section, {})
    assert message in str(exc.value)


def test_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = make_memory(None)
    monkeypatch.delenv("S3PROXY_CACHE_URL", raising=False)
    assert plugin.wrap_backend(backend=backend, config=Config()) is None
    monkeypatch.setenv("S3PROXY_CACHE_URL", "redis://127.0.0.1:1/0")
    layer = plugin.wrap_backend(backend=backend, config=Config())
    assert isinstance(layer, CacheLayer)
    assert layer.name == backend.name and layer.inner is backend
    monkeypatch.setenv("S3PROXY_CACHE_TTL", "-1")
    with pytest.raises(ConfigError, match="S3PROXY_CACHE_TTL"):
        plugin.wrap_backend(backend=backend, config=Config())


@pytest.mark.skipif(
    "plugins" not in Config.__struct_fields__, reason="the core has no [plugins.<name>] sections"
)
def test_hook_reads_the_plugins_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("S3PROXY_CACHE_URL", raising=False)
    cfg = config_mod.load(environ={"S3PROXY_PLUGINS__CACHE__URL": "redis://127.0.0.1:1/0"})
    layer = plugin.wrap_backend(backend=make_memory(None), config=cfg)
    assert isinstance(layer, CacheLayer)
    assert layer.settings.url == "redis://127.0.0.1:1/0"


def test_core_config_leaves_the_plugin_variables_alone() -> None:
    # The plugin is installed (entry point "cache"), so its variables are its own...
    cfg = config_mod.load(environ={"S3PROXY_CACHE_URL": "redis://x", "S3PROXY_BACKEND": "memory"})
    assert cfg.backend == "memory"
    # ...while a variable that belongs to nobody is still an error.
    with pytest.raises(ConfigError, match="cachex_url"):
        config_mod.load(environ={"S3PROXY_CACHEX_URL": "redis://x"})
