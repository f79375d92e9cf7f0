"""The example backend: the shared contract suite, registration, and a real proxy."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from s3proxy_example_backend.plugin import ExampleSettings, make_backend

from s3proxy.config import Config, ConfigError
from s3proxy.plugins import make_plugin_manager
from s3proxy.storage.backend import StorageBackend
from s3proxy.testing.backend_contract import BackendContract
from tests.conftest import s3_client, start_proxy, stop_proxy


class TestMemoryUrl(BackendContract):
    """Every test of the contract, on ``memory:///``."""

    @pytest_asyncio.fixture
    async def backend(self) -> AsyncIterator[StorageBackend]:
        backend = make_backend(ExampleSettings(url="memory:///"))
        await backend.start()
        yield backend
        await backend.close()


class TestFileUrl(BackendContract):
    """And on a directory (``file://``), whose key layout escapes awkward keys."""

    @pytest_asyncio.fixture
    async def backend(self, tmp_path: Path) -> AsyncIterator[StorageBackend]:
        backend = make_backend(ExampleSettings(url=(tmp_path / "tenant").as_uri()))
        await backend.start()
        yield backend
        await backend.close()


def test_registered_through_the_entry_point() -> None:
    plugins = make_plugin_manager()
    spec = plugins.backends["example"]
    assert (spec.plugin, spec.config) == ("example", ExampleSettings)
    assert "example" in [p.name for p in plugins.plugins]
    # Settings come from [backends.example], validated against ExampleSettings.
    cfg = Config(backend="example", backends={"example": {"url": "memory:///"}})
    assert plugins.build_backend("example", cfg).name == "example"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({}, "backends.example.url: required"),
        ({"url": "s3://bucket"}, "expected file:///<absolute dir> or memory:///"),
        ({"url": "file://host/x"}, "expected file:///"),
        ({"url": "memory:///", "path": "/x"}, "unknown field `path`"),
        ({"url": 5}, "backends.example.url"),
    ],
)
def test_invalid_settings(section: dict[str, object], message: str) -> None:
    plugins = make_plugin_manager()
    cfg = Config(backend="example", backends={"example": section})
    with pytest.raises(ConfigError, match="invalid config") as exc:
        plugins.build_backend("example", cfg)
    assert message in str(exc.value)


def test_listed_by_s3proxy_plugins() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "s3proxy", "plugins", "--json"],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    listed = {p["name"]: p for p in json.loads(out)}
    assert listed["example"]["distribution"] == "s3proxy-example-backend"
    assert "example" in listed["example"]["backends"]


def test_serve_with_the_backend(tmp_path: Path) -> None:
    root = tmp_path / "store"
    server = start_proxy(tmp_path, "example", env={"S3PROXY_BACKENDS__EXAMPLE__URL": root.as_uri()})
    try:
        s3 = s3_client(server.endpoint)
        s3.create_bucket(Bucket="photos")
        s3.put_object(Bucket="photos", Key="2024/a b.jpg", Body=b"jpeg bytes")
        got = s3.get_object(Bucket="photos", Key="2024/a b.jpg", Range="bytes=5-9")
        assert got["Body"].read() == b"bytes"
        listed = s3.list_objects_v2(Bucket="photos", Delimiter="/")
        assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["2024/"]
    finally:
        stop_proxy(server)
    # The data is where the URL said.
    assert any(p.is_file() for p in (root / "photos").rglob("*"))
