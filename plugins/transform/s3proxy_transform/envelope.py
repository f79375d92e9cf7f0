"""The per-object record of the layer, kept in ``ObjectMetadata.layers["transform"]``.

It says how the stored bytes were made (format version, layout, chunk size), the
plaintext size the client sees, and the envelope: the id of the master key and the
object's data key wrapped by it, plus the nonce prefix. It holds no secret in clear.
Encoded as compact JSON (bytes as base64) because ``layers`` maps strings to strings.

An object without this record was not written by the layer (or was written before
encryption was turned on for its bucket) and is served as stored.
"""

from __future__ import annotations

import msgspec

from s3proxy.storage.backend import ObjectInfo, ObjectMetadata
from s3proxy_transform.chunks import (
    FIXED,
    FRAMED,
    MAX_CHUNK_SIZE,
    NONCE_PREFIX,
    VERSION,
    FormatError,
    Marks,
)
from s3proxy_transform.errors import IntegrityError

LAYER = "transform"


class Envelope(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Format version of the stored chunks (``chunks.VERSION``).
    v: int
    #: Plaintext size: what HEAD, GET and LIST report.
    size: int
    #: Plaintext bytes per chunk.
    chunk: int
    #: ``chunks.FIXED`` or ``chunks.FRAMED`` (compressed).
    layout: int = FIXED
    #: Id of the master key at the key provider.
    kid: str
    #: The object's data key, wrapped by the master key (opaque to this layer).
    key: bytes
    #: Per-object nonce prefix.
    nonce: bytes
    #: FRAMED only: seek marks (stored offsets of every ``step``-th chunk, packed u64).
    step: int = 0
    marks: bytes = b""

    def seek_marks(self) -> Marks | None:
        if self.layout != FRAMED:
            return None
        try:
            return Marks.unpack(self.step, self.marks)
        except FormatError as exc:
            raise IntegrityError(str(exc)) from None


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Envelope)


def encode(env: Envelope) -> str:
    return _encoder.encode(env).decode()


def decode(raw: str) -> Envelope:
    try:
        env = _decoder.decode(raw)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise IntegrityError(f"unreadable transform record: {exc}") from None
    if env.v != VERSION:
        raise IntegrityError(f"transform format version {env.v} is not supported")
    if (
        env.layout not in (FIXED, FRAMED)
        or not 0 < env.chunk <= MAX_CHUNK_SIZE
        or env.size < 0
        or len(env.nonce) != NONCE_PREFIX
    ):
        raise IntegrityError("invalid transform record")
    return env


def of(meta: ObjectMetadata) -> Envelope | None:
    """The object's record, or None for an object the layer did not write.

    Raises IntegrityError when the record is there but unreadable."""
    raw = meta.layers.get(LAYER)
    return None if raw is None else decode(raw)


def with_record(meta: ObjectMetadata, env: Envelope) -> ObjectMetadata:
    return msgspec.structs.replace(meta, layers={**meta.layers, LAYER: encode(env)})


def client_view(info: ObjectInfo, env: Envelope) -> ObjectInfo:
    """The object as the client sees it: plaintext size, no layer record."""
    layers = {k: v for k, v in info.metadata.layers.items() if k != LAYER}
    meta = msgspec.structs.replace(info.metadata, layers=layers)
    return ObjectInfo(key=info.key, size=env.size, last_modified=info.last_modified, metadata=meta)
