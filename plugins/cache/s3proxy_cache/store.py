"""Cache entries in Redis: layout, encoding, and the generation stamps that keep a slow
reader from putting back data that a write has replaced.

Per object (backend name, bucket, key) there are two Redis keys:

- ``<prefix>:1:e:<backend>:<bucket>:<digest>``, a hash: ``m`` is the msgpack of the
  object's ``ObjectInfo`` (bodies up to ``INLINE_LIMIT`` inline), ``b`` the body of a
  larger cached object. Both fields are written and expire together.
- ``<prefix>:1:g:<backend>:<bucket>:<digest>``: the generation, a random token that
  every write through the proxy replaces (then it deletes the entry).

A reader reads the generation together with the entry; on a miss it reads the backend
and inserts only if the generation is still the one it saw (a Lua script, so the check
and the insert are atomic). A write that commits while the reader is busy therefore
either deletes the reader's entry or makes its insert fail. The ``1`` is the format
version: a new layout gets new keys rather than misreading old entries.

Every call raises ``Unavailable`` when Redis cannot answer; the layer falls through to
the backend then.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from s3proxy.storage.backend import ObjectInfo, ObjectMetadata
from s3proxy_cache.settings import CacheSettings

FORMAT = "1"
#: Bodies up to this size travel inside ``m``: a hit is then one round trip.
INLINE_LIMIT = 16 * 1024
#: How long a generation token lives. A reader whose lookup is older than half of it
#: does not insert (the token it saw could have expired and been replaced meanwhile).
GENERATION_TTL = 120.0
MAX_READER_AGE = GENERATION_TTL / 2

# KEYS: entry, generation. ARGV: generation seen ("" = none), ttl ms, meta, body, has body.
_INSERT = """
local current = redis.call('GET', KEYS[2])
if current == false then current = '' end
if current ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'm', ARGV[3])
if ARGV[5] == '1' then redis.call('HSET', KEYS[1], 'b', ARGV[4]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


class Unavailable(Exception):
    """Redis did not answer (down, timed out, refused the command)."""


class Entry(msgspec.Struct, array_like=True):
    """What ``m`` holds: an ObjectInfo, and the body when it is small."""

    key: str
    size: int
    last_modified: datetime
    metadata: ObjectMetadata
    inline: bytes | None = None
    #: The body is in field ``b`` (cached, but too large to inline).
    body_apart: bool = False

    def info(self) -> ObjectInfo:
        return ObjectInfo(self.key, self.size, self.last_modified, self.metadata)

    @property
    def has_body(self) -> bool:
        return self.inline is not None or self.body_apart


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Entry)


@dataclass(slots=True, frozen=True)
class Ref:
    """The Redis keys of one object."""

    entry: str
    generation: str


@dataclass(slots=True)
class Found:
    """A lookup: the entry (None on a miss), its raw bytes and the generation seen."""

    entry: Entry | None
    raw: bytes | None
    generation: str
    started: float


def _digest(key: str) -> str:
    # Fixed-length Redis keys whatever the S3 key (up to 1024 bytes, any characters);
    # the entry keeps the S3 key itself and lookups compare it.
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


class RedisEntries:
    """Reads and writes cache entries; one client (connection pool) per worker."""

    def __init__(self, settings: CacheSettings) -> None:
        self.settings = settings
        self._client: aioredis.Redis | None = None
        self._insert: Any = None
        self._ttl_ms = int(settings.ttl * 1000)

    def ref(self, backend: str, bucket: str, key: str) -> Ref:
        prefix, tail = f"{self.settings.key_prefix}:{FORMAT}", f"{backend}:{bucket}:{_digest(key)}"
        return Ref(entry=f"{prefix}:e:{tail}", generation=f"{prefix}:g:{tail}")

    @property
    def client(self) -> aioredis.Redis:
        return self._connection()[0]

    def _connection(self) -> tuple[aioredis.Redis, Any]:
        """The client and the insert script; created on first use, inside the worker's
        event loop (connection pools belong to one loop)."""
        if self._client is None:
            self._client = aioredis.Redis.from_url(
                self.settings.url,
                socket_timeout=self.settings.timeout,
                socket_connect_timeout=self.settings.timeout,
                # One immediate retry re-opens a pooled connection that a Redis
                # restart closed; redis-py's default (10 with backoff) would stall
                # requests for seconds while Redis is down.
                retry=Retry(NoBackoff(), 1),
            )
            self._insert = self._client.register_script(_INSERT)
        return self._client, self._insert

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _run(self, coro: Any) -> Any:
        try:
            return await coro
        except (RedisError, OSError, TimeoutError) as exc:
            raise Unavailable(f"{type(exc).__name__}: {exc}") from exc

    async def lookup(self, ref: Ref, key: str) -> Found:
        """The entry's metadata and the current generation, in one round trip."""
        started = time.monotonic()
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(ref.entry, "m")
        pipe.get(ref.generation)
        raw, generation = await self._run(pipe.execute())
        entry = _decode(raw, key)
        return Found(entry, raw if entry else None, (generation or b"").decode(), started)

    async def body(self, ref: Ref, raw: bytes) -> bytes | None:
        """The body stored apart, if the entry is still the one whose ``m`` was ``raw``."""
        meta, body = await self._run(self.client.hmget(ref.entry, ["m", "b"]))
        return body if meta == raw and body is not None else None

    async def insert(self, ref: Ref, found: Found, info: ObjectInfo, body: bytes | None) -> bool:
        """Store ``info`` (and ``body`` when given) unless a write happened since
        ``found`` was looked up; True when stored."""
        if time.monotonic() - found.started > MAX_READER_AGE:
            return False
        inline = body if body is not None and len(body) <= INLINE_LIMIT else None
        apart = body is not None and inline is None
        entry = Entry(info.key, info.size, info.last_modified, info.metadata, inline, apart)
        args = [found.generation, self._ttl_ms, _encoder.encode(entry), body if apart else b""]
        _, script = self._connection()
        keys = [ref.entry, ref.generation]
        stored = await self._run(script(keys=keys, args=[*args, "1" if apart else "0"]))
        return bool(stored)

    async def invalidate(self, *refs: Ref) -> None:
        """Start a new generation, then drop the entry, for each ref.

        In this order a reader's insert either comes before the new generation (and
        is dropped) or after it (and is refused), without a transaction: under memory
        pressure with ``noeviction`` Redis refuses the SET but still does the DEL.
        """
        pipe = self.client.pipeline(transaction=False)
        for ref in refs:
            pipe.set(ref.generation, secrets.token_hex(8), px=int(GENERATION_TTL * 1000))
            pipe.delete(ref.entry)
        await self._run(pipe.execute())

    async def ping(self) -> None:
        await self._run(self.client.ping())


def _decode(raw: bytes | None, key: str) -> Entry | None:
    if raw is None:
        return None
    try:
        entry = _decoder.decode(raw)
    except msgspec.DecodeError:
        return None  # not ours, or damaged: a miss, overwritten by the next insert
    return entry if entry.key == key else None  # a digest collision is a miss
