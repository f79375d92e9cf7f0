"""Clients that misbehave: hang up mid-upload or mid-download, send slowly, or idle.

What must hold: an aborted upload leaves no object and no leftover (file, staged data,
native multipart upload), and nothing leaks in the proxy (file descriptors, in-flight
requests, memory); an aborted download closes the backend stream; slow headers and
stalled bodies are timed out and free their slot; many idle connections do not stop the
proxy from serving others.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ProxyServer, s3_client, start_proxy, stop_proxy
from tests.reliability.helpers import (
    TALLY,
    FaultyAws,
    cloud_uploads,
    new_bucket,
    proxy_log_has_no_crash,
    tree_fds,
    tree_rss,
)

MiB = 1024 * 1024
HEADER_TIMEOUT = 2
BODY_IDLE_TIMEOUT = 2
MAX_CONCURRENT = 16


def eventually(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Wait for ``check`` to hold; the timeout is a safety net, not a measured bound."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for: {what}")


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    server = start_proxy(
        tmp_path_factory.mktemp("client-faults"),
        "local",
        env={
            "S3PROXY_LIMITS__HEADER_TIMEOUT": str(HEADER_TIMEOUT),
            "S3PROXY_LIMITS__BODY_IDLE_TIMEOUT": str(BODY_IDLE_TIMEOUT),
            "S3PROXY_LIMITS__MAX_CONCURRENT_REQUESTS": str(MAX_CONCURRENT),
        },
    )
    yield server
    proxy_log_has_no_crash(server)
    stop_proxy(server)


def address(endpoint: str) -> tuple[str, int]:
    host, port = endpoint.removeprefix("http://").split(":")
    return host, int(port)


def hang_up(sock: socket.socket, reset: bool) -> None:
    if reset:
        # RST rather than FIN: what a crashed client or a dropped route looks like.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


def aborted_put(endpoint: str, path: str, declared: int, send: int, reset: bool) -> None:
    """A PUT that declares ``declared`` bytes, sends ``send`` of them, then hangs up."""
    sock = socket.create_connection(address(endpoint), timeout=30)
    head = f"PUT {path} HTTP/1.1\r\nHost: proxy\r\nContent-Length: {declared}\r\n\r\n"
    sock.sendall(head.encode())
    chunk = os.urandom(256 * 1024)
    sent = 0
    while sent < send:
        piece = chunk[: min(len(chunk), send - sent)]
        sock.sendall(piece)
        sent += len(piece)
    hang_up(sock, reset)


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def active_requests(endpoint: str) -> float:
    """In-flight S3 requests, from the proxy's own metrics."""
    text = httpx.get(f"{endpoint}/_s3proxy/metrics", timeout=30).text
    found = re.findall(r"^http_server_active_requests\S*\s+([0-9.e+-]+)$", text, re.M)
    return sum(float(v) for v in found)


def disconnects_logged(server: ProxyServer) -> int:
    return server.log().count("client disconnected")


# -- hang-ups ----------------------------------------------------------------------------------


def test_disconnect_mid_upload_leaves_nothing_and_leaks_nothing(local: ProxyServer) -> None:
    s3 = s3_client(local.endpoint)
    bucket = new_bucket(s3, "abort")
    s3.put_object(Bucket=bucket, Key="kept", Body=b"original")
    assert local.data_dir is not None
    root = local.data_dir
    # Warm up (lazily built state is part of the baseline), then take the baseline.
    for i in range(5):
        aborted_put(local.endpoint, f"/{bucket}/warm{i}", 4 * MiB, MiB, reset=i % 2 == 0)
    eventually(lambda: disconnects_logged(local) >= 5, "warm-up hang-ups noticed")
    eventually(lambda: active_requests(local.endpoint) == 0, "no request in flight")
    before_files = files_under(root)
    fds, rss = tree_fds(local.pid), tree_rss(local.pid)
    logged = disconnects_logged(local)

    rounds = 40
    for i in range(rounds):
        # New keys and overwrites of an existing one; FIN and RST; early and late.
        key = "kept" if i % 4 == 0 else f"new-{i}"
        aborted_put(local.endpoint, f"/{bucket}/{key}", 8 * MiB, (i % 7 + 1) * MiB, i % 2 == 0)
    eventually(lambda: disconnects_logged(local) >= logged + rounds, "every hang-up noticed")
    eventually(lambda: active_requests(local.endpoint) == 0, "no request in flight")

    assert s3.get_object(Bucket=bucket, Key="kept")["Body"].read() == b"original"
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in listed] == ["kept"]
    assert files_under(root) == before_files  # no partial file, no temp file left behind
    # Descriptors come back (a few may be in flux: allow a small slack).
    eventually(lambda: tree_fds(local.pid) <= fds + 4, f"fds back to {fds}")
    growth = tree_rss(local.pid) - rss
    assert growth < 64 * MiB, f"RSS grew {growth / MiB:.1f} MiB over {rounds} aborted uploads"
    TALLY.notes.append(
        f"client aborts: {rounds} uploads cut; RSS {growth / MiB:+.1f} MiB, "
        f"fds {tree_fds(local.pid) - fds:+d}"
    )


