"""TransformBackend over the memory backend: the backend contract, and what the layer adds."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from obstore.store import MemoryStore
from s3proxy_transform import envelope, settings
from s3proxy_transform.chunks import FIXED, FRAMED, TAG
from s3proxy_transform.errors import IntegrityError, KeyUnavailable
from s3proxy_transform.keys import DataKey, StaticKeyProvider
from s3proxy_transform.layer import TransformBackend
from s3proxy_transform.settings import TransformSettings

from s3proxy.storage.backend import (
    GetResult,
    NoSuchKey,
    ObjectInfo,
    ObjectMetadata,
    PreconditionFailed,
    PutBody,
    StorageBackend,
)
from s3proxy.storage.builtin import make_memory
from s3proxy.storage.native import NativeObstoreBackend
from s3proxy.storage.native_meta import S3_RULES
from s3proxy.testing.backend_contract import BackendContract, make_body, read

KEY = base64.b64encode(bytes(range(32))).decode()
OTHER_KEY = base64.b64encode(bytes(range(1, 33))).decode()
CHUNK = 4096
TEXT = b"lorem ipsum dolor sit amet, consectetur adipiscing elit; " * 400


@dataclass
class HintedBody(PutBody):
    """A PutBody that tells its metadata up front (``PutBody.metadata`` in newer cores)."""

    metadata: ObjectMetadata | None = None


def hinted(*parts: bytes, content_type: str) -> PutBody:
    plain = make_body(*parts, content_type=content_type)
    return HintedBody(
        chunks=plain.chunks,
        finish=plain.finish,
        metadata=ObjectMetadata(etag="", content_type=content_type),
    )


def layer(inner: StorageBackend, **raw: Any) -> TransformBackend:
    config = {"buckets": ["*"], "key": KEY, "chunk_size": CHUNK, **raw}
    parsed = settings.parse(config)
    return TransformBackend(inner, parsed, StaticKeyProvider(parsed.master_keys()))


@pytest_asyncio.fixture
async def memory() -> AsyncIterator[StorageBackend]:
    backend = make_memory(None)
    await backend.start()
    yield backend
    await backend.close()


class TestEncryptedContract(BackendContract):
    """Every object encrypted (small chunks so that objects span many)."""

    @pytest_asyncio.fixture
    async def backend(self, memory: StorageBackend) -> StorageBackend:
        return layer(memory)


class TestEncryptedNativeContract(BackendContract):
    """Over the native (cloud) object format, which must keep ``layers`` too."""

    @pytest_asyncio.fixture
    async def backend(self) -> AsyncIterator[StorageBackend]:
        store = MemoryStore()
        inner = NativeObstoreBackend(
            "native-memory",
            lambda: store,
            rules=S3_RULES,
            buffer_limit=64 * 1024,
            max_path_bytes=10**6,
        )
        await inner.start()
        yield layer(inner)
        await inner.close()


class AlwaysCompress(TransformSettings, kw_only=True):
    def compresses(self, content_type: str | None) -> bool:
        return True


class TestCompressedContract(BackendContract):
    """Every object compressed and encrypted (the FRAMED layout)."""

    @pytest_asyncio.fixture
    async def backend(self, memory: StorageBackend) -> StorageBackend:
        parsed = AlwaysCompress(buckets=["*"], key=KEY, chunk_size=CHUNK)
        return TransformBackend(memory, parsed, StaticKeyProvider(parsed.master_keys()))


async def stored(inner: StorageBackend, bucket: str, key: str, namespace: str = "") -> GetResult:
    return await inner.get(bucket, key, namespace=namespace)


async def new_bucket(backend: StorageBackend, name: str = "b") -> str:
    await backend.create_bucket(name)
    return name


async def test_stored_bytes_are_ciphertext(memory: StorageBackend) -> None:
    enc = layer(memory)
    bucket = await new_bucket(enc)
    data = TEXT[: 3 * CHUNK + 100]
    body = make_body(data[:5000], data[5000:], content_type="text/plain")
    put = await enc.put(bucket, "k", body)
    etag = hashlib.md5(data).hexdigest()
    assert (put.size, put.etag.strip('"')) == (len(data), etag)

    raw = await stored(memory, bucket, "k")
    raw_bytes = await read(raw)
    assert raw.info.size == len(data) + 4 * TAG
    assert data[:64] not in raw_bytes and b"lorem" not in raw_bytes
    record = envelope.of(raw.info.metadata)
    assert record is not None
    assert (record.size, record.layout, record.chunk) == (len(data), FIXED, CHUNK)
    assert raw.info.metadata.content_type == "text/plain"
    # No key material in the record: only the wrapped data key.
    assert base64.b64decode(KEY) not in raw.info.metadata.layers["transform"].encode()

    head = await enc.head(bucket, "k")
    assert (head.size, head.etag.strip('"'), head.metadata.layers) == (len(data), etag, {})
    [listed] = [e async for e in enc.list(bucket)]
    assert isinstance(listed, ObjectInfo)
    assert (listed.size, listed.etag, listed.metadata.layers) == (len(data), head.etag, {})


async def test_plan_sees_the_plaintext_object(memory: StorageBackend) -> None:
    enc = layer(memory)
    bucket = await new_bucket(enc)
    data = os.urandom(5 * CHUNK + 17)
    await enc.put(bucket, "k", make_body(data))
    seen: list[ObjectInfo] = []

    def plan(info: ObjectInfo) -> tuple[int, int]:
        seen.append(info)
        return info.size - 10, info.size  # a suffix range, as bytes=-10 becomes

    got = await enc.get(bucket, "k", plan)
    assert [(i.size, i.metadata.layers) for i in seen] == [(len(data), {})]
    assert got.range == (len(data) - 10, len(data))
    assert got.info.size == len(data)
    assert await read(got) == data[-10:]

    def refuse(info: ObjectInfo) -> tuple[int, int]:
        raise PreconditionFailed()

    with pytest.raises(PreconditionFailed):
        await enc.get(bucket, "k", refuse)
    head_only = await enc.get(bucket, "k", lambda info: (0, 0))
    assert (head_only.range, await read(head_only)) == ((0, 0), b"")


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, 1), (CHUNK - 1, CHUNK + 1), (CHUNK, 2 * CHUNK), (1, 4 * CHUNK + 3), (3 * CHUNK, None)],
)
async def test_ranges_decrypt_only_their_chunks(
    memory: StorageBackend, monkeypatch: pytest.MonkeyPatch, start: int, end: int | None
) -> None:
    enc = layer(memory)
    bucket = await new_bucket(enc)
    data = os.urandom(4 * CHUNK + 5)
    stop = len(data) if end is None else end
    await enc.put(bucket, "k", make_body(data))
    asked: list[tuple[int, int]] = []
    inner_get = memory.get

    async def spy(*args: Any, **kw: Any) -> GetResult:
        result = await inner_get(*args, **kw)
        asked.append(result.range)  # the stored range the layer asked for
        return result

    monkeypatch.setattr(memory, "get", spy)
    got = await enc.get(bucket, "k", lambda info: (start, stop))
    assert await read(got) == data[start:stop]
    frame = CHUNK + TAG
    first, last = start // CHUNK, (stop - 1) // CHUNK
    assert asked == [(first * frame, min((last + 1) * frame, len(data) + 5 * TAG))]


async def test_compressed_objects(memory: StorageBackend) -> None:
    enc = layer(memory, compress_types=["text/*", "application/json"])
    bucket = await new_bucket(enc)
    await enc.put(bucket, "t", hinted(TEXT, content_type="text/plain; charset=utf-8"))
    await enc.put(bucket, "b", hinted(TEXT, content_type="application/octet-stream"))
    t, b = await stored(memory, bucket, "t"), await stored(memory, bucket, "b")
    rec_t, rec_b = envelope.of(t.info.metadata), envelope.of(b.info.metadata)
    assert rec_t is not None and rec_b is not None
    assert (rec_t.layout, rec_b.layout) == (FRAMED, FIXED)
    assert t.info.size < len(TEXT) // 4 < b.info.size
    assert (await enc.head(bucket, "t")).size == len(TEXT)
    assert await read(await enc.get(bucket, "t")) == TEXT
    for start, end in [(0, 10), (CHUNK - 3, 3 * CHUNK + 1), (len(TEXT) - 7, len(TEXT))]:
        got = await enc.get(bucket, "t", lambda info, s=start, e=end: (s, e))
        assert await read(got) == TEXT[start:end]


async def test_namespaces_are_encrypted_too(memory: StorageBackend) -> None:
    enc = layer(memory)
    bucket = await new_bucket(enc)
    await enc.put(bucket, "p/1", make_body(b"secret part"), namespace="mpu")
    assert b"secret" not in await read(await stored(memory, bucket, "p/1", "mpu"))
    assert await read(await enc.get(bucket, "p/1", namespace="mpu")) == b"secret part"
    [part] = [e async for e in enc.list(bucket, namespace="mpu")]
    assert isinstance(part, ObjectInfo) and part.size == len(b"secret part")


async def test_other_buckets_and_older_objects_pass_through(memory: StorageBackend) -> None:
    plain = await new_bucket(memory, "plain")
    await new_bucket(memory, "secure-1")
    await memory.put("secure-1", "old", make_body(b"written before encryption"))
    enc = layer(memory, buckets=["secure-*"])
    await enc.put(plain, "k", make_body(b"plain data"))
    assert await read(await stored(memory, plain, "k")) == b"plain data"
    assert await read(await enc.get(plain, "k")) == b"plain data"
    assert await read(await enc.get("secure-1", "old", lambda i: (8, 14))) == b"before"
    await enc.put("secure-1", "new", make_body(b"new data"))
    assert b"new data" not in await read(await stored(memory, "secure-1", "new"))
    # Dropping the bucket from the list later leaves its objects readable.
    later = layer(memory, buckets=[])
    assert await read(await later.get("secure-1", "new")) == b"new data"


async def test_wrong_key_is_a_clean_error(memory: StorageBackend) -> None:
    enc = layer(memory)
    bucket = await new_bucket(enc)
    await enc.put(bucket, "k", make_body(b"data"))
    other = layer(memory, key=OTHER_KEY)
    # Metadata needs no key; the bytes do, and the refusal comes before any byte.
    assert (await other.head(bucket, "k")).size == 4
    with pytest.raises(KeyUnavailable) as exc:
        await other.get(bucket, "k")
    assert exc.value.code == "AccessDenied"
    assert (await other.get(bucket, "k", lambda i: (0, 0))).range == (0, 0)


async def test_key_rotation_reads_old_objects(memory: StorageBackend) -> None:
    old = layer(memory)
    bucket = await new_bucket(old)
    await old.put(bucket, "k", make_body(b"old key"))
    rotated = layer(memory, key=OTHER_KEY, previous_keys=[KEY])
    assert await read(await rotated.get(bucket, "k")) == b"old key"
    await rotated.put(bucket, "k2", make_body(b"new key"))
    with pytest.raises(KeyUnavailable):
        await old.get(bucket, "k2")


async def rewrite(memory: StorageBackend, bucket: str, key: str, data: bytes) -> None:
    """Replace an object's stored bytes, keeping its stored metadata (an attacker)."""
    meta = (await memory.head(bucket, key)).metadata
    await memory.put(bucket, key, PutBody(chunks=_once(data), finish=lambda: meta))


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_tampering_is_detected(memory: StorageBackend) -> None:
    enc = layer(memory)
    bucket = await new_bucket(enc)
    data = os.urandom(3 * CHUNK)
    await enc.put(bucket, "k", make_body(data))
    raw = bytearray(await read(await stored(memory, bucket, "k")))
    # A flipped bit in the first chunk: refused before the response starts.
    raw[10] ^= 1
    await rewrite(memory, bucket, "k", bytes(raw))
    with pytest.raises(IntegrityError) as exc:
        await enc.get(bucket, "k")
    assert exc.value.code == "InternalError"
    # In a later chunk: the read fails (mid-stream for a large object) instead of
    # serving bad bytes; a range that avoids the chunk still reads.
    raw[10] ^= 1
    raw[2 * (CHUNK + TAG) + 3] ^= 1
    await rewrite(memory, bucket, "k", bytes(raw))
    with pytest.raises(IntegrityError):
        await read(await enc.get(bucket, "k"))
    assert await read(await enc.get(bucket, "k", lambda i: (5, CHUNK + 5))) == data[5 : CHUNK + 5]
    # Chunks swapped, or the object cut short: refused.
    frame = CHUNK + TAG
    raw[2 * frame + 3] ^= 1
    await rewrite(
        memory, bucket, "k", bytes(raw[frame : 2 * frame] + raw[:frame] + raw[2 * frame :])
    )
    with pytest.raises(IntegrityError):
        await enc.get(bucket, "k")
    await rewrite(memory, bucket, "k", bytes(raw[: 2 * frame]))
    with pytest.raises(IntegrityError):
        await enc.get(bucket, "k", lambda i: (0, 10))


