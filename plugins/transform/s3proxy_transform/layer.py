"""TransformBackend: the storage layer that encrypts (and compresses) objects at rest.

It wraps the backend closest to the storage (``wrap_backend`` ``tryfirst``) and keeps
every S3 semantic above it intact, because the S3 layer only ever sees plaintext:

- writes: new objects of the configured buckets, in every namespace (so the staged
  parts of a multipart upload are encrypted at rest too), are cut into chunks, each
  compressed when the content type asks for it, and sealed (``chunks.py``). The S3
  layer computes the ETag (MD5) and checksums on the plaintext before it reaches us;
  they are stored unchanged. The per-object record (``envelope.py``) goes into
  ``ObjectMetadata.layers``.
- reads: head, get and list report the plaintext size and hide the record. ``get``
  calls the client's plan with that plaintext view (so conditionals and ranges are
  decided on what the client sees), maps the chosen range to the stored chunks that
  hold it, reads only those, decrypts, and trims. The data key is unwrapped and the
  first chunk decrypted before ``get`` returns, so a wrong key or tampered data
  becomes an S3 error rather than a response cut short.
- objects without a record (written before encryption was on, or in other buckets)
  pass through untouched.

Multipart uploads need nothing special: parts are written through ``put`` and read
back through ``get`` (plaintext, with plaintext sizes and ETags), and Complete streams
them into one new encrypted object. The layer deliberately does not expose the inner
backend's ``multipart_engine``: a native engine would compose stored (encrypted) parts
without passing through here.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import zstandard

from s3proxy.storage.backend import (
    BucketInfo,
    Capabilities,
    GetResult,
    ObjectInfo,
    ObjectMetadata,
    PutBody,
    PutMode,
    ReadPlan,
    StorageBackend,
)
from s3proxy_transform import chunks, envelope
from s3proxy_transform.envelope import Envelope
from s3proxy_transform.errors import IntegrityError, KeyUnavailable, TransformError
from s3proxy_transform.keys import KeyProvider
from s3proxy_transform.settings import TransformSettings

log = logging.getLogger("s3proxy.transform")


def content_type_hint(body: PutBody) -> str | None:
    """The content type of an upload, when the core tells it before the body.

    ``PutBody.metadata`` (the metadata known up front) is optional in the contract; a
    body without it is stored uncompressed.
    """
    meta = getattr(body, "metadata", None)
    return meta.content_type if isinstance(meta, ObjectMetadata) else None


@dataclass(slots=True)
class _Chosen:
    """What the read plan decided: the plaintext range and where it is stored."""

    env: Envelope | None = None
    client: ObjectInfo | None = None
    start: int = 0
    end: int = 0
    plan: chunks.ReadPlan | None = None


class TransformBackend:
    """A StorageBackend that stores the objects of chosen buckets encrypted."""

    def __init__(
        self, inner: StorageBackend, settings: TransformSettings, keys: KeyProvider
    ) -> None:
        self.inner = inner
        self.settings = settings
        self.keys = keys
        self.name = inner.name
        self.capabilities: Capabilities = inner.capabilities

    # -- delegated as is -----------------------------------------------------------

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def check_ready(self) -> None:
        await self.inner.check_ready()

    async def list_buckets(self) -> builtins.list[BucketInfo]:
        return await self.inner.list_buckets()

    async def create_bucket(self, bucket: str) -> None:
        await self.inner.create_bucket(bucket)

    async def head_bucket(self, bucket: str) -> BucketInfo:
        return await self.inner.head_bucket(bucket)

    async def delete_bucket(self, bucket: str) -> None:
        await self.inner.delete_bucket(bucket)

    async def delete(self, bucket: str, key: str, *, namespace: str = "") -> None:
        await self.inner.delete(bucket, key, namespace=namespace)

    # -- reads ---------------------------------------------------------------------

    @staticmethod
    def _view(info: ObjectInfo) -> ObjectInfo:
        env = envelope.of(info.metadata)
        return info if env is None else envelope.client_view(info, env)

    @staticmethod
    def _listed(info: ObjectInfo) -> ObjectInfo:
        # One unreadable record must not break a whole listing: show it as stored
        # (its GET answers the error).
        try:
            return TransformBackend._view(info)
        except TransformError:
            log.warning("unreadable transform record on %s", info.key)
            return info

    async def head(self, bucket: str, key: str, *, namespace: str = "") -> ObjectInfo:
        return self._view(await self.inner.head(bucket, key, namespace=namespace))

    async def list(
        self,
        bucket: str,
        prefix: str = "",
        start_after: str = "",
        delimiter: str = "",
        *,
        namespace: str = "",
    ) -> AsyncIterator[ObjectInfo | str]:
        async for entry in self.inner.list(
            bucket, prefix, start_after, delimiter, namespace=namespace
        ):
            yield entry if isinstance(entry, str) else self._listed(entry)

    async def get(
        self, bucket: str, key: str, plan: ReadPlan | None = None, *, namespace: str = ""
    ) -> GetResult:
        chosen = _Chosen()

        def stored_plan(info: ObjectInfo) -> tuple[int, int]:
            # Called by the inner backend, possibly again if the object changed.
            chosen.env = chosen.client = chosen.plan = None
            env = envelope.of(info.metadata)
            if env is None:
                return plan(info) if plan is not None else (0, info.size)
            client = envelope.client_view(info, env)
            start, end = plan(client) if plan is not None else (0, env.size)
            end = min(end, env.size)
            chosen.env, chosen.client, chosen.start, chosen.end = env, client, start, end
            if start >= end:
                return (0, 0)
            try:
                chosen.plan = chunks.plan_read(
                    layout=env.layout,
                    size=env.size,
                    chunk_size=env.chunk,
                    stored_size=info.size,
                    start=start,
                    end=end,
                    marks=env.seek_marks(),
                )
            except chunks.FormatError as exc:
                raise IntegrityError(str(exc)) from None
            return chosen.plan.stored

        result = await self.inner.get(bucket, key, stored_plan, namespace=namespace)
        env, client, stored_range = chosen.env, chosen.client, chosen.plan
        if env is None or client is None:
            return result
        if stored_range is None:  # nothing to read (HEAD, empty object, empty range)
            await _close(result.body)
            return GetResult(info=client, body=_nothing(), range=(chosen.start, chosen.start))
        opened = False
        try:
            _check_stored_size(env, result.info.size)
            data_key = await self.keys.unwrap(env.kid, env.key)
            if len(data_key) != 32:  # a key provider plugin's mistake
                raise KeyUnavailable("the key provider returned a data key of the wrong size")
            reader = chunks.ChunkReader(
                chunks.ChunkCipher(data_key, env.nonce, env.layout),
                layout=env.layout,
                size=env.size,
                chunk_size=env.chunk,
                plan=stored_range,
                start=chosen.start,
                end=chosen.end,
            )
            body = _decrypt(result.body, reader)
            # Decrypt the first chunk now: a failure is still an S3 error, not a cut.
            first = await anext(body)
            opened = True
        except StopAsyncIteration:
            raise IntegrityError("no data") from None
        except TransformError as exc:
            log.warning("cannot decrypt %s/%s: %s %s", bucket, key, type(exc).__name__, exc.args)
            raise
        finally:
            if not opened:
                await _close(result.body)
        return GetResult(info=client, body=_prepend(first, body), range=(chosen.start, chosen.end))

    # -- writes --------------------------------------------------------------------

    async def put(
        self,
        bucket: str,
        key: str,
        body: PutBody,
        *,
        namespace: str = "",
        mode: PutMode = "overwrite",
        if_match: str | None = None,
    ) -> ObjectInfo:
        if not self.settings.encrypts(bucket):
            return self._view(
                await self.inner.put(
                    bucket, key, body, namespace=namespace, mode=mode, if_match=if_match
                )
            )
        data_key = await self.keys.new_data_key()
        nonce = os.urandom(chunks.NONCE_PREFIX)
        compress = self.settings.compresses(content_type_hint(body))
        layout = chunks.FRAMED if compress else chunks.FIXED
        writer = chunks.ChunkWriter(
            chunks.ChunkCipher(data_key.plaintext, nonce, layout),
            self.settings.chunk_size,
            zstandard.ZstdCompressor(level=self.settings.compress_level) if compress else None,
        )

        async def sealed() -> AsyncIterator[bytes]:
            async for piece in body.chunks:
                out = writer.feed(piece)
                if out:
                    yield out
            yield writer.finish()

        def finish() -> ObjectMetadata:
            if not writer.finished:
                raise TransformError("the backend finished the write before the body ended")
            env = Envelope(
                v=chunks.VERSION,
                size=writer.size,
                chunk=self.settings.chunk_size,
                layout=layout,
                kid=data_key.key_id,
                key=data_key.wrapped,
                nonce=nonce,
            )
            if layout == chunks.FRAMED:
                env.step, env.marks = writer.marks.step, writer.marks.pack()
            return envelope.with_record(body.finish(), env)

        stored = await self.inner.put(
            bucket,
            key,
            PutBody(chunks=sealed(), finish=finish),
            namespace=namespace,
            mode=mode,
            if_match=if_match,
        )
        return self._view(stored)


def _check_stored_size(env: Envelope, stored: int) -> None:
    if env.layout == chunks.FIXED and stored != chunks.fixed_stored_size(env.size, env.chunk):
        raise IntegrityError("stored size does not match the object's record")


async def _decrypt(
    stored: AsyncIterator[bytes], reader: chunks.ChunkReader
) -> AsyncIterator[bytes]:
    try:
        async for data in stored:
            try:
                pieces = reader.feed(data)
            except chunks.FormatError as exc:
                raise IntegrityError(str(exc)) from None
            if pieces:
                # One write per stored read (MiB-sized), not one per 64 KiB chunk.
                yield pieces[0] if len(pieces) == 1 else b"".join(pieces)
            if reader.done:
                break
        try:
            reader.check_complete()
        except chunks.FormatError as exc:
            raise IntegrityError(str(exc)) from None
    finally:
        await _close(stored)


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        yield first
        async for piece in rest:
            yield piece
    finally:
        await _close(rest)


async def _nothing() -> AsyncIterator[bytes]:
    empty: tuple[bytes, ...] = ()
    for piece in empty:
        yield piece


async def _close(body: AsyncIterator[Any]) -> None:
    aclose = getattr(body, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()
