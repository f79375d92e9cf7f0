"""A webhook receiver on a loopback port (stdlib http.server in a thread)."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

#: Upper bound on waiting for background deliveries; tests never assert on time.
WAIT = 30.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def record(self) -> Any:
        records = self.json()["Records"]
        assert len(records) == 1
        return records[0]


class Receiver:
    """Records every POST; answers with the queued statuses, then 200."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.statuses: deque[int] = deque()
        #: When set, requests are recorded, then answered only once the gate opens.
        self.gate: threading.Event | None = None
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver._cond:
                    status = receiver.statuses.popleft() if receiver.statuses else 200
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    receiver.received.append(Received(self.path, headers, body))
                    receiver._cond.notify_all()
                if receiver.gate is not None:
                    receiver.gate.wait(WAIT)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def respond_with(self, *statuses: int) -> None:
        with self._cond:
            self.statuses.extend(statuses)

    def wait_for(self, count: int, timeout: float = WAIT) -> list[Received]:
        """The first ``count`` requests, once they have arrived (fails after ``timeout``)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"got {len(self.received)} of {count} requests")
                self._cond.wait(left)
            return list(self.received[:count])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def wait_until(check: Any, timeout: float = WAIT) -> None:
    """Poll ``check()`` until true (background work), failing after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)
