"""Bodies stream end to end with bounded memory, and aborted uploads leave nothing."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import psutil
import pytest

from tests.conftest import ProxyServer, s3_client, start_proxy, stop_proxy

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def local_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    server = start_proxy(tmp_path_factory.mktemp("stream"), "local")
    yield server
    stop_proxy(server)


def tree_rss(pid: int) -> int:
    proc = psutil.Process(pid)
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += child.memory_info().rss
    return total


class RssSampler:
    """Samples the proxy's RSS (all its processes) in the background; keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            time.sleep(0.05)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def pattern_chunks(total: int, chunk: int = MiB) -> Iterator[bytes]:
    block = bytes(range(256)) * (chunk // 256)
    sent = 0
    while sent < total:
        n = min(chunk, total - sent)
        # Vary the content per chunk so a misplaced chunk changes the digest.
        yield (sent // chunk).to_bytes(8, "big") + block[8:n]
        sent += n


@pytest.mark.slow
def test_1gib_put_and_get_bounded_memory(local_proxy: ProxyServer) -> None:
    s3 = s3_client(local_proxy.endpoint)
    bucket = f"big-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    url = f"{local_proxy.endpoint}/{bucket}/one-gib"
    size = 1024 * MiB
    # Warm up so that lazily built state is part of the baseline.
    httpx.put(url, content=b"warm" * 1000).raise_for_status()
    httpx.get(url).raise_for_status()
    baseline = tree_rss(local_proxy.pid)

    expected = hashlib.md5()

    def body() -> Iterator[bytes]:
        for chunk in pattern_chunks(size):
            expected.update(chunk)
            yield chunk

    with RssSampler(local_proxy.pid) as put_rss:
        resp = httpx.put(url, content=body(), headers={"content-length": str(size)}, timeout=600)
    assert resp.status_code == 200, resp.text
    assert resp.headers["etag"] == f'"{expected.hexdigest()}"'

    got = hashlib.md5()
    received = 0
    with RssSampler(local_proxy.pid) as get_rss, httpx.stream("GET", url, timeout=600) as stream:
        assert stream.status_code == 200
        assert int(stream.headers["content-length"]) == size
        for chunk in stream.iter_bytes(MiB):
            got.update(chunk)
            received += len(chunk)
    assert received == size
    assert got.hexdigest() == expected.hexdigest()
    limit = 64 * MiB
    assert put_rss.peak - baseline <= limit, (
        f"PUT grew RSS by {(put_rss.peak - baseline) / MiB:.1f} MiB"
    )
    assert get_rss.peak - baseline <= limit, (
        f"GET grew RSS by {(get_rss.peak - baseline) / MiB:.1f} MiB"
    )


def _raw_put(endpoint: str, path: str, declared: int, send: int) -> None:
    """Send a PUT that declares ``declared`` bytes, send ``send`` of them, then hang up."""
    host, port = endpoint.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            f"PUT {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {declared}\r\n\r\n".encode()
        )
        sent = 0
        while sent < send:
            n = min(MiB, send - sent)
            sock.sendall(b"z" * n)
            sent += n
        sock.shutdown(socket.SHUT_RDWR)


def _files_under(server: ProxyServer, bucket: str) -> list[str]:
    assert server.data_dir is not None
    root = server.data_dir / bucket
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_client_disconnect_mid_upload_leaves_nothing(local_proxy: ProxyServer) -> None:
    s3 = s3_client(local_proxy.endpoint)
    bucket = f"abort-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="kept", Body=b"original")
    before = _files_under(local_proxy, bucket)

    _raw_put(local_proxy.endpoint, f"/{bucket}/new", declared=20 * MiB, send=3 * MiB)
    _raw_put(local_proxy.endpoint, f"/{bucket}/kept", declared=20 * MiB, send=3 * MiB)

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and local_proxy.log().count("client disconnected") < 2:
        time.sleep(0.1)  # the proxy notices the hang-ups asynchronously
    assert local_proxy.log().count("client disconnected") == 2
    assert _files_under(local_proxy, bucket) == before
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["kept"]
    assert s3.get_object(Bucket=bucket, Key="kept")["Body"].read() == b"original"
    assert httpx.get(local_proxy.endpoint + "/_s3proxy/health").status_code == 200
