"""At-rest encryption cost: a 256 MiB object through the proxy with the transform layer
on vs off (local backend), PutObject and GetObject throughput plus proxy CPU per GiB.

Needs the s3proxy-transform plugin installed. Run from the repository root:

    .venv/bin/python bench/transform.py [--mib 256] [--rounds 3]

Bounded: two proxies, ``rounds`` PUT+GET pairs each (plus 200 ranged reads), the median
reported. Client CPU (boto3 signs the payload) is the same in both variants; the proxy
CPU column isolates what the layer costs.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import ProxyServer, s3_client, start_proxy, stop_proxy

MiB = 1024 * 1024
RANGED_READS = 200
RANGE_SIZE = 4096


def layer_env(key: str) -> dict[str, str]:
    """Turn the layer on for every bucket (see plugins/transform/tests/conftest.py)."""
    from s3proxy.config import Config

    if "plugins" in Config.__struct_fields__:
        return {"S3PROXY_PLUGINS__TRANSFORM__BUCKETS": "*", "S3PROXY_PLUGINS__TRANSFORM__KEY": key}
    import json

    tests = Path(__file__).resolve().parents[1] / "plugins" / "transform" / "tests"
    return {
        "S3PROXY_PLUGINS": "transform_env_plugin",
        "PYTHONPATH": str(tests),
        "TRANSFORM_TEST_SETTINGS": json.dumps({"buckets": "*", "key": key}),
    }


def proxy_cpu(server: ProxyServer) -> float:
    root = psutil.Process(server.pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        times = proc.cpu_times()
        total += times.user + times.system
    return total


def run_variant(
    name: str, work: Path, env: dict[str, str], data: bytes, rounds: int
) -> dict[str, float]:
    (work / name).mkdir()
    server = start_proxy(work / name, "local", env)
    try:
        s3 = s3_client(server.endpoint)
        s3.create_bucket(Bucket="bench")
        puts: list[float] = []
        gets: list[float] = []
        put_cpu: list[float] = []
        get_cpu: list[float] = []
        for _ in range(rounds):
            cpu = proxy_cpu(server)
            started = time.perf_counter()
            s3.put_object(Bucket="bench", Key="big", Body=data)
            puts.append(time.perf_counter() - started)
            put_cpu.append(proxy_cpu(server) - cpu)

            cpu = proxy_cpu(server)
            started = time.perf_counter()
            body = s3.get_object(Bucket="bench", Key="big")["Body"]
            got = 0
            for block in body.iter_chunks(4 * MiB):
                got += len(block)
            gets.append(time.perf_counter() - started)
            get_cpu.append(proxy_cpu(server) - cpu)
            assert got == len(data)
        step = len(data) // RANGED_READS
        started = time.perf_counter()
        for i in range(RANGED_READS):
            start = i * step + 12345 % step
            rng = f"bytes={start}-{start + RANGE_SIZE - 1}"
            chunk = s3.get_object(Bucket="bench", Key="big", Range=rng)["Body"].read()
            assert chunk == data[start : start + RANGE_SIZE]
        ranged = (time.perf_counter() - started) / RANGED_READS
        stored = sum(p.stat().st_size for p in (work / name).rglob("*") if p.is_file())
    finally:
        stop_proxy(server)
    size_mib = len(data) / MiB
    gib = len(data) / (1024 * MiB)
    return {
        "put_mibs": size_mib / statistics.median(puts),
        "get_mibs": size_mib / statistics.median(gets),
        "put_cpu_per_gib": statistics.median(put_cpu) / gib,
        "get_cpu_per_gib": statistics.median(get_cpu) / gib,
        "range_ms": ranged * 1000,
        "stored_mib": stored / MiB,
    }


def layer_only(data: bytes) -> tuple[float, float]:
    """MiB/s of the chunk format alone (seal, then open), in this process, 1 MiB feeds."""
    from s3proxy_transform.chunks import FIXED, ChunkCipher, ChunkReader, ChunkWriter, plan_read

    cipher = ChunkCipher(os.urandom(32), os.urandom(8), FIXED)
    writer = ChunkWriter(cipher, 64 * 1024)
    started = time.perf_counter()
    sealed = [writer.feed(data[i : i + MiB]) for i in range(0, len(data), MiB)]
    sealed.append(writer.finish())
    seal_s = time.perf_counter() - started
    stored = b"".join(sealed)
    plan = plan_read(
        layout=FIXED,
        size=len(data),
        chunk_size=64 * 1024,
        stored_size=len(stored),
        start=0,
        end=len(data),
    )
    reader = ChunkReader(
        cipher,
        layout=FIXED,
        size=len(data),
        chunk_size=64 * 1024,
        plan=plan,
        start=0,
        end=len(data),
    )
    started = time.perf_counter()
    for i in range(0, len(stored), MiB):
        reader.feed(stored[i : i + MiB])
    reader.check_complete()
    open_s = time.perf_counter() - started
    return len(data) / MiB / seal_s, len(data) / MiB / open_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    data = os.urandom(args.mib * MiB)
    key = base64.b64encode(os.urandom(32)).decode()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="s3proxy-bench-transform-") as tmp:
        work = Path(tmp)
        for name, env in (("plain", {}), ("encrypted", layer_env(key))):
            results[name] = run_variant(name, work, env, data, args.rounds)
    print(f"{args.mib} MiB object, local backend, median of {args.rounds} rounds")
    header = (
        f"{'variant':<10} {'PUT MiB/s':>10} {'GET MiB/s':>10} {'PUT cpu s/GiB':>14} "
        f"{'GET cpu s/GiB':>14} {'4K range ms':>12} {'on disk MiB':>12}"
    )
    print(header)
    for name, r in results.items():
        print(
            f"{name:<10} {r['put_mibs']:>10.0f} {r['get_mibs']:>10.0f} "
            f"{r['put_cpu_per_gib']:>14.2f} {r['get_cpu_per_gib']:>14.2f} "
            f"{r['range_ms']:>12.1f} {r['stored_mib']:>12.1f}"
        )
    seal, unseal = layer_only(data)
    print(f"layer alone, in-process: encrypt {seal:.0f} MiB/s, decrypt {unseal:.0f} MiB/s")
    plain, enc = results["plain"], results["encrypted"]
    print(
        f"encrypted/plain throughput: PUT {enc['put_mibs'] / plain['put_mibs']:.2f}, "
        f"GET {enc['get_mibs'] / plain['get_mibs']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