async def test_unreadable_record(memory: StorageBackend) -> None:
    enc = layer(memory)
    bucket = await new_bucket(enc)
    meta = ObjectMetadata(etag="x", layers={"transform": "{not json"})
    await memory.put(bucket, "k", PutBody(chunks=_once(b"zz"), finish=lambda: meta))
    with pytest.raises(IntegrityError):
        await enc.head(bucket, "k")
    with pytest.raises(IntegrityError):
        await enc.get(bucket, "k")
    # A listing still lists it.
    assert [e.key async for e in enc.list(bucket) if isinstance(e, ObjectInfo)] == ["k"]


async def test_conditional_writes_see_the_plaintext_etag(memory: StorageBackend) -> None:
    enc = layer(memory)
    bucket = await new_bucket(enc)
    first = await enc.put(bucket, "k", make_body(b"one"))
    with pytest.raises(PreconditionFailed):
        await enc.put(bucket, "k", make_body(b"two"), mode="create")
    with pytest.raises(PreconditionFailed):
        await enc.put(bucket, "k", make_body(b"two"), if_match='"nope"')
    await enc.put(bucket, "k", make_body(b"two"), if_match=first.etag)
    assert await read(await enc.get(bucket, "k")) == b"two"
    with pytest.raises(NoSuchKey):
        await enc.put(bucket, "missing", make_body(b"x"), if_match="*")


