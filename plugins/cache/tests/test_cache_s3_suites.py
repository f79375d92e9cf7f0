"""The core end-to-end suites (objects, conditionals, copy/delete) against a proxy with
the cache on: the layer must not change anything a client can see.

The test functions and their module fixtures are imported from tests/e2e; ``proxy`` is
overridden to run them all on one cached local-backend proxy.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from plugins.cache.tests.conftest import RedisServer, start_cached_proxy
from tests.conftest import ProxyServer, bucket, metric, s3, stop_proxy  # noqa: F401 (fixtures)
from tests.e2e.test_boto3_core import *  # noqa: F403
from tests.e2e.test_copy_delete import *  # noqa: F403
from tests.e2e.test_objects_semantics import *  # noqa: F403


@pytest.fixture(scope="module")
def proxy(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyServer]:
    # A small body limit, so that both cached and uncached bodies are exercised.
    server = start_cached_proxy(
        tmp_path_factory.mktemp("suites"), redis_server, max_object_size="4KiB"
    )
    yield server
    stop_proxy(server)


def test_the_suites_were_served_by_the_cache(proxy: ProxyServer) -> None:
    # Collected after the imported tests: by now the cache has answered many reads.
    assert metric(proxy.endpoint, "s3proxy_cache_hits_total") > 20
    assert metric(proxy.endpoint, "s3proxy_cache_misses_total") > 20
    assert metric(proxy.endpoint, "s3proxy_cache_errors_total") == 0
