"""An HTTP/1.1 fault-injecting proxy for tests, on loopback, between s3proxy and a backend.

It forwards requests one at a time per connection to an upstream server (moto, Azurite,
...) and, for requests that match a ``Fault`` rule, misbehaves instead:

- ``delay``: wait ``seconds`` before forwarding (the request then goes through);
- ``status``: answer ``status`` with an S3-style XML error, without forwarding;
- ``status_after``: forward (the upstream applies the request), then answer ``status``
  anyway: the ambiguous failure where the write happened but the caller cannot know;
- ``reset_request``: read ``after_bytes`` of the request body, then reset the connection;
- ``reset_response``: forward, send the response head and ``after_bytes`` of its body,
  then reset the connection;
- ``stall``: read the request, then never answer (until the client gives up).

Rules match on method and a regular expression searched in the request target (path
and query, as the upstream sees it), skip the first ``skip`` matches and fire ``times``
times (-1: always). Every fired fault is counted in ``FaultProxy.injected``.

The proxy runs its own event loop in a daemon thread, so synchronous tests (boto3,
httpx) can drive s3proxy while faults are injected underneath it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

FaultKind = Literal["delay", "status", "status_after", "reset_request", "reset_response", "stall"]
_CODES = {500: "InternalError", 503: "SlowDown", 502: "BadGateway", 504: "GatewayTimeout"}
_READ = 64 * 1024
_MAX_HEAD = 64 * 1024


@dataclass
class Fault:
    """One rule; see the module docstring."""

    kind: FaultKind
    method: str | None = None
    path: str | None = None
    times: int = 1
    skip: int = 0
    status: int = 503
    seconds: float = 0.0
    after_bytes: int = 0
    #: Matching requests seen so far, and faults fired.
    seen: int = 0
    fired: int = 0

    def matches(self, method: str, target: str) -> bool:
        if self.method is not None and method != self.method:
            return False
        return self.path is None or re.search(self.path, target) is not None

    def take(self) -> bool:
        """Count a matching request; True if the fault fires for it."""
        self.seen += 1
        if self.seen <= self.skip:
            return False
        if self.times >= 0 and self.fired >= self.times:
            return False
        self.fired += 1
        return True


@dataclass
class Seen:
    """A request that reached the fault proxy, and what was done to it."""

    method: str
    target: str
    action: str
    #: Response body bytes relayed to the client, and whether the exchange has ended
    #: (answered in full, cut by a fault, or abandoned by either side).
    relayed: int = 0
    done: bool = False


@dataclass
class _Head:
    line: str
    headers: list[tuple[str, str]]

    def get(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def encode(self) -> bytes:
        lines = [self.line, *(f"{k}: {v}" for k, v in self.headers)]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Closed(Exception):
    pass


async def _read_head(reader: asyncio.StreamReader) -> _Head:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        raise _Closed() from exc
    except asyncio.LimitOverrunError as exc:
        raise _Closed() from exc
    lines = raw.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return _Head(lines[0], headers)


def _framing(head: _Head, *, no_body: bool, response: bool) -> tuple[str, int]:
    """('none' | 'length' | 'chunked' | 'close', length)."""
    if no_body:
        return "none", 0
    if (head.get("transfer-encoding") or "").lower().endswith("chunked"):
        return "chunked", 0
    length = head.get("content-length")
    if length is not None:
        return "length", int(length)
    return ("close", 0) if response else ("none", 0)


async def _relay_body(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter | None,
    framing: tuple[str, int],
    limit: int = -1,
    progress: Seen | None = None,
) -> int:
    """Copy a body in its own framing; stop after ``limit`` bytes (-1: the whole body).

    Returns the bytes relayed. Raises _Closed if the reader ended early.
    """
    kind, length = framing
    sent = 0

    async def out(data: bytes) -> None:
        if writer is not None and data:
            writer.write(data)
            await writer.drain()
            if progress is not None:
                progress.relayed += len(data)

    try:
        if kind == "length":
            remaining = length
            while remaining:
                want = min(_READ, remaining)
                if limit >= 0:
                    want = min(want, limit - sent)
                    if want <= 0:
                        return sent
                data = await reader.read(want)
                if not data:
                    raise _Closed()
                await out(data)
                sent += len(data)
                remaining -= len(data)
        elif kind == "chunked":
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    trailer = b""
                    while True:
                        line = await reader.readuntil(b"\r\n")
                        trailer += line
                        if line == b"\r\n":
                            break
                    await out(size_line + trailer)
                    return sent
                data = await reader.readexactly(size + 2)
                if limit >= 0 and sent + size > limit:
                    await out(size_line + data[: max(0, limit - sent)])
                    return limit
                await out(size_line + data)
                sent += size
        elif kind == "close":
            while data := await reader.read(_READ):
                if limit >= 0 and sent + len(data) > limit:
                    await out(data[: limit - sent])
                    return limit
                await out(data)
                sent += len(data)
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        raise _Closed() from exc
    return sent


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN: the peer sees a connection reset."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _error_response(status: int, request_id: str) -> bytes:
    code = _CODES.get(status, "InternalError")
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>injected fault</Message><RequestId>{request_id}</RequestId></Error>"
    ).encode()
    head = (
        f"HTTP/1.1 {status} Fault\r\nContent-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


@dataclass
class FaultProxy:
    """The fault proxy in front of ``upstream`` (``http://host:port``)."""

    upstream: str
    faults: list[Fault] = field(default_factory=list)
    requests: list[Seen] = field(default_factory=list)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: asyncio.Server | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: asyncio.Event | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    # -- control (any thread) --------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every rule (stalled requests stay stalled until their client leaves)."""
        with self._lock:
            self.faults.clear()

    @property
    def injected(self) -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.action != "pass")

    def seen(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method)
                and (path is None or re.search(path, r.target))
            ]

    @contextlib.contextmanager
    def fault(self, fault: Fault) -> Iterator[Fault]:
        """Inject ``fault`` for the duration of a ``with`` block."""
        self.add(fault)
        try:
            yield fault
        finally:
            with self._lock:
                if fault in self.faults:
                    self.faults.remove(fault)

    def start(self) -> FaultProxy:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.run_until_complete(self._serve(ready))
            loop.close()

        self._thread = threading.Thread(target=run, name="fault-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fault proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    # -- the proxy (its own loop) ----------------------------------------------------------

    async def _serve(self, ready: threading.Event) -> None:
        self._stop = asyncio.Event()
        self._server = await asyncio.start_server(
            self._connection, "127.0.0.1", self.port, limit=_MAX_HEAD
        )
        self.port = self._server.sockets[0].getsockname()[1]
        ready.set()
        async with self._server:
            await self._stop.wait()
            self._server.close()
            # Stalled and idle connections: end them rather than wait for their clients.
            for conn in list(self._writers):
                conn.transport.abort()

    def _choose(self, method: str, target: str) -> tuple[Seen, Fault | None]:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, target) and fault.take():
                    seen = Seen(method, target, fault.kind)
                    self.requests.append(seen)
                    return seen, fault
            seen = Seen(method, target, "pass")
            self.requests.append(seen)
        return seen, None

    @property
    def open_exchanges(self) -> int:
        """Requests still being relayed (or stalled)."""
        with self._lock:
            return sum(1 for r in self.requests if not r.done)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._writers.add(writer)
        seen: Seen | None = None
        try:
            while True:
                try:
                    head = await _read_head(reader)
                except _Closed:
                    return
                method, target, _ = [*head.line.split(" ", 2), "", ""][:3]
                seen, fault = self._choose(method, target)
                if head.get("expect") is not None:
                    head.headers = [(k, v) for k, v in head.headers if k.lower() != "expect"]
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                body = _framing(head, no_body=False, response=False)
                kind = fault.kind if fault is not None else "pass"
                if fault is not None and kind == "delay":
                    await asyncio.sleep(fault.seconds)
                if fault is not None and kind == "status":
                    await _relay_body(reader, None, body)
                    writer.write(_error_response(fault.status, f"fault-{len(self.requests)}"))
                    await writer.drain()
                    seen.done = True
                    continue
                if fault is not None and kind == "reset_request":
                    await _relay_body(reader, None, body, limit=fault.after_bytes)
                    _reset(writer)
                    return
                if kind == "stall":
                    await _relay_body(reader, None, body)
                    await reader.read()  # until the client hangs up
                    return
                if upstream is None:
                    host, port = self.upstream.removeprefix("http://").split(":")
                    upstream = await asyncio.open_connection(host, int(port), limit=_MAX_HEAD)
                up_reader, up_writer = upstream
                up_writer.write(head.encode())
                await _relay_body(reader, up_writer, body)
                resp = await _read_head(up_reader)
                status = int(resp.line.split(" ", 2)[1])
                no_body = method == "HEAD" or status in (204, 304) or 100 <= status < 200
                resp_body = _framing(resp, no_body=no_body, response=True)
                if fault is not None and kind == "status_after":
                    await _relay_body(up_reader, None, resp_body)
                    writer.write(_error_response(fault.status, f"fault-{len(self.requests)}"))
                    await writer.drain()
                elif fault is not None and kind == "reset_response":
                    writer.write(resp.encode())
                    seen.relayed = await _relay_body(
                        up_reader, writer, resp_body, limit=fault.after_bytes
                    )
                    _reset(writer)
                    up_writer.transport.abort()
                    return
                else:
                    writer.write(resp.encode())
                    await _relay_body(up_reader, writer, resp_body, progress=seen)
                seen.done = True
                if resp_body[0] == "close" or (resp.get("connection") or "").lower() == "close":
                    up_writer.close()
                    upstream = None
        except (_Closed, ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            if seen is not None:
                seen.done = True
            self._writers.discard(writer)
            if upstream is not None:
                upstream[1].transport.abort()
            with contextlib.suppress(Exception):
                writer.close()