class CountingProvider:
    """A KMS-style provider from another plugin: counts calls, wraps with XOR."""

    def __init__(self, options: dict[str, str]) -> None:
        self.options = options
        self.calls: list[str] = []

    async def new_data_key(self) -> DataKey:
        self.calls.append("new")
        plain = os.urandom(32)
        return DataKey(plaintext=plain, key_id="kms:test", wrapped=bytes(b ^ 0x5A for b in plain))

    async def unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        self.calls.append("unwrap")
        if key_id != "kms:test":
            raise KeyUnavailable()
        return bytes(b ^ 0x5A for b in wrapped)


def make_counting_provider(parsed: TransformSettings) -> CountingProvider:
    return CountingProvider(parsed.key_provider_options)


async def test_key_provider_from_another_plugin(memory: StorageBackend) -> None:
    from s3proxy_transform.plugin import build

    raw = {
        "buckets": "*",
        "key_provider": f"{__name__}:make_counting_provider",
        "key_provider_options": {"arn": "arn:test"},
    }
    enc = build(memory, raw)
    assert enc is not None and isinstance(enc.keys, CountingProvider)
    assert enc.keys.options == {"arn": "arn:test"}
    bucket = await new_bucket(enc)
    await enc.put(bucket, "k", make_body(b"via kms"))
    assert await read(await enc.get(bucket, "k")) == b"via kms"
    assert enc.keys.calls == ["new", "unwrap"]
