"""HTTP conditional requests as S3 evaluates them (RFC 9110 section 13 precedence).

Reads (GetObject/HeadObject) and copy sources are checked inside the backend's ``plan``
callback, against the info of the very version about to be read, so a refused request
never reads a byte of the body. Writes (If-None-Match: * / If-Match) are enforced by the
backend at commit; this module only parses them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from s3proxy.s3.errors import S3Error
from s3proxy.storage.backend import ObjectInfo, PutMode


class NotModified(Exception):
    """A read whose If-None-Match / If-Modified-Since says the client's copy is current."""

    def __init__(self, info: ObjectInfo) -> None:
        super().__init__("not modified")
        self.info = info


def normalize_etag(value: str) -> str:
    """``W/"abc"``, ``"abc"`` and ``abc`` all name the ETag ``abc``.

    S3 stores no weak ETags, so a weak validator is compared by its opaque value.
    """
    value = value.strip()
    if value.startswith(("W/", "w/")):
        value = value[2:]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return value


def etag_list(header: str) -> list[str]:
    """The entity tags of an If-Match / If-None-Match list (``*`` stays ``*``)."""
    return [normalize_etag(part) for part in header.split(",") if part.strip()]


def etag_matches(header: str, etag: str) -> bool:
    """Does the object's ``etag`` satisfy the list in ``header``?"""
    tags = etag_list(header)
    return "*" in tags or normalize_etag(etag) in tags


def parse_http_date(value: str) -> datetime | None:
    """An HTTP-date (any of the three RFC 9110 forms); None when unparseable.

    S3, like RFC 9110, ignores a date condition whose value is not a valid date.
    """
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _seconds(info: ObjectInfo) -> datetime:
    # Last-Modified goes out with one-second resolution; compare at that resolution.
    modified = info.last_modified.replace(microsecond=0)
    return modified if modified.tzinfo is not None else modified.replace(tzinfo=UTC)


def precondition_failed(condition: str) -> S3Error:
    return S3Error("PreconditionFailed", extra={"Condition": condition})


@dataclass(slots=True, frozen=True)
class _Names:
    if_match: str
    if_none_match: str
    if_modified_since: str
    if_unmodified_since: str


_READ = _Names("If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since")
_COPY = _Names(
    "x-amz-copy-source-If-Match",
    "x-amz-copy-source-If-None-Match",
    "x-amz-copy-source-If-Modified-Since",
    "x-amz-copy-source-If-Unmodified-Since",
)


def _evaluate(
    headers: Mapping[str, str], info: ObjectInfo, names: _Names
) -> tuple[int, str] | None:
    """The first condition that fails, as (412 or 304, header name); None when all hold.

    Order and precedence as S3 documents them: If-Match, then If-Unmodified-Since only
    when If-Match is absent; If-None-Match, then If-Modified-Since only when
    If-None-Match is absent. So If-Match true + If-Unmodified-Since false is a 200, and
    If-None-Match false + If-Modified-Since true is a 304.
    """
    if_match = headers.get(names.if_match.lower())
    if if_match is not None:
        if not etag_matches(if_match, info.etag):
            return 412, names.if_match
    else:
        raw = headers.get(names.if_unmodified_since.lower())
        since = parse_http_date(raw) if raw is not None else None
        if since is not None and _seconds(info) > since:
            return 412, names.if_unmodified_since
    if_none_match = headers.get(names.if_none_match.lower())
    if if_none_match is not None:
        if etag_matches(if_none_match, info.etag):
            return 304, names.if_none_match
    else:
        raw = headers.get(names.if_modified_since.lower())
        since = parse_http_date(raw) if raw is not None else None
        if since is not None and _seconds(info) <= since:
            return 304, names.if_modified_since
    return None


def check_read(headers: Mapping[str, str], info: ObjectInfo) -> None:
    """GetObject/HeadObject: raise PreconditionFailed (412) or NotModified (304)."""
    failed = _evaluate(headers, info, _READ)
    if failed is None:
        return
    status, name = failed
    if status == 304:
        raise NotModified(info)
    raise precondition_failed(name)


def check_copy_source(headers: Mapping[str, str], info: ObjectInfo) -> None:
    """CopyObject/UploadPartCopy source conditions: every failure is a 412."""
    failed = _evaluate(headers, info, _COPY)
    if failed is not None:
        raise precondition_failed(failed[1])


@dataclass(slots=True, frozen=True)
class WriteConditions:
    """A conditional write: create-only, or replace only the object with ``if_match``."""

    mode: PutMode = "overwrite"
    #: Normalized S3 ETag the current object must have ("*": any existing object).
    if_match: str | None = None

    @property
    def condition(self) -> str:
        """The header to name in a PreconditionFailed error."""
        return "If-None-Match" if self.mode == "create" else "If-Match"


def write_conditions(headers: Mapping[str, str]) -> WriteConditions:
    """PutObject/CopyObject If-None-Match / If-Match (S3 takes only ``*`` for the former)."""
    if_none_match = headers.get("if-none-match")
    mode: PutMode = "overwrite"
    if if_none_match is not None:
        if if_none_match.strip() != "*":
            raise S3Error(
                "NotImplemented",
                "A header you provided implies functionality that is not implemented",
                extra={"Header": "If-None-Match"},
            )
        mode = "create"
    if_match = headers.get("if-match")
    return WriteConditions(
        mode=mode, if_match=normalize_etag(if_match) if if_match is not None else None
    )
