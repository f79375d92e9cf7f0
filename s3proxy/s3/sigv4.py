"""AWS Signature Version 4 for S3: parsing, canonicalisation and verification.

Pure functions over the request as received (raw path, raw query, headers), so that the
authenticator and the known-answer tests share every byte of the computation. S3 does
not double-encode the path: the canonical URI is the decoded path re-encoded once.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote_to_bytes

from s3proxy.s3.errors import S3Error

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_PRESIGNED_EXPIRES = 7 * 24 * 3600
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_SPACES = re.compile(r" +")


@dataclass(slots=True, frozen=True)
class Credential:
    """The ``Credential=`` scope: access key id and date/region/service."""

    access_key_id: str
    date: str
    region: str
    service: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


@dataclass(slots=True, frozen=True)
class SignedRequest:
    """What a request claims: who, when, which headers, and the signature."""

    credential: Credential
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str
    presigned: bool
    expires: int | None = None


def parse_credential(raw: str, error: str) -> Credential:
    parts = raw.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not parts[0]:
        raise S3Error(error, f"The credential is malformed: {raw!r}")
    return Credential(parts[0], parts[1], parts[2], parts[3])


def parse_authorization(header: str, amz_date: str | None) -> SignedRequest:
    """Parse ``Authorization: AWS4-HMAC-SHA256 Credential=.., SignedHeaders=.., Signature=..``."""
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise S3Error("AuthorizationHeaderMalformed", "Unsupported authorization algorithm.")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, value = part.strip().partition("=")
        if sep:
            fields[name] = value
    missing = [f for f in ("Credential", "SignedHeaders", "Signature") if f not in fields]
    if missing:
        raise S3Error(
            "AuthorizationHeaderMalformed",
            f"The authorization header is malformed; missing {', '.join(missing)}.",
        )
    if not amz_date:
        raise S3Error(
            "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header"
        )
    return SignedRequest(
        credential=parse_credential(fields["Credential"], "AuthorizationHeaderMalformed"),
        signed_headers=tuple(fields["SignedHeaders"].split(";")),
        signature=fields["Signature"],
        amz_date=amz_date,
        presigned=False,
    )


def parse_presigned(query: Mapping[str, str]) -> SignedRequest:
    def need(name: str) -> str:
        value = query.get(name)
        if not value:
            raise S3Error(
                "AuthorizationQueryParametersError",
                f"Query-string authentication version 4 requires the {name} parameter.",
            )
        return value

    if need("X-Amz-Algorithm") != ALGORITHM:
        raise S3Error(
            "AuthorizationQueryParametersError",
            'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"',
        )
    expires_raw = need("X-Amz-Expires")
    if not expires_raw.isdigit():
        raise S3Error("AuthorizationQueryParametersError", "X-Amz-Expires should be a number")
    expires = int(expires_raw)
    if expires > MAX_PRESIGNED_EXPIRES:
        raise S3Error(
            "AuthorizationQueryParametersError",
            "X-Amz-Expires must be less than a week (in seconds) that is 604800",
        )
    return SignedRequest(
        credential=parse_credential(need("X-Amz-Credential"), "AuthorizationQueryParametersError"),
        signed_headers=tuple(need("X-Amz-SignedHeaders").split(";")),
        signature=need("X-Amz-Signature"),
        amz_date=need("X-Amz-Date"),
        presigned=True,
        expires=expires,
    )


def parse_amz_date(value: str) -> datetime:
    when = _amz_date(value)
    if when is None:
        raise S3Error(
            "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header"
        )
    return when


@functools.lru_cache(maxsize=64)
def _amz_date(value: str) -> datetime | None:
    # Every request of a second carries the same date: strptime once for all of them.
    try:
        return datetime.strptime(value, _AMZ_DATE).replace(tzinfo=UTC)
    except ValueError:
        return None


def _uri_encode(data: bytes, safe: str) -> str:
    return quote(data, safe=safe)


def canonical_uri(raw_path: bytes) -> str:
    """Decode the path once and encode each byte the way SigV4 does (``/`` kept)."""
    return _uri_encode(unquote_to_bytes(raw_path.decode("latin-1")), safe="/-_.~")


def canonical_query(raw_query: bytes, exclude: str | None = None) -> str:
    pairs: list[tuple[str, str]] = []
    for part in raw_query.decode("latin-1").split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        # Clients may send '+' for space in the query; S3 treats it as a literal '+'.
        name_b = unquote_to_bytes(name)
        if exclude is not None and name_b == exclude.encode():
            continue
        pairs.append(
            (_uri_encode(name_b, safe="-_.~"), _uri_encode(unquote_to_bytes(value), safe="-_.~"))
        )
    pairs.sort()
    return "&".join(f"{k}={v}" for k, v in pairs)


def canonical_headers(headers: Mapping[str, str], signed: tuple[str, ...]) -> str:
    lines = []
    for name in signed:
        value = headers.get(name)
        if value is None:
            # Signed but absent: the signature cannot be what the client computed.
            raise S3Error("SignatureDoesNotMatch")
        lines.append(f"{name}:{_SPACES.sub(' ', value.strip())}\n")
    return "".join(lines)


def canonical_request(
    method: str,
    raw_path: bytes,
    raw_query: bytes,
    headers: Mapping[str, str],
    signed: tuple[str, ...],
    payload_hash: str,
    presigned: bool,
) -> str:
    return "\n".join(
        [
            method,
            canonical_uri(raw_path),
            canonical_query(raw_query, exclude="X-Amz-Signature" if presigned else None),
            canonical_headers(headers, signed),
            ";".join(signed),
            payload_hash,
        ]
    )


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def signing_key(secret: str, credential: Credential) -> bytes:
    return _signing_key(secret, credential.date, credential.region, credential.service)


@functools.lru_cache(maxsize=256)
def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    # The key changes once a day per access key: four HMACs once, not per request.
    key = _hmac(("AWS4" + secret).encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.digest(key, msg.encode(), "sha256")


def sign(key: bytes, to_sign: str) -> str:
    return hmac.digest(key, to_sign.encode(), "sha256").hex()


def signatures_match(expected: str, provided: str) -> bool:
    # Constant time: a timing side channel must not reveal signature prefixes.
    return hmac.compare_digest(expected.encode(), provided.encode())


@dataclass(slots=True)
class ChunkSigner:
    """Verifies the per-chunk (and trailer) signatures of a streaming upload."""

    key: bytes
    amz_date: str
    scope: str
    previous: str

    def chunk_signature(self, chunk_sha256: str) -> str:
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                self.amz_date,
                self.scope,
                self.previous,
                EMPTY_SHA256,
                chunk_sha256,
            ]
        )
        return sign(self.key, to_sign)

    def verify_chunk(self, chunk_sha256: str, provided: str) -> None:
        expected = self.chunk_signature(chunk_sha256)
        if not signatures_match(expected, provided):
            raise S3Error("SignatureDoesNotMatch", "The chunk signature does not match.")
        self.previous = expected

    def verify_trailer(self, trailers: Mapping[str, str], provided: str) -> None:
        canonical = "".join(f"{k}:{v}\n" for k, v in trailers.items())
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-TRAILER",
                self.amz_date,
                self.scope,
                self.previous,
                hashlib.sha256(canonical.encode()).hexdigest(),
            ]
        )
        if not signatures_match(sign(self.key, to_sign), provided):
            raise S3Error("SignatureDoesNotMatch", "The trailer signature does not match.")
