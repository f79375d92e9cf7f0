"""obstore failures -> storage errors, and nothing secret in what gets logged."""

from __future__ import annotations

import pytest
from obstore import exceptions as obx

from s3proxy.storage.backend import BackendUnavailable, NoSuchBucket, NoSuchKey, PreconditionFailed
from s3proxy.storage.obstore_errors import (
    BackendAccessDenied,
    BackendThrottled,
    BackendTimeout,
    classify,
    forget_logged,
    scrub,
)


def test_scrub_hides_credentials() -> None:
    text = (
        "Error performing GET https://acct.blob.core.windows.net/c/k?sv=2022&sig=abc%2Bdef&se=1 "
        "X-Amz-Signature=deadbeef&X-Amz-Credential=AKIAABCDEFGHIJKLMNOP%2F2024 "
        "Authorization: Bearer eyJhbGciOi.payload.sig access_token=ya29.secret\nsecond line"
    )
    out = scrub(text)
    for secret in ("abc%2Bdef", "deadbeef", "AKIAABCDEFGHIJKLMNOP", "eyJhbGciOi", "ya29.secret"):
        assert secret not in out
    assert "second line" not in out
    assert "acct.blob.core.windows.net/c/k" in out


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (obx.NotFoundError("gone"), NoSuchKey),
        (FileNotFoundError("gone"), NoSuchKey),
        (obx.AlreadyExistsError("x"), PreconditionFailed),
        (obx.PreconditionError("x"), PreconditionFailed),
        (obx.PermissionDeniedError("no"), BackendAccessDenied),
        (obx.UnauthenticatedError("no"), BackendAccessDenied),
        (
            obx.GenericError("Server returned non-2xx status code: 403 Forbidden: "),
            BackendAccessDenied,
        ),
        (obx.GenericError("x\n inner: Status {\n status: 401,\n"), BackendAccessDenied),
        (
            obx.GenericError("Error performing token request: error sending request"),
            BackendAccessDenied,
        ),
        (
            obx.GenericError("status code: 503 Service Unavailable: <Code>SlowDown</Code>"),
            BackendThrottled,
        ),
        (obx.GenericError("status code: 429 Too Many Requests"), BackendThrottled),
        (obx.GenericError("<Code>ServerBusy</Code>"), BackendThrottled),
        (obx.GenericError("error sending request\n kind: Timeout,"), BackendTimeout),
        (obx.GenericError("status code: 504 Gateway Timeout"), BackendTimeout),
        (
            obx.GenericError("status code: 500 Internal Server Error (retry_timeout: 180s)"),
            BackendUnavailable,
        ),
    ],
)
def test_classify(exc: BaseException, expected: type[Exception]) -> None:
    forget_logged()
    err = classify(exc, backend="test")
    assert type(err) is expected


def test_missing_can_mean_the_bucket() -> None:
    assert isinstance(
        classify(obx.NotFoundError("x"), backend="t", missing=NoSuchBucket), NoSuchBucket
    )


def test_repeated_failures_are_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    forget_logged()
    for _ in range(5):
        classify(obx.GenericError("status code: 503 SlowDown"), backend="rate")
    assert caplog.text.count("backend rate is throttling") == 1
