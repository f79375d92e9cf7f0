"""The core multipart e2e module (tests/e2e/test_multipart.py) with every bucket encrypted.

Staged parts are encrypted objects of the private namespace and Complete streams them
into one new encrypted object; every multipart behaviour must be unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.conftest import ProxyServer, start_proxy, stop_proxy
from tests.e2e.test_multipart import *  # noqa: F403 - collect the core tests here
from tests.e2e.test_multipart import MIN_PART

# These two drive a proxy of their own (a slow test backend), not this module's.
del test_slow_complete_streams_whitespace_then_result  # noqa: F821
del test_failure_after_200_is_an_error_document  # noqa: F821


@pytest.fixture(scope="module")
def mp(
    tmp_path_factory: pytest.TempPathFactory,
    layer_env: Callable[..., dict[str, str]],
    master_key: str,
) -> Iterator[ProxyServer]:
    env = layer_env(buckets="*", key=master_key)
    env["S3PROXY_MULTIPART__MIN_PART_SIZE"] = str(MIN_PART)
    server = start_proxy(tmp_path_factory.mktemp("transform-mp"), "local", env)
    yield server
    stop_proxy(server)
