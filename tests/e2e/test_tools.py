"""Real tools against the proxy: s3fs/fsspec, PyArrow (through s3fs and its own S3
client) reading and writing Parquet, and rclone; each with a >= 64 MiB object and
awkward keys.

The big objects go up as multipart uploads (8 MiB parts), the way these tools upload
large files by default.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import ProxyServer, s3_client, start_proxy, stop_proxy

MiB = 1024 * 1024
BIG = 64 * MiB + 12345
# Keys every tool here can name: spaces, unicode, and characters URLs must escape.
AWKWARD = ["dir with space/ünï cödé+plus%pct #hash.bin", "a=b&c/日本語 (1).bin"]
# Upload settings that make each tool use multipart uploads for the big objects.
MULTIPART = {"block": 8 * MiB, "rclone": ["--s3-upload-cutoff", "16M", "--s3-chunk-size", "8M"]}


def multipart_etag(data: bytes, part: int) -> str:
    """S3's ETag of a multipart object: MD5 of the parts' MD5s, then the part count."""
    digests = [hashlib.md5(data[i : i + part]).digest() for i in range(0, len(data), part)]
    return f'"{hashlib.md5(b"".join(digests)).hexdigest()}-{len(digests)}"'


@pytest.fixture(scope="module")
def tool_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    server = start_proxy(tmp_path_factory.mktemp("tools"), "local")
    yield server
    stop_proxy(server)


@pytest.fixture
def tool_bucket(tool_proxy: ProxyServer) -> str:
    name = f"tools-{uuid.uuid4().hex[:10]}"
    s3_client(tool_proxy.endpoint).create_bucket(Bucket=name)  # type: ignore[attr-defined]
    return name


def pattern(size: int) -> bytes:
    """Incompressible-looking, position-dependent bytes (a misplaced block changes digests)."""
    block = hashlib.sha256(b"seed").digest() * (MiB // 32)
    out = bytearray()
    index = 0
    while len(out) < size:
        out += index.to_bytes(8, "big") + block[8:]
        index += 1
    return bytes(out[:size])


# -- s3fs / fsspec -------------------------------------------------------------------------


@pytest.fixture
def fs(tool_proxy: ProxyServer):  # type: ignore[no-untyped-def]
    s3fs = pytest.importorskip("s3fs")
    return s3fs.S3FileSystem(
        key="test-access-key",
        secret="test-secret-key",
        endpoint_url=tool_proxy.endpoint,
        client_kwargs={"region_name": "us-east-1"},
        config_kwargs={"s3": {"addressing_style": "path"}},
        default_block_size=MULTIPART["block"],
        skip_instance_cache=True,
        use_listings_cache=False,
    )


@pytest.mark.slow
def test_s3fs_large_object_and_awkward_keys(fs, tool_bucket: str, tmp_path: Path) -> None:
    data = pattern(BIG)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    big = f"{tool_bucket}/{AWKWARD[0]}"
    fs.put_file(str(source), big, chunksize=MULTIPART["block"])
    info = fs.info(big)
    assert info["size"] == BIG
    assert info["ETag"] == multipart_etag(data, MULTIPART["block"])
    # Ranged reads through the file interface, then the whole object.
    with fs.open(big, "rb", block_size=8 * MiB) as f:
        f.seek(40 * MiB)
        assert f.read(MiB) == data[40 * MiB : 41 * MiB]
    assert hashlib.sha256(fs.cat_file(big)).digest() == hashlib.sha256(data).digest()
    # A small write through the buffered file, a server-side copy, a listing.
    with fs.open(f"{tool_bucket}/{AWKWARD[1]}", "wb") as f:
        f.write(b"small")
    fs.copy(big, f"{tool_bucket}/copies/big.bin")
    assert fs.cat_file(f"{tool_bucket}/copies/big.bin", start=BIG - 10) == data[-10:]
    listed = sorted(fs.find(tool_bucket))
    assert listed == sorted([big, f"{tool_bucket}/{AWKWARD[1]}", f"{tool_bucket}/copies/big.bin"])
    assert fs.ls(f"{tool_bucket}/dir with space", detail=False) == [big]
    # Removing several files at once is a DeleteObjects.
    fs.rm(listed)
    assert fs.find(tool_bucket) == []


# -- PyArrow / Parquet -----------------------------------------------------------------------


def _table(rows: int, payload: int):  # type: ignore[no-untyped-def]
    pa = pytest.importorskip("pyarrow")
    # Truly varied bytes: Parquet's dictionary encoding would fold repeated values.
    blob = random.Random(rows).randbytes(rows * payload)
    return pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "name": pa.array([f"row-{i}-é" for i in range(rows)]),
            "payload": pa.array([blob[i * payload : (i + 1) * payload] for i in range(rows)]),
        }
    )


@pytest.mark.slow
def test_parquet_through_s3fs(fs, tool_bucket: str) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    table = _table(rows=1100, payload=64 * 1024)  # ~68 MiB of incompressible payload
    path = f"{tool_bucket}/tables/{AWKWARD[0]}.parquet"
    pq.write_table(table, path, filesystem=fs, compression="none")
    assert fs.info(path)["size"] >= 64 * MiB
    back = pq.read_table(path, filesystem=fs)
    assert back.equals(table)
    # Column projection: Parquet readers fetch column chunks with ranged GETs.
    assert pq.read_table(path, filesystem=fs, columns=["id"]).column("id").to_pylist() == list(
        range(1100)
    )


@pytest.mark.slow
def test_parquet_through_arrow_s3(fs, tool_proxy: ProxyServer, tool_bucket: str) -> None:
    pafs = pytest.importorskip("pyarrow.fs")
    pq = pytest.importorskip("pyarrow.parquet")
    arrow = pafs.S3FileSystem(
        access_key="test-access-key",
        secret_key="test-secret-key",
        region="us-east-1",
        scheme="http",
        endpoint_override=urlsplit(tool_proxy.endpoint).netloc,
    )
    # Arrow's own S3 client writes small files with one PutObject.
    small = _table(rows=50, payload=1024)
    small_path = f"{tool_bucket}/arrow/{AWKWARD[1]}.parquet"
    pq.write_table(small, small_path, filesystem=arrow)
    assert pq.read_table(small_path, filesystem=arrow).equals(small)
    # A large file written with s3fs, read back by Arrow's client (ranged GETs).
    big = _table(rows=1100, payload=64 * 1024)
    big_path = f"{tool_bucket}/arrow/big table.parquet"
    pq.write_table(big, big_path, filesystem=fs, compression="none")
    assert arrow.get_file_info(big_path).size >= 64 * MiB
    assert pq.read_table(big_path, filesystem=arrow).equals(big)
    selector = pafs.FileSelector(f"{tool_bucket}/arrow", recursive=True)
    infos = arrow.get_file_info(selector)
    names = sorted(i.path for i in infos if i.type == pafs.FileType.File)
    assert names == sorted([big_path, small_path])


# -- rclone ----------------------------------------------------------------------------------


def rclone(proxy: ProxyServer, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
    env.update(
        {
            "RCLONE_CONFIG": str(config),
            "RCLONE_CONFIG_PROXY_TYPE": "s3",
            "RCLONE_CONFIG_PROXY_PROVIDER": "Other",
            "RCLONE_CONFIG_PROXY_ENDPOINT": proxy.endpoint,
            "RCLONE_CONFIG_PROXY_ACCESS_KEY_ID": "test-access-key",
            "RCLONE_CONFIG_PROXY_SECRET_ACCESS_KEY": "test-secret-key",
            "RCLONE_CONFIG_PROXY_REGION": "us-east-1",
            "RCLONE_CONFIG_PROXY_FORCE_PATH_STYLE": "true",
        }
    )
    return subprocess.run(
        ["rclone", *args, *MULTIPART["rclone"], "--retries", "1", "--low-level-retries", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone is not installed")
def test_rclone_round_trip(tool_proxy: ProxyServer, tool_bucket: str, tmp_path: Path) -> None:
    config = tmp_path / "rclone.conf"
    config.write_text("")
    src = tmp_path / "src"
    (src / "dir with space").mkdir(parents=True)
    data = pattern(BIG)
    (src / AWKWARD[0]).write_bytes(data)
    (src / "small ünï+%.txt").write_text("small file\n")
    remote = f"proxy:{tool_bucket}/sync"

    def ok(*args: str) -> str:
        done = rclone(tool_proxy, config, *args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    ok("copy", str(src), remote)
    # rclone compares sizes and MD5s (the ETag) of every file.
    ok("check", str(src), remote)
    md5s = dict(reversed(line.split("  ", 1)) for line in ok("md5sum", remote).splitlines())
    assert md5s[AWKWARD[0]] == hashlib.md5(data).hexdigest()
    # Server-side copy (CopyObject) and download.
    ok("copyto", f"{remote}/{AWKWARD[0]}", f"proxy:{tool_bucket}/copied/big.bin")
    dst = tmp_path / "dst"
    ok("copy", f"proxy:{tool_bucket}/copied", str(dst))
    assert hashlib.sha256((dst / "big.bin").read_bytes()).digest() == hashlib.sha256(data).digest()
    ok("delete", f"proxy:{tool_bucket}")
    assert ok("lsf", "-R", f"proxy:{tool_bucket}") == ""
