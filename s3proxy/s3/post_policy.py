"""POST policy documents of browser form uploads: decoding and condition checks.

A policy is base64 JSON ``{"expiration": ISO8601, "conditions": [...]}``. Conditions
are ``{"field": "value"}`` (exact), ``["eq", "$field", "value"]``, ``["starts-with",
"$field", "prefix"]`` or ``["content-length-range", min, max]``. Every form field the
client sends (but the signature, the file, the policy itself and ``x-ignore-*``) must be
named by a condition.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from s3proxy.s3.errors import S3Error

# Fields a policy does not have to mention.
_EXEMPT = {"policy", "file", "x-amz-signature", "signature", "awsaccesskeyid"}


def _denied(reason: str) -> S3Error:
    return S3Error("AccessDenied", f"Invalid according to Policy: {reason}")


@dataclass(slots=True)
class Policy:
    expiration: datetime
    exact: list[tuple[str, str]] = field(default_factory=list)
    starts_with: list[tuple[str, str]] = field(default_factory=list)
    length_range: tuple[int, int] | None = None

    @property
    def named(self) -> set[str]:
        return {name for name, _ in self.exact} | {name for name, _ in self.starts_with}


def decode(policy_b64: str) -> Policy:
    try:
        doc = json.loads(base64.b64decode(policy_b64, validate=True))
        expiration = datetime.fromisoformat(doc["expiration"].replace("Z", "+00:00"))
        conditions = doc.get("conditions", [])
        if not isinstance(conditions, list):
            raise ValueError("conditions")
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError):
        raise S3Error("InvalidPolicyDocument", "Invalid Policy: Invalid JSON.") from None
    if expiration.tzinfo is None:
        expiration = expiration.replace(tzinfo=UTC)
    policy = Policy(expiration)
    for cond in conditions:
        _add_condition(policy, cond)
    return policy


def _add_condition(policy: Policy, cond: Any) -> None:
    if isinstance(cond, dict) and len(cond) == 1:
        ((name, value),) = cond.items()
        policy.exact.append((str(name).lower(), str(value)))
        return
    if isinstance(cond, list) and len(cond) == 3:
        op, target, value = cond
        op = str(op).lower()
        if op == "content-length-range":
            try:
                policy.length_range = (int(target), int(value))
            except (TypeError, ValueError):
                raise S3Error(
                    "InvalidPolicyDocument", "Invalid Policy: Invalid content-length-range."
                ) from None
            return
        if op in ("eq", "starts-with") and isinstance(target, str) and target.startswith("$"):
            pair = (target[1:].lower(), str(value))
            (policy.exact if op == "eq" else policy.starts_with).append(pair)
            return
    raise S3Error("InvalidPolicyDocument", f"Invalid Policy: Invalid condition {cond!r}.")


def check(policy: Policy, fields: Mapping[str, str], now: datetime | None = None) -> None:
    """Raise AccessDenied unless the form fields satisfy the policy.

    ``fields`` has lower-case names and must include ``bucket`` and the final ``key``.
    """
    now = now or datetime.now(UTC)
    if now >= policy.expiration:
        raise _denied("Policy expired.")
    for name, value in policy.exact:
        if fields.get(name) != value:
            raise _denied(f'Policy Condition failed: ["eq", "${name}", "{value}"]')
    for name, prefix in policy.starts_with:
        actual = fields.get(name)
        # Content-Type may hold several comma-separated values, each checked.
        values = actual.split(",") if name == "content-type" and actual else [actual]
        if actual is None or not all((v or "").strip().startswith(prefix) for v in values):
            raise _denied(f'Policy Condition failed: ["starts-with", "${name}", "{prefix}"]')
    named = policy.named
    for name in fields:
        if name in _EXEMPT or name.startswith("x-ignore-") or name == "bucket":
            continue
        if name not in named:
            raise _denied(f"Extra input fields: {name}")