def test_disconnect_mid_upload_on_cloud_backend(faulty_aws: FaultyAws) -> None:
    """A streamed body (a native multipart upload underneath) cut by the client."""
    env = faulty_aws
    s3 = s3_client(env.proxy.endpoint)
    bucket = new_bucket(s3, "abort")
    logged = disconnects_logged(env.proxy)
    for i in range(4):
        aborted_put(env.proxy.endpoint, f"/{bucket}/cut-{i}", 12 * MiB, 9 * MiB, i % 2 == 0)
    eventually(lambda: disconnects_logged(env.proxy) >= logged + 4, "every hang-up noticed")
    # The streamed bodies went into native uploads, and each was aborted.
    eventually(lambda: env.faults.open_exchanges == 0, "backend exchanges finished")
    assert len(env.faults.seen("POST", rf"/{bucket}/cut-\d\?uploads")) == 4
    eventually(
        lambda: not [k for k in cloud_uploads(env.moto, env.cloud_bucket) if bucket in k],
        "native multipart uploads aborted",
    )
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def raw_get_then_hang_up(endpoint: str, path: str, read_bytes: int) -> int:
    sock = socket.create_connection(address(endpoint), timeout=30)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: proxy\r\n\r\n".encode())
    got = 0
    while got < read_bytes:
        data = sock.recv(65536)
        if not data:
            break
        got += len(data)
    hang_up(sock, reset=True)
    return got


def test_disconnect_mid_download_closes_backend_stream(faulty_aws: FaultyAws) -> None:
    env = faulty_aws
    s3 = s3_client(env.proxy.endpoint)
    bucket = new_bucket(s3, "dl")
    size = 48 * MiB
    s3.put_object(Bucket=bucket, Key="big", Body=os.urandom(size))
    eventually(lambda: env.faults.open_exchanges == 0, "backend idle")
    mark = len(env.faults.requests)
    assert raw_get_then_hang_up(env.proxy.endpoint, f"/{bucket}/big", 2 * MiB) >= 2 * MiB
    # The proxy drops its backend stream: the backend's response is abandoned part-way.
    eventually(lambda: env.faults.open_exchanges == 0, "backend stream closed")
    reads = [r for r in env.faults.requests[mark:] if r.method == "GET" and "/big" in r.target]
    assert reads and all(r.done for r in reads)
    assert sum(r.relayed for r in reads) < size, "the proxy read the whole object anyway"
    assert httpx.get(f"{env.proxy.endpoint}/_s3proxy/health").status_code == 200


def test_disconnect_mid_download_closes_file(local: ProxyServer) -> None:
    s3 = s3_client(local.endpoint)
    bucket = new_bucket(s3, "dl")
    s3.put_object(Bucket=bucket, Key="big", Body=os.urandom(32 * MiB))
    raw_get_then_hang_up(local.endpoint, f"/{bucket}/big", MiB)  # warm-up
    eventually(lambda: active_requests(local.endpoint) == 0, "no request in flight")
    fds = tree_fds(local.pid)
    for _ in range(20):
        raw_get_then_hang_up(local.endpoint, f"/{bucket}/big", MiB)
    eventually(lambda: active_requests(local.endpoint) == 0, "no request in flight")
    eventually(lambda: tree_fds(local.pid) <= fds + 4, f"fds back to {fds}")


# -- slow clients ------------------------------------------------------------------------------


