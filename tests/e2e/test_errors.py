"""Backend faults and bugs become S3 errors with the request id, never leaked details."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ProxyServer, s3_client, start_proxy, stop_proxy
from tests.plugin_samples.faulty_backend import SECRET

ROOT = Path(__file__).resolve().parents[2]


def _faulty(tmp: Path, **env: str) -> ProxyServer:
    return start_proxy(
        tmp,
        "faulty",
        env={
            "S3PROXY_PLUGINS": "tests.plugin_samples.faulty_backend",
            "PYTHONPATH": str(ROOT),
            **env,
        },
    )


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    server = _faulty(tmp_path_factory.mktemp("faulty"))
    s3 = s3_client(server.endpoint)
    for bucket in ("crash", "down", "midstream"):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket="midstream", Key="k", Body=b"x" * 100_000)
    yield server
    stop_proxy(server)


def _log_lines(server: ProxyServer) -> list[dict[str, object]]:
    return [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]


def test_unexpected_exception_is_internal_error(faulty: ProxyServer) -> None:
    resp = httpx.get(f"{faulty.endpoint}/crash/key")
    assert resp.status_code == 500
    rid = resp.headers["x-amz-request-id"]
    assert "<Code>InternalError</Code>" in resp.text
    assert f"<RequestId>{rid}</RequestId>" in resp.text
    assert SECRET not in resp.text
    logged = [e for e in _log_lines(faulty) if e.get("request_id") == rid]
    assert any("exception" in e and SECRET in str(e["exception"]) for e in logged)


def test_backend_unavailable_is_503(faulty: ProxyServer) -> None:
    resp = httpx.put(f"{faulty.endpoint}/down/key", content=b"data")
    assert resp.status_code == 503
    assert "<Code>ServiceUnavailable</Code>" in resp.text
    assert SECRET not in resp.text
    head = httpx.head(f"{faulty.endpoint}/down/key")
    assert head.status_code == 503
    assert head.content == b""


def test_failure_mid_download_cuts_the_connection(faulty: ProxyServer) -> None:
    # Headers (200, full Content-Length) are already sent: the client must see a
    # truncated body, never a silently short "success".
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{faulty.endpoint}/midstream/k").raise_for_status()
    assert httpx.get(f"{faulty.endpoint}/_s3proxy/health").status_code == 200


def test_readiness_reports_backend(tmp_path: Path) -> None:
    server = _faulty(tmp_path, FAULTY_NOT_READY="1")
    try:
        resp = httpx.get(f"{server.endpoint}/_s3proxy/ready")
        assert resp.status_code == 503
        assert resp.json()["backends"]["faulty"].startswith("backend unavailable")
        # Liveness does not depend on the backend.
        assert httpx.get(f"{server.endpoint}/_s3proxy/health").status_code == 200
    finally:
        stop_proxy(server)
