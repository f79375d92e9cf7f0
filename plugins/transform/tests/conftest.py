"""Fixtures of the transform plugin's tests: proxies with the layer turned on."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from s3proxy.config import Config
from tests.conftest import ProxyServer, start_proxy, stop_proxy

HERE = Path(__file__).resolve().parent
#: The master key of the test proxies (base64 of 32 bytes).
TEST_KEY = base64.b64encode(bytes(range(32))).decode()

StartProxy = Callable[..., ProxyServer]


def core_has_plugin_sections() -> bool:
    """Does the core's Config have ``[plugins.<name>]`` sections for plugin settings?"""
    return "plugins" in Config.__struct_fields__


def transform_env(**settings: str) -> dict[str, str]:
    """Proxy environment that turns the layer on with ``settings`` (values as in env).

    Through the core's ``S3PROXY_PLUGINS__TRANSFORM__*`` when it has plugin sections,
    else through a test plugin that reads them from ``TRANSFORM_TEST_SETTINGS``.
    """
    if core_has_plugin_sections():
        return {f"S3PROXY_PLUGINS__TRANSFORM__{k.upper()}": v for k, v in settings.items()}
    return {
        "S3PROXY_PLUGINS": "transform_env_plugin",
        "PYTHONPATH": str(HERE),
        "TRANSFORM_TEST_SETTINGS": json.dumps(settings),
    }


@pytest.fixture
def transform_proxy() -> Iterator[StartProxy]:
    """``start(tmp, backend="local", env=None, **settings)``; stopped at teardown."""
    started: list[ProxyServer] = []

    def start(
        tmp: Path, backend: str = "local", env: dict[str, str] | None = None, **settings: str
    ) -> ProxyServer:
        server = start_proxy(tmp, backend, env={**transform_env(**settings), **(env or {})})
        started.append(server)
        return server

    yield start
    for server in started:
        stop_proxy(server)


@pytest.fixture(scope="session")
def layer_env() -> Callable[..., dict[str, str]]:
    """``transform_env`` for fixtures of wider scope."""
    return transform_env


@pytest.fixture(scope="session")
def master_key() -> str:
    return TEST_KEY
