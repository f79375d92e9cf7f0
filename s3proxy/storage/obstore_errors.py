"""obstore exceptions -> storage errors, with one log line per kind of backend trouble.

obstore reports most HTTP failures as ``GenericError`` whose text carries the status line
and the cloud's error body, after its own retries (5xx, 429, timeouts, connection
errors) gave up. The kind of failure is therefore read from the exception type first and
from the text second. Whatever the kind, the client gets a fixed S3 error; the detail
goes to the proxy's log, scrubbed of anything that looks like a credential (SAS
signatures and presigned-URL parameters can appear in the URLs obstore quotes).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable
from typing import TypeVar

from obstore import exceptions as obx

from s3proxy.storage.backend import (
    BackendUnavailable,
    NoSuchKey,
    PreconditionFailed,
    StorageError,
)

log = logging.getLogger("s3proxy.storage")

T = TypeVar("T")


class BackendThrottled(BackendUnavailable):
    """The cloud kept answering "slow down" (HTTP 429/503) after obstore's retries."""

    code = "SlowDown"
    message = "Please reduce your request rate."


class BackendTimeout(BackendUnavailable):
    """The cloud did not answer in time (connect, request or read timeout)."""

    code = "ServiceUnavailable"
    message = "The storage backend did not answer in time; try again."


class BackendAccessDenied(BackendUnavailable):
    """The cloud refused the proxy's own identity, or no credential could be obtained.

    This is the operator's problem, not the client's: it is answered as 503 (the
    client's request may well succeed once the identity is fixed) and logged with the
    identity the backend tried.
    """

    code = "ServiceUnavailable"
    message = "The storage backend is unavailable; try again."


class KeyTooLongForBackend(StorageError):
    """The key, once encoded and prefixed, exceeds the backend's name limit."""

    code = "KeyTooLongError"
    message = "Your key is too long for the storage backend behind this bucket."


# The HTTP status obstore got, as it prints it ("status code: 503 ..." / "status: 503,").
_STATUS = re.compile(r"status(?: code)?: (\d{3})\b")
_THROTTLED_CODES = re.compile(
    r"SlowDown|TooManyRequests|ServerBusy|rateLimitExceeded|RequestLimitExceeded"
)
_TIMEOUT = re.compile(r"kind: Timeout|TimedOut|timed out|deadline has elapsed", re.IGNORECASE)
_AUTH = re.compile(
    r"AccessDenied|AuthorizationFailure|AuthenticationFailed|AuthorizationPermissionMismatch"
    r"|InvalidAccessKeyId|SignatureDoesNotMatch|ExpiredToken|token request|fetching credentials"
    r"|credential provider|metadata endpoint"
)
# Credential-looking material that may appear in URLs or error bodies quoted by obstore.
_SECRETS = re.compile(
    r"(?i)((?:sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token"
    r"|x-goog-signature|x-goog-credential|access_token|client_secret|client_assertion"
    r"|skoid|sktid|token)=)[^&\s\"'<]+"
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=-]+"
)
# One warning per (backend, kind) per this many seconds: a broken identity fails every
# request, and the log should say so without repeating it thousands of times.
LOG_EVERY = 60.0
_last_logged: dict[tuple[str, str], float] = {}


def scrub(text: str) -> str:
    """The first line of ``text`` with credential-looking values replaced by ``***``."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return _SECRETS.sub(lambda m: (m.group(1) or "") + "***", first)[:500]


def forget_logged() -> None:
    """Log the next failure of every kind again (tests)."""
    _last_logged.clear()


def _warn(backend: str, kind: str, message: str, *args: object) -> None:
    now = time.monotonic()
    last = _last_logged.get((backend, kind))
    if last is not None and now - last < LOG_EVERY:
        return
    _last_logged[(backend, kind)] = now
    log.warning(message, *args)


def classify(
    exc: BaseException,
    *,
    backend: str,
    identity: str = "",
    missing: type[StorageError] = NoSuchKey,
) -> StorageError:
    """The storage error for an obstore exception (not raised; the caller raises it)."""
    if isinstance(exc, obx.NotFoundError | FileNotFoundError):
        return missing()
    if isinstance(exc, obx.AlreadyExistsError | obx.PreconditionError):
        return PreconditionFailed()
    text = str(exc)
    detail = scrub(text)
    found = _STATUS.search(text)
    status = int(found.group(1)) if found else 0
    throttled = status in (429, 503) or bool(_THROTTLED_CODES.search(text))
    denied = status in (401, 403) or (not throttled and bool(_AUTH.search(text)))
    if isinstance(exc, obx.PermissionDeniedError | obx.UnauthenticatedError) or denied:
        _warn(
            backend,
            "identity",
            "backend %s refused the proxy's identity (%s): %s; check the identity's "
            "permissions on the bucket/container",
            backend,
            identity or "cloud default credential chain",
            detail,
        )
        return BackendAccessDenied(type(exc).__name__)
    if throttled:
        _warn(backend, "throttled", "backend %s is throttling requests: %s", backend, detail)
        return BackendThrottled(type(exc).__name__)
    if status in (408, 504) or _TIMEOUT.search(text):
        _warn(backend, "timeout", "backend %s timed out: %s", backend, detail)
        return BackendTimeout(type(exc).__name__)
    _warn(backend, "unavailable", "backend %s failed: %s: %s", backend, type(exc).__name__, detail)
    return BackendUnavailable(type(exc).__name__)


async def translate(
    coro: Awaitable[T],
    *,
    backend: str = "",
    identity: str = "",
    missing: type[StorageError] = NoSuchKey,
) -> T:
    """Run an obstore call, mapping its exceptions onto the storage contract.

    The storage error is raised ``from None``: obstore's own message may quote signed
    URLs, and chained exceptions end up in tracebacks.
    """
    try:
        return await coro
    except StorageError:
        raise
    except (obx.BaseError, FileNotFoundError, OSError, RuntimeError) as exc:
        err = classify(exc, backend=backend, identity=identity, missing=missing)
    raise err from None