def closed_by_server(sock: socket.socket) -> bool:
    """Has the server closed (or answered and closed) this connection?"""
    sock.setblocking(False)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_slow_headers_are_timed_out(local: ProxyServer) -> None:
    """Slowloris: partial headers trickled in; the server must drop them, not wait."""
    socks: list[socket.socket] = []
    try:
        for _ in range(200):
            sock = socket.create_connection(address(local.endpoint), timeout=10)
            sock.sendall(b"GET /_s3proxy/health HTTP/1.1\r\nHost: proxy\r\n")
            socks.append(sock)
        # Keep trickling a header byte now and then; others must still be served.
        deadline = time.monotonic() + 60  # safety net
        alive = list(socks)
        while alive and time.monotonic() < deadline:
            for sock in list(alive):
                with contextlib.suppress(OSError):
                    sock.setblocking(True)
                    sock.sendall(b"X")
                if closed_by_server(sock):
                    alive.remove(sock)
            assert httpx.get(f"{local.endpoint}/_s3proxy/health", timeout=10).status_code == 200
            time.sleep(0.25)
        assert not alive, f"{len(alive)} slow-header connections still open"
    finally:
        for sock in socks:
            sock.close()


def stalled_put(endpoint: str, path: str) -> socket.socket:
    sock = socket.create_connection(address(endpoint), timeout=30)
    sock.sendall(f"PUT {path} HTTP/1.1\r\nHost: proxy\r\nContent-Length: {MiB}\r\n\r\n".encode())
    sock.sendall(b"first bytes, then nothing")
    return sock


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    sock.setblocking(True)
    sock.settimeout(30)
    data = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def test_stalled_bodies_time_out_and_free_their_slots(local: ProxyServer) -> None:
    s3 = s3_client(local.endpoint)
    bucket = new_bucket(s3, "slow")
    eventually(lambda: active_requests(local.endpoint) == 0, "no request in flight")
    socks = [stalled_put(local.endpoint, f"/{bucket}/s{i}") for i in range(MAX_CONCURRENT)]
    try:
        eventually(lambda: active_requests(local.endpoint) == MAX_CONCURRENT, "every slot taken")
        # Every slot is held by a stalled body: a new request is shed, not queued.
        refused = httpx.get(f"{local.endpoint}/{bucket}", timeout=30)
        assert refused.status_code == 503
        assert b"<Code>SlowDown</Code>" in refused.content
        # The idle timeout answers each stalled upload and closes its connection.
        for sock in socks:
            status, body = read_response(sock)
            assert status == 400, body
            assert b"<Code>RequestTimeout</Code>" in body
    finally:
        for sock in socks:
            sock.close()
    eventually(lambda: active_requests(local.endpoint) == 0, "slots freed")
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    # All the slots are usable again.
    with httpx.Client(timeout=30) as client:
        for i in range(MAX_CONCURRENT):
            assert client.put(f"{local.endpoint}/{bucket}/ok{i}", content=b"x").status_code == 200
    assert len(s3.list_objects_v2(Bucket=bucket)["Contents"]) == MAX_CONCURRENT


def test_ten_thousand_idle_connections(tmp_path: Path) -> None:
    """10k connections that send nothing: others are still served, and all are let go."""
    count = 10_000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < count + 2048:
        pytest.skip(f"descriptor hard limit {hard} is too low for {count} connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the proxy inherits it
    server = start_proxy(tmp_path, "local", env={"S3PROXY_LIMITS__HEADER_TIMEOUT": "30"})
    socks: list[socket.socket] = []
    try:
        s3 = s3_client(server.endpoint)
        bucket = new_bucket(s3, "idle")
        fds = tree_fds(server.pid)
        for _ in range(count):
            socks.append(socket.create_connection(address(server.endpoint), timeout=30))
        eventually(lambda: tree_fds(server.pid) >= fds + count * 0.9, "connections accepted")
        # While they are all open, a new client is served normally.
        data = os.urandom(MiB)
        s3.put_object(Bucket=bucket, Key="during", Body=data)
        assert s3.get_object(Bucket=bucket, Key="during")["Body"].read() == data
        assert httpx.get(f"{server.endpoint}/_s3proxy/health", timeout=30).status_code == 200
        held = tree_fds(server.pid) - fds
        for sock in socks:
            sock.close()
        socks.clear()
        eventually(lambda: tree_fds(server.pid) <= fds + 8, "idle connections released")
        assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 1
        proxy_log_has_no_crash(server)
        TALLY.notes.append(f"idle connections: {count} opened, {held} held by the proxy at once")
    finally:
        for sock in socks:
            sock.close()
        stop_proxy(server)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_proxy_is_healthy_after_client_faults(local: ProxyServer) -> None:
    s3 = s3_client(local.endpoint)
    bucket = new_bucket(s3, "after")
    data = os.urandom(3 * MiB)
    s3.put_object(Bucket=bucket, Key=f"k-{uuid.uuid4().hex}", Body=data)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 1
    proxy_log_has_no_crash(local)
