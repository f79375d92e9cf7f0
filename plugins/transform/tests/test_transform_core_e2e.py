"""The shared core e2e module (tests/e2e/test_boto3_core.py) with every bucket encrypted.

Its tests are collected here again, against a local-backend proxy whose transform layer
encrypts all buckets (and compresses text): every S3 behaviour they check must be the
same through the layer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.conftest import ProxyServer, bucket, s3, start_proxy, stop_proxy
from tests.e2e.test_boto3_core import *  # noqa: F403 - collect the core tests here

__all__ = ["bucket", "s3"]


@pytest.fixture(scope="module")
def proxy(
    tmp_path_factory: pytest.TempPathFactory,
    layer_env: Callable[..., dict[str, str]],
    master_key: str,
) -> Iterator[ProxyServer]:
    env = layer_env(buckets="*", key=master_key, compress_types="text/*,application/json")
    server = start_proxy(tmp_path_factory.mktemp("transform-core"), "local", env)
    yield server
    stop_proxy(server)


def test_layer_is_on(proxy: ProxyServer, s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="k", Body=b"plaintext marker " * 100)
    assert proxy.data_dir is not None
    files = [p for p in (proxy.data_dir / bucket).rglob("*") if p.is_file()]
    assert files and all(b"plaintext marker" not in p.read_bytes() for p in files)
