"""CPU time per request of the proxy's Python layers, in process, without the network.

Drives the ASGI app returned by ``s3proxy.app.create_app`` directly (no Granian, no
sockets) against the memory backend, and reports the CPU time of the calling thread
per request. The number excludes the server and the backend client, which is the point:
it isolates what the S3 layer, middleware, metrics, tracing and logging cost, and it is
stable on a busy machine. ``--profile`` adds a pyinstrument report of the same loop::

    python -m bench.inproc                      # GET/PUT 1 KiB, 304, bad signature
    python -m bench.inproc --profile get        # where the time of one GET goes
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.workloads import bad_signature_headers

KEY = ("inproc-key", "inproc-secret-key-0123456789")
Message = dict[str, Any]


def _scope(method: str, path: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw.append((b"host", b"127.0.0.1:8080"))
    if body or method == "PUT":
        raw.append((b"content-length", str(len(body)).encode()))
    path_only, _, query = path.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path_only,
        "raw_path": path_only.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": raw,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
        "state": {},
    }


class Driver:
    """Runs one ASGI app: lifespan, then requests; collects status and body."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lifespan: asyncio.Task[None] | None = None
        self._events: asyncio.Queue[Message] = asyncio.Queue()
        self._started = asyncio.Event()

    async def start(self) -> None:
        async def receive() -> Message:
            return await self._events.get()

        async def send(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                self._started.set()
            elif message["type"] == "lifespan.startup.failed":
                raise RuntimeError(message.get("message"))

        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self._lifespan = asyncio.create_task(self.app(scope, receive, send))
        await self._events.put({"type": "lifespan.startup"})
        await self._started.wait()

    async def stop(self) -> None:
        await self._events.put({"type": "lifespan.shutdown"})
        if self._lifespan is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._lifespan, 5)

    async def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> tuple[int, bytes]:
        sent_body = False
        status = 0
        out = bytearray()

        async def receive() -> Message:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)  # the client stays connected
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                out.extend(message.get("body", b""))

        await self.app(_scope(method, path, headers or {}, body), receive, send)
        return status, bytes(out)


async def _measure(
    n: int, fn: Callable[[], Awaitable[tuple[int, bytes]]], expect: int
) -> tuple[float, float]:
    """(CPU us per request, wall us per request) over ``n`` sequential requests."""
    status, body = await fn()
    if status != expect:
        raise RuntimeError(f"expected {expect}, got {status}: {body[:300]!r}")
    cpu, wall = time.thread_time(), time.perf_counter()
    for _ in range(n):
        await fn()
    return (time.thread_time() - cpu) / n * 1e6, (time.perf_counter() - wall) / n * 1e6


async def run(n: int, rounds: int, only: list[str], profile: str | None) -> None:
    from s3proxy.app import create_app
    from s3proxy.config import AuthConfig, Config, LoggingConfig

    # The audit log is part of the cost: keep it, but write it to nowhere.
    sink = open(os.devnull, "w")  # noqa: SIM115, ASYNC230 - for the process lifetime
    logging_cfg = LoggingConfig(level="info", format="json")
    open_app = create_app(Config(backend="memory", logging=logging_cfg))
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sink)
    auth_app = create_app(
        Config(
            backend="memory",
            logging=logging_cfg,
            auth=AuthConfig(access_key_id=KEY[0], secret_access_key=KEY[1]),
        )
    )
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sink)
    dev, auth = Driver(open_app), Driver(auth_app)
    await dev.start()
    await auth.start()
    data = os.urandom(1024)
    await dev.request("PUT", "/bench")
    status, _ = await dev.request("PUT", "/bench/small", body=data)
    assert status == 200, status
    # The ETag of what was written, for If-None-Match.
    etag = '"' + __import__("hashlib").md5(data).hexdigest() + '"'
    bad = bad_signature_headers(KEY[0])
    cases: dict[str, tuple[Callable[[], Awaitable[tuple[int, bytes]]], int]] = {
        "get": (lambda: dev.request("GET", "/bench/small"), 200),
        "put": (lambda: dev.request("PUT", "/bench/small-put", body=data), 200),
        "304": (lambda: dev.request("GET", "/bench/small", {"If-None-Match": etag}), 304),
        "badsig": (lambda: auth.request("GET", "/bench/small", bad), 403),
    }
    selected = {k: v for k, v in cases.items() if not only or k in only}
    if profile:
        from pyinstrument import Profiler

        fn, expect = cases[profile]
        await _measure(50, fn, expect)
        profiler = Profiler(interval=0.0002, async_mode="disabled")
        profiler.start()
        await _measure(n, fn, expect)
        profiler.stop()
        out = io.StringIO()
        out.write(profiler.output_text(unicode=True, color=False, show_all=False))
        print(out.getvalue())
    else:
        results: dict[str, list[float]] = {k: [] for k in selected}
        for _ in range(rounds):
            for name, (fn, expect) in selected.items():
                cpu, _wall = await _measure(n, fn, expect)
                results[name].append(cpu)
        print(f"{'request':>8} {'CPU us/request (median of rounds)':>34}  rounds")
        for name, values in results.items():
            spread = ", ".join(f"{v:.0f}" for v in values)
            print(f"{name:>8} {statistics.median(values):34.1f}  {spread}")
    await dev.stop()
    await auth.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.inproc", description=__doc__.splitlines()[0]
    )
    parser.add_argument("-n", type=int, default=2000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default="", help="comma-separated: get,put,304,badsig")
    parser.add_argument("--profile", choices=["get", "put", "304", "badsig"])
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    args = parser.parse_args(argv)
    only = [x for x in args.only.split(",") if x]
    coro = run(args.n, args.rounds, only, args.profile)
    if args.uvloop:
        import uvloop

        uvloop.run(coro)
    else:
        asyncio.run(coro)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
