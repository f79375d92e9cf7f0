"""A mixed S3 workload for soak runs: PUT, GET, LIST, multipart, DELETE from N clients.

Each client owns a key prefix and remembers the MD5 of every object it wrote, so every
read is checked against what was written, every listing against what should exist, and
at the end every surviving object is read back. The proxy's RSS is sampled throughout
and its slope reported. Used by ``bench/soak.py`` (long run) and
``tests/reliability/test_soak.py`` (bounded CI run).
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tests.conftest import s3_client
from tests.reliability.helpers import tree_rss

KiB = 1024
MiB = 1024 * KiB
# Guards the shared SoakResult across client threads.
_LOCK = threading.Lock()


@dataclass
class SoakResult:
    seconds: float
    operations: Counter[str] = field(default_factory=Counter)
    server_errors: int = 0
    client_errors: list[str] = field(default_factory=list)
    objects_verified: int = 0
    objects_lost: int = 0
    mismatches: list[str] = field(default_factory=list)
    rss_samples: list[tuple[float, int]] = field(default_factory=list)

    @property
    def total_ops(self) -> int:
        return sum(self.operations.values())

    def rss_slope_mib_per_min(self, skip_fraction: float = 0.25) -> float:
        """Least-squares slope of RSS over time, after the first ``skip_fraction`` (warm-up)."""
        samples = self.rss_samples[int(len(self.rss_samples) * skip_fraction) :]
        if len(samples) < 3:
            return 0.0
        n = len(samples)
        mean_t = sum(t for t, _ in samples) / n
        mean_r = sum(r for _, r in samples) / n
        var = sum((t - mean_t) ** 2 for t, _ in samples)
        if var == 0:
            return 0.0
        cov = sum((t - mean_t) * (r - mean_r) for t, r in samples)
        return cov / var * 60 / MiB

    def summary(self, label: str) -> str:
        first = self.rss_samples[0][1] / MiB if self.rss_samples else 0
        last = self.rss_samples[-1][1] / MiB if self.rss_samples else 0
        ops = ", ".join(f"{k} {v}" for k, v in sorted(self.operations.items()))
        return (
            f"soak {label}: {self.seconds:.0f} s, {self.total_ops} operations ({ops}); "
            f"5xx: {self.server_errors}; other errors: {len(self.client_errors)}; "
            f"objects verified at the end: {self.objects_verified}; "
            f"lost or corrupted: {self.objects_lost + len(self.mismatches)}; "
            f"RSS {first:.0f} -> {last:.0f} MiB, slope {self.rss_slope_mib_per_min():+.2f} MiB/min"
        )


class _Sampler:
    def __init__(self, pid: int, result: SoakResult, every: float = 1.0) -> None:
        self.pid, self.result, self.every = pid, result, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._start = time.monotonic()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.result.rss_samples.append((time.monotonic() - self._start, tree_rss(self.pid)))
            self._stop.wait(self.every)

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


class _Client:
    """One simulated client: its own boto3 client, key prefix and expected state."""

    def __init__(
        self, endpoint: str, bucket: str, index: int, result: SoakResult, min_part: int
    ) -> None:
        self.s3: Any = s3_client(endpoint, max_pool_connections=4)
        self.bucket = bucket
        self.prefix = f"c{index:02d}/"
        self.rng = random.Random(index)
        self.result = result
        self.min_part = min_part
        #: key -> (MD5 of the content, the S3 ETag: the MD5, or the multipart form)
        self.expected: dict[str, tuple[str, str]] = {}

    def _record(self, op: str) -> None:
        with _LOCK:
            self.result.operations[op] += 1

    def _call(self, op: str, fn: Callable[[], Any]) -> Any:
        try:
            out = fn()
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            with _LOCK:
                if status >= 500:
                    self.result.server_errors += 1
                self.result.client_errors.append(f"{op}: {status} {exc.response['Error']}")
            return None
        except BotoCoreError as exc:
            with _LOCK:
                self.result.client_errors.append(f"{op}: {type(exc).__name__}: {exc}")
            return None
        self._record(op)
        return out

    def _body(self) -> bytes:
        size = self.rng.choice([0, 1, 100, 4 * KiB, 64 * KiB, 300 * KiB, 2 * MiB])
        return os.urandom(size)

    def step(self) -> None:
        roll = self.rng.random()
        keys = sorted(self.expected)
        if roll < 0.30 or not keys:
            key = f"{self.prefix}obj-{self.rng.randrange(40)}"
            data = self._body()
            out = self._call(
                "PUT", lambda: self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)
            )
            if out is not None:
                if out["ETag"].strip('"') != _md5(data):
                    self.result.mismatches.append(f"PUT {key}: ETag {out['ETag']}")
                self.expected[key] = (_md5(data), _md5(data))
        elif roll < 0.65:
            key = self.rng.choice(keys)
            out = self._call("GET", lambda: self.s3.get_object(Bucket=self.bucket, Key=key))
            if out is not None:
                body = out["Body"].read()
                if _md5(body) != self.expected[key][0]:
                    self.result.mismatches.append(f"GET {key}: content differs")
        elif roll < 0.75:
            out = self._call(
                "LIST", lambda: self.s3.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix)
            )
            if out is not None:
                listed = {o["Key"]: o["ETag"].strip('"') for o in out.get("Contents", [])}
                if listed != {k: etag for k, (_, etag) in self.expected.items()}:
                    self.result.mismatches.append(
                        f"LIST {self.prefix}: {sorted(set(listed) ^ set(self.expected))[:5]}"
                    )
        elif roll < 0.85:
            key = self.rng.choice(keys)
            if self._call("DELETE", lambda: self.s3.delete_object(Bucket=self.bucket, Key=key)):
                del self.expected[key]
        else:
            self._multipart()

    def _multipart(self) -> None:
        key = f"{self.prefix}mp-{self.rng.randrange(10)}"
        parts = [os.urandom(self.min_part + self.rng.randrange(1000)) for _ in range(2)]
        parts.append(os.urandom(self.rng.randrange(1, 5000)))
        created = self._call(
            "MPU-CREATE",
            lambda: self.s3.create_multipart_upload(Bucket=self.bucket, Key=key),
        )
        if created is None:
            return
        upload_id = created["UploadId"]
        spec = []
        for number, data in enumerate(parts, start=1):
            out = self._call(
                "MPU-PART",
                lambda n=number, d=data: self.s3.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=d
                ),
            )
            if out is None:
                return
            spec.append({"PartNumber": number, "ETag": out["ETag"]})
        if self.rng.random() < 0.2:
            self._call(
                "MPU-ABORT",
                lambda: self.s3.abort_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id
                ),
            )
            return
        out = self._call(
            "MPU-COMPLETE",
            lambda: self.s3.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": spec}
            ),
        )
        if out is not None:
            self.expected[key] = (_md5(b"".join(parts)), out["ETag"].strip('"'))

    def verify(self) -> tuple[int, int]:
        """Read back every object this client expects: (verified, lost or corrupted)."""
        ok = lost = 0
        for key, (md5, _) in sorted(self.expected.items()):
            try:
                body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except ClientError as exc:
                self.result.mismatches.append(f"final GET {key}: {exc.response['Error']}")
                lost += 1
                continue
            if _md5(body) == md5:
                ok += 1
            else:
                lost += 1
                self.result.mismatches.append(f"final GET {key}: content differs")
        return ok, lost


def run_soak(
    endpoint: str,
    proxy_pid: int,
    *,
    seconds: float,
    clients: int = 32,
    min_part: int = 64 * KiB,
    bucket: str | None = None,
) -> SoakResult:
    """Run the mixed workload for ``seconds`` (bounded: it stops by itself)."""
    result = SoakResult(seconds=seconds)
    bucket = bucket or f"soak-{os.getpid()}-{int(time.time())}"
    s3_client(endpoint).create_bucket(Bucket=bucket)
    workers = [_Client(endpoint, bucket, i, result, min_part) for i in range(clients)]
    deadline = time.monotonic() + seconds

    def drive(client: _Client) -> None:
        while time.monotonic() < deadline:
            client.step()

    with _Sampler(proxy_pid, result), ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(drive, c) for c in workers]:
            future.result()
    for client in workers:
        ok, lost = client.verify()
        result.objects_verified += ok
        result.objects_lost += lost
    return result
