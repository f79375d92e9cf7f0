"""Settings of the transform layer: parsing, validation, and that keys stay secret."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from s3proxy_transform import plugin, settings
from s3proxy_transform.keys import StaticKeyProvider, key_id_of

from s3proxy.config import Config, ConfigError
from s3proxy.storage.builtin import make_memory

RAW_KEY = os.urandom(32)
KEY = base64.b64encode(RAW_KEY).decode()


def test_environment_strings_become_lists() -> None:
    parsed = settings.parse(
        {
            "buckets": "secure-*, logs",
            "key": KEY,
            "compress_types": "Text/*,application/json",
            "chunk_size": "131072",
        }
    )
    assert parsed.buckets == ["secure-*", "logs"]
    assert parsed.compress_types == ["text/*", "application/json"]
    assert parsed.chunk_size == 131072
    assert parsed.master_keys() == [RAW_KEY]
    assert parsed.encrypts("secure-1") and parsed.encrypts("logs")
    assert not parsed.encrypts("logs2") and not parsed.encrypts("public")
    assert parsed.compresses("text/csv; charset=utf-8")
    assert parsed.compresses("application/JSON")
    assert not parsed.compresses("application/octet-stream") and not parsed.compresses(None)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"buckets": ["*"]}, "no master key"),
        ({"buckets": ["*"], "key": "c2hvcnQ="}, "plugins.transform.key: expected base64 of 32"),
        ({"key": KEY, "key_file": "/x"}, "not both"),
        ({"key": KEY, "chunk_size": 100}, "chunk_size"),
        ({"key": KEY, "compress_level": 99}, "compress_level"),
        ({"key": KEY, "bucket": ["typo"]}, "unknown field `bucket`"),
        ({"key": KEY, "previous_keys": ["nope"]}, "previous_keys[0]"),
        ({"key_provider": "no-such-provider"}, "unknown key provider 'no-such-provider'"),
    ],
)
def test_invalid_settings_name_the_field(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parsed = settings.parse(raw)
        plugin.build(make_memory(None), raw) if parsed.enabled else None
    assert message in str(exc.value)
    assert KEY not in str(exc.value)


def test_keys_never_show(tmp_path: Path) -> None:
    parsed = settings.parse({"buckets": ["*"], "key": KEY, "previous_keys": [KEY]})
    assert KEY not in repr(parsed) and "<hidden>" in repr(parsed)
    provider = StaticKeyProvider(parsed.master_keys())
    assert KEY not in repr(provider) and RAW_KEY.hex() not in repr(provider)
    assert provider.current_key_id == key_id_of(RAW_KEY)
    assert RAW_KEY.hex()[:16] not in provider.current_key_id


def test_key_file_forms(tmp_path: Path) -> None:
    raw_file = tmp_path / "raw.key"
    raw_file.write_bytes(RAW_KEY)
    assert settings.parse({"key_file": str(raw_file)}).master_keys() == [RAW_KEY]
    other = os.urandom(32)
    text_file = tmp_path / "keys.txt"
    text_file.write_text(f"{KEY}\n\n{base64.b64encode(other).decode()}\n")
    assert settings.parse({"key_file": str(text_file)}).master_keys() == [RAW_KEY, other]
    with pytest.raises(ConfigError, match="cannot read"):
        settings.parse({"key_file": str(tmp_path / "missing")})
    (tmp_path / "bad").write_text("not a key\n")
    with pytest.raises(ConfigError, match="key_file line 1"):
        settings.parse({"key_file": str(tmp_path / "bad")})


def test_hook_does_nothing_without_settings() -> None:
    backend = make_memory(None)
    assert plugin.wrap_backend(backend=backend, config=Config()) is None
    assert plugin.build(backend, {}) is None
    # A config with a plugins section (newer cores) enables the layer.
    config = SimpleNamespace(plugins={"transform": {"buckets": "*", "key": KEY}})
    wrapped = plugin.wrap_backend(backend=backend, config=config)  # type: ignore[arg-type]
    assert wrapped is not None and wrapped.name == backend.name


def test_key_only_still_decrypts() -> None:
    # No buckets: nothing new is encrypted, but what was stays readable.
    wrapped = plugin.build(make_memory(None), {"key": KEY})
    assert wrapped is not None
    assert not wrapped.settings.encrypts("any")
