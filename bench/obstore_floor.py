"""The floor under a proxied small request: obstore alone, calling SeaweedFS.

Every GET through the proxy's cloud backends makes obstore calls (a ranged GET and its
body, or one HEAD). This measures what those calls cost by themselves, from one Python
process with 32 requests in flight and no proxy at all: calls per second and the
process's CPU time per call (signing, the HTTP client, tokio and the asyncio hand-off)::

    python -m bench.obstore_floor
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import obstore
from obstore.store import S3Store

from bench import servers

CONCURRENCY = 32
CALLS = 200  # per concurrent worker


async def _measure(name: str, call: Callable[[], Awaitable[object]]) -> None:
    async def worker(n: int) -> None:
        for _ in range(n):
            await call()

    await worker(20)  # warm the connection pool
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(CALLS) for _ in range(CONCURRENCY)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    n = CONCURRENCY * CALLS
    print(f"{name:<34} {n / wall:8,.0f} calls/s {cpu / n * 1e6:6,.0f} us CPU/call")


async def _run(store: S3Store) -> None:
    await obstore.put_async(store, "floor/k", b"x" * 1024)

    async def ranged_get() -> None:
        res = await obstore.get_async(store, "floor/k", options={"range": (0, 64 * 1024)})
        await res.bytes_async()

    async def get_range() -> None:
        await obstore.get_range_async(store, "floor/k", start=0, end=1024)

    async def head() -> None:
        await obstore.head_async(store, "floor/k")

    async def put() -> None:
        await obstore.put_async(store, "floor/p", b"x" * 1024)

    print(f"obstore {obstore.__version__}, {CONCURRENCY} calls in flight, 1 KiB object")
    await _measure("get_async + bytes_async (GetObject)", ranged_get)
    await _measure("get_range_async", get_range)
    await _measure("head_async (HeadObject, 304)", head)
    await _measure("put_async (PutObject)", put)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="s3proxy-floor-") as tmp:
        seaweed = servers.start_seaweedfs(Path(tmp))
        try:
            servers.create_bucket(seaweed.port, "bench")
            store = S3Store(
                "bench",
                endpoint=f"http://127.0.0.1:{seaweed.port}",
                region="us-east-1",
                access_key_id="bench",
                secret_access_key="bench",
                client_options={"allow_http": True},
            )
            asyncio.run(_run(store))
        finally:
            seaweed.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
