"""SIGTERM lets in-flight requests finish before the server exits."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.conftest import s3_client, start_proxy, stop_proxy

MiB = 1024 * 1024


def test_sigterm_drains_in_flight_upload(tmp_path: Path) -> None:
    server = start_proxy(tmp_path, "local")
    s3_client(server.endpoint).create_bucket(Bucket="drain")
    started = threading.Event()

    def slow_body() -> Iterator[bytes]:
        for i in range(16):
            if i == 2:
                started.set()
            time.sleep(0.1)
            yield b"d" * MiB

    result: dict[str, httpx.Response] = {}

    def upload() -> None:
        result["put"] = httpx.put(
            f"{server.endpoint}/drain/in-flight",
            content=slow_body(),
            headers={"content-length": str(16 * MiB)},
            timeout=60,
        )

    thread = threading.Thread(target=upload)
    thread.start()
    assert started.wait(10)
    server.process.send_signal(signal.SIGTERM)
    thread.join(60)
    assert result["put"].status_code == 200
    assert server.process.wait(timeout=30) == 0

    # The object is complete after a restart on the same directory.
    again = start_proxy(tmp_path, "local")
    try:
        head = s3_client(again.endpoint).head_object(Bucket="drain", Key="in-flight")
        assert head["ContentLength"] == 16 * MiB
    finally:
        stop_proxy(again)
