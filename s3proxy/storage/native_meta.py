"""S3 metadata in a cloud object's own attributes (the "native" object format).

Cloud objects stay plain objects that other tools can read: content headers are stored as
the cloud's own attributes (Content-Type, Cache-Control, ...), user metadata as the
cloud's user metadata where the cloud can hold it. What the cloud cannot hold goes into
one extra metadata attribute, ``s3proxy``:

- ``1.<base64url(msgpack(Extras))>``: the S3 ETag (MD5), checksums, multipart part
  sizes, ``Expires``, the storage class, and any content header or user metadata entry
  the cloud cannot store natively (non-ASCII values; names Azure rejects, such as names
  with hyphens). Always present on objects the proxy wrote, so that the proxy knows it
  wrote them.
- ``1r.<token>``: the full metadata lives in a *record*, a small object in the bucket's
  private area, named after the key and ``token``. Used when the metadata is not known
  when the upload starts (streamed uploads: the MD5 exists only at the end) or when it
  exceeds the cloud's metadata budget (S3 allows 2 KB of user metadata in all).

Objects without the attribute (written by other tools) are served as they are: ETag from
the backend (unquoted), content headers from the cloud's attributes, user metadata from
the cloud's user metadata.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

import msgspec

from s3proxy.storage.backend import ObjectMetadata

ATTR = "s3proxy"
_INLINE = "1."
_REFERENCE = "1r."
#: What S3 reports when a client gave no Content-Type.
DEFAULT_CONTENT_TYPE = "binary/octet-stream"
# Content headers obstore stores as native attributes: attribute name -> field name.
CONTENT_ATTRS = {
    "Content-Type": "content_type",
    "Content-Encoding": "content_encoding",
    "Content-Disposition": "content_disposition",
    "Content-Language": "content_language",
    "Cache-Control": "cache_control",
}
# Attribute names obstore returns that are not user metadata.
_NOT_USER = {*CONTENT_ATTRS, "Storage-Class", ATTR}
# Header values every cloud and obstore accept as they are: printable ASCII, no
# surrounding spaces (HTTP would strip them). Anything else would be rejected, or, on
# Azure, crash the client, so it goes into the extras instead.
_SAFE_VALUE = re.compile(r"[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?\Z")
_HEX_MD5 = re.compile(r"[0-9a-fA-F]{32}\Z")


@dataclass(frozen=True, slots=True)
class MetadataRules:
    """What one cloud accepts as object metadata, and what its ETags mean."""

    #: User metadata names stored natively (S3 and GCS take header tokens; Azure only
    #: C# identifiers). Names are lower-case by the time they get here.
    native_name: re.Pattern[str]
    #: Bytes of user metadata (names plus values) the cloud accepts on one object.
    budget: int
    #: True when a single-request upload gets the MD5 of its bytes as backend ETag and a
    #: multipart upload an ETag with a "-" (S3, GCS). The backend ETag is then the S3
    #: ETag whenever it is 32 hex digits, which also keeps listings free of metadata
    #: reads; see ``s3_etag``.
    etag_is_md5: bool


S3_RULES = MetadataRules(re.compile(r"[a-z0-9][a-z0-9._-]*\Z"), 2048, etag_is_md5=True)
GCS_RULES = MetadataRules(re.compile(r"[a-z0-9][a-z0-9._-]*\Z"), 8192, etag_is_md5=True)
AZURE_RULES = MetadataRules(re.compile(r"[a-z_][a-z0-9_]*\Z"), 8192, etag_is_md5=False)
#: For stores without a metadata limit or a meaningful ETag (tests over MemoryStore).
PLAIN_RULES = MetadataRules(re.compile(r"[a-z0-9][a-z0-9._-]*\Z"), 8192, etag_is_md5=False)


class Extras(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=False):
    """What the ``s3proxy`` attribute holds (short names: it counts against budgets)."""

    e: str = ""  # S3 ETag
    d: bool = False  # no Content-Type was given: the native one is S3's default
    h: dict[str, str] = {}  # ObjectMetadata content fields not stored natively
    u: dict[str, str] = {}  # user metadata not stored natively
    c: dict[str, str] = {}  # checksums
    p: list[int] = []  # part sizes
    s: str | None = None  # storage class (recorded, not applied)
    l: dict[str, str] = {}  # noqa: E741 - storage layers' per-object data (layers)


class Record(msgspec.Struct, forbid_unknown_fields=False):
    """A metadata record: the whole ObjectMetadata of one version of one key."""

    token: str
    key: str
    meta: ObjectMetadata


_extras_enc = msgspec.msgpack.Encoder()
_extras_dec = msgspec.msgpack.Decoder(Extras)
_record_dec = msgspec.msgpack.Decoder(Record)


def encode_record(record: Record) -> bytes:
    return _extras_enc.encode(record)


def decode_record(data: bytes) -> Record | None:
    try:
        return _record_dec.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def unquote_etag(etag: str | None) -> str:
    """A backend ETag as S3 shows it inside its quotes (``W/"x"`` and ``"x"`` -> ``x``)."""
    value = (etag or "").strip()
    if value[:2] in ("W/", "w/"):
        value = value[2:]
    return value.strip('"')


def s3_etag(rules: MetadataRules, stored: str, backend_etag: str | None) -> str:
    """The ETag the client sees, the same from PUT, HEAD, GET and LIST.

    On clouds whose single-request uploads have the MD5 as ETag, a 32-hex backend ETag
    is authoritative: it equals the stored MD5 unless the cloud encrypts with its own
    keys (SSE-KMS, CMEK), in which case it is what the cloud itself reports, and listings
    (which only see the backend ETag) agree with HEAD. The proxy writes every object
    whose S3 ETag is not the MD5 of its bytes (multipart results) as a multipart upload,
    so that its backend ETag never looks like an MD5.
    """
    backend = unquote_etag(backend_etag)
    if rules.etag_is_md5 and is_md5(backend):
        return backend.lower()
    return stored or backend


def is_md5(etag: str) -> bool:
    return bool(_HEX_MD5.match(etag))


def is_safe_value(value: str) -> bool:
    return bool(_SAFE_VALUE.match(value))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _content_attrs(meta: ObjectMetadata, extras: Extras) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for attr, field in CONTENT_ATTRS.items():
        value: str | None = getattr(meta, field)
        if field == "content_type" and value is None:
            extras.d = True
            value = DEFAULT_CONTENT_TYPE
        if value is None:
            continue
        if is_safe_value(value):
            attrs[attr] = value
        else:
            extras.h[field] = value
    if meta.expires is not None:
        extras.h["expires"] = meta.expires
    return attrs


def encode(meta: ObjectMetadata, rules: MetadataRules) -> dict[str, str] | None:
    """Attributes holding all of ``meta``; None when they exceed the cloud's budget."""
    extras = Extras(
        e=meta.etag,
        c=dict(meta.checksums),
        p=list(meta.part_sizes),
        s=meta.storage_class,
        l=dict(meta.layers),
    )
    attrs = _content_attrs(meta, extras)
    used = 0
    for name, value in meta.user_metadata.items():
        if name != ATTR and rules.native_name.match(name) and is_safe_value(value):
            attrs[name] = value
            used += len(name.encode()) + len(value.encode())
        else:
            extras.u[name] = value
    attrs[ATTR] = _INLINE + _b64(_extras_enc.encode(extras))
    used += len(ATTR) + len(attrs[ATTR])
    return attrs if used <= rules.budget else None


