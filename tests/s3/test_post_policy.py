"""POST policy decoding and condition checks."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from s3proxy.s3 import post_policy
from s3proxy.s3.errors import S3Error


def encode(conditions: list[object], expires_in: timedelta = timedelta(hours=1)) -> str:
    expiration = (datetime.now(UTC) + expires_in).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    doc = {"expiration": expiration, "conditions": conditions}
    return base64.b64encode(json.dumps(doc).encode()).decode()


FIELDS = {
    "bucket": "b",
    "key": "user/alice/a.jpg",
    "content-type": "image/jpeg",
    "x-amz-meta-a": "1",
}
CONDITIONS: list[object] = [
    {"bucket": "b"},
    ["starts-with", "$key", "user/alice/"],
    ["starts-with", "$Content-Type", "image/"],
    ["eq", "$x-amz-meta-a", "1"],
    ["content-length-range", 1, 1000],
]


def test_satisfied_policy() -> None:
    policy = post_policy.decode(encode(CONDITIONS))
    post_policy.check(policy, FIELDS)
    assert policy.length_range == (1, 1000)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"key": "user/bob/a.jpg"}, "starts-with"),
        ({"content-type": "text/html"}, "starts-with"),
        ({"x-amz-meta-a": "2"}, "eq"),
        ({"bucket": "other"}, "eq"),
        ({"x-amz-meta-extra": "sneaky"}, "Extra input fields: x-amz-meta-extra"),
    ],
)
def test_violations_are_denied(change: dict[str, str], reason: str) -> None:
    policy = post_policy.decode(encode(CONDITIONS))
    with pytest.raises(S3Error) as exc:
        post_policy.check(policy, {**FIELDS, **change})
    assert exc.value.code == "AccessDenied"
    assert reason in exc.value.message


def test_exempt_fields_need_no_condition() -> None:
    policy = post_policy.decode(encode(CONDITIONS))
    post_policy.check(policy, {**FIELDS, "x-amz-signature": "s", "policy": "p", "x-ignore-me": "1"})


def test_expired() -> None:
    policy = post_policy.decode(encode(CONDITIONS, timedelta(seconds=-1)))
    with pytest.raises(S3Error) as exc:
        post_policy.check(policy, FIELDS)
    assert "Policy expired" in exc.value.message


@pytest.mark.parametrize(
    "raw",
    [
        "not base64!",
        base64.b64encode(b"not json").decode(),
        base64.b64encode(b'{"conditions": []}').decode(),
        encode([["nonsense", "$key", "x"]]),
        encode([["content-length-range", "a", "b"]]),
    ],
)
def test_invalid_documents(raw: str) -> None:
    with pytest.raises(S3Error) as exc:
        post_policy.decode(raw)
    assert exc.value.code == "InvalidPolicyDocument"
