"""A bounded soak in CI: the mixed workload from 32 clients, on the local backend and on
moto (aws backend). Every object is read back by checksum; no 5xx, nothing lost.

``S3PROXY_SOAK_SECONDS`` sets the duration per backend (default 20); ``bench/soak.py``
is the long run, which also judges the memory slope.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from s3proxy.testing import emulators
from tests.conftest import ProxyServer, start_proxy, stop_proxy
from tests.reliability.helpers import MIN_PART, TALLY, proxy_log_has_no_crash
from tests.reliability.workload import MiB, run_soak

SECONDS = float(os.environ.get("S3PROXY_SOAK_SECONDS", "20"))
CLIENTS = 32


def soak_proxy(tmp: Path, backend: str, moto: emulators.Emulator | None) -> ProxyServer:
    env = {"S3PROXY_MULTIPART__MIN_PART_SIZE": str(MIN_PART), "S3PROXY_LOGGING__LEVEL": "warning"}
    if moto is not None:
        cloud_bucket = emulators.new_name("soak")
        emulators.create_bucket(moto, cloud_bucket)
        env |= moto.proxy_env(bucket=cloud_bucket, layout="folders", prefix="soak")
    return start_proxy(tmp, backend, env=env)


@pytest.fixture(params=["local", "aws"])
def soaked(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, ProxyServer]]:
    moto = request.getfixturevalue("moto") if request.param == "aws" else None
    server = soak_proxy(tmp_path, request.param, moto)
    yield request.param, server
    stop_proxy(server)


def test_soak(soaked: tuple[str, ProxyServer]) -> None:
    backend, server = soaked
    result = run_soak(
        server.endpoint, server.pid, seconds=SECONDS, clients=CLIENTS, min_part=MIN_PART
    )
    TALLY.server_errors += result.server_errors
    TALLY.objects_lost += result.objects_lost + len(result.mismatches)
    TALLY.notes.append(result.summary(backend))
    assert result.server_errors == 0, result.client_errors[:10]
    assert result.client_errors == []
    assert result.mismatches == [], result.mismatches[:10]
    assert result.objects_lost == 0
    assert result.objects_verified > 0
    assert result.operations["MPU-COMPLETE"] > 0 and result.operations["DELETE"] > 0
    # Memory: a short run only catches gross leaks (the slope is judged by bench/soak.py).
    rss = [r for _, r in result.rss_samples]
    assert max(rss) - rss[len(rss) // 4] < 256 * MiB
    proxy_log_has_no_crash(server)