def reference(meta: ObjectMetadata | None, token: str) -> dict[str, str]:
    """Attributes of an object whose metadata is in the record ``token``.

    Content headers still go native when known, for the benefit of other tools; the
    record stays authoritative for the proxy.
    """
    attrs = _content_attrs(meta, Extras()) if meta is not None else {}
    attrs[ATTR] = _REFERENCE + token
    return attrs


def decode(
    attrs: dict[str, str], backend_etag: str | None, rules: MetadataRules
) -> ObjectMetadata | str:
    """The metadata an object's attributes describe, or the token of its record."""
    raw = attrs.get(ATTR, "")
    if raw.startswith(_REFERENCE):
        return raw[len(_REFERENCE) :]
    extras: Extras | None = None
    if raw.startswith(_INLINE):
        try:
            extras = _extras_dec.decode(_unb64(raw[len(_INLINE) :]))
        except (binascii.Error, ValueError, msgspec.DecodeError, msgspec.ValidationError):
            extras = None  # not ours after all: serve the object as a native one
    meta = ObjectMetadata(
        etag=s3_etag(rules, extras.e if extras else "", backend_etag),
        user_metadata={k.lower(): v for k, v in attrs.items() if k not in _NOT_USER},
    )
    for attr, field in CONTENT_ATTRS.items():
        if attr in attrs:
            setattr(meta, field, attrs[attr])
    if extras is None:
        return meta
    if extras.d:
        meta.content_type = None
    for field, value in extras.h.items():
        if field in ObjectMetadata.__struct_fields__:
            setattr(meta, field, value)
    meta.user_metadata.update(extras.u)
    meta.checksums = dict(extras.c)
    meta.part_sizes = list(extras.p)
    meta.storage_class = extras.s
    meta.layers = dict(extras.l)
    return meta
