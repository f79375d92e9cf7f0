"""Built-in authentication (SigV4) and authorization (per-key policy) plugin.

Clients authenticate to the proxy with access keys the operator issues; the proxy
authenticates to the cloud on its own (managed identity). Registered through the
``make_authenticator`` / ``make_authorizer`` hooks like any third-party plugin, so a
plugin can replace the authenticator or add authorizers.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import logging
import time
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import unquote

import msgspec

from s3proxy.config import AuthConfig, Config, ConfigError, CredentialConfig
from s3proxy.hookspecs import hookimpl
from s3proxy.s3 import post_policy, sigv2, sigv4
from s3proxy.s3.errors import S3Error
from s3proxy.s3.http import S3Request

log = logging.getLogger("s3proxy.auth")

_FILE_CHECK_INTERVAL = 1.0


@dataclass(slots=True)
class Principal:
    """Who made a request: an access key id (never the secret) or anonymous."""

    name: str
    anonymous: bool = False
    buckets: list[str] = field(default_factory=lambda: ["*"])
    read_only: bool = False
    operations: list[str] = field(default_factory=list)
    #: Set for streaming signed uploads: verifies each chunk as the body arrives.
    chunk_signer: sigv4.ChunkSigner | None = None

    def may_use_bucket(self, bucket: str) -> bool:
        return any(fnmatch.fnmatchcase(bucket, pattern) for pattern in self.buckets)


ANONYMOUS = "anonymous"


def is_read(operation: str) -> bool:
    return operation.startswith(("Get", "List", "Head"))


class _FileCredentials(msgspec.Struct, forbid_unknown_fields=True):
    credentials: list[CredentialConfig] = msgspec.field(default_factory=list)


class CredentialStore:
    """Access keys from config plus a credentials file re-read when it changes."""

    def __init__(self, cfg: AuthConfig) -> None:
        static = list(cfg.credentials)
        if cfg.access_key_id or cfg.secret_access_key:
            if not (cfg.access_key_id and cfg.secret_access_key):
                raise ConfigError(
                    "invalid config auth: access_key_id and secret_access_key go together"
                )
            static.append(
                CredentialConfig(
                    access_key_id=cfg.access_key_id, secret_access_key=cfg.secret_access_key
                )
            )
        self._static = {c.access_key_id: c for c in static}
        self._path = Path(cfg.credentials_file) if cfg.credentials_file else None
        self._from_file: dict[str, CredentialConfig] = {}
        self._stamp: tuple[int, int] | None = None
        self._checked = -float("inf")
        if self._path is not None:
            self._reload(strict=True)

    @property
    def configured(self) -> bool:
        return bool(self._static) or self._path is not None

    def _reload(self, strict: bool) -> None:
        assert self._path is not None
        try:
            stat = self._path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp == self._stamp:
                return
            data = tomllib.loads(self._path.read_text())
            parsed = msgspec.convert(data, _FileCredentials)
        except (OSError, tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
            if strict:
                raise ConfigError(f"invalid credentials file {self._path}: {exc}") from None
            # Keep serving with the keys we had: a half-written Secret must not lock
            # everyone out.
            log.error("credentials file %s unreadable, keeping previous keys: %s", self._path, exc)
            return
        self._from_file = {c.access_key_id: c for c in parsed.credentials}
        self._stamp = stamp
        log.info("loaded %d credentials from %s", len(self._from_file), self._path)

    def lookup(self, access_key_id: str) -> CredentialConfig | None:
        if self._path is not None and time.monotonic() - self._checked >= _FILE_CHECK_INTERVAL:
            self._checked = time.monotonic()
            self._reload(strict=False)
        return self._static.get(access_key_id) or self._from_file.get(access_key_id)


def _amz_date(req: S3Request) -> str | None:
    value = req.headers.get("x-amz-date")
    if value:
        return value
    date = req.headers.get("date")
    if not date:
        return None
    try:
        return parsedate_to_datetime(date).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    except (TypeError, ValueError):
        return None


class SigV4Authenticator:
    """Verifies AWS Signature Version 4 (header, presigned URL, streaming uploads), and
    Signature Version 2 when enabled."""

    def __init__(self, cfg: Config, store: CredentialStore) -> None:
        self.cfg = cfg.auth
        self.region = cfg.s3.region
        self.store = store

    async def authenticate(self, req: S3Request) -> Principal:
        if not self.store.configured:
            # No keys to check against: anonymous rules (or development mode) decide.
            return Principal(ANONYMOUS, anonymous=True)
        header = req.headers.get("authorization")
        v2 = (header or "").startswith("AWS ") or "AWSAccessKeyId" in req.query
        if v2:
            if not self.cfg.allow_sigv2:
                raise S3Error(
                    "InvalidRequest",
                    "The authorization mechanism you have provided is not supported. "
                    "Please use AWS4-HMAC-SHA256.",
                )
            return self._authenticate_v2(req, header)
        if header is None and "X-Amz-Credential" not in req.query:
            return Principal(ANONYMOUS, anonymous=True)
        if header is not None:
            signed = sigv4.parse_authorization(header, _amz_date(req))
        else:
            signed = sigv4.parse_presigned(req.query)
        self._check_scope(signed)
        cred = self.store.lookup(signed.credential.access_key_id)
        if cred is None:
            raise S3Error(
                "InvalidAccessKeyId",
                extra={"AWSAccessKeyId": signed.credential.access_key_id},
            )
        self._check_time(signed)
        payload_hash = self._payload_hash(req, signed)
        canonical = sigv4.canonical_request(
            req.method,
            req.raw_path,
            req.raw_query,
            req.headers,
            signed.signed_headers,
            payload_hash,
            signed.presigned,
        )
        to_sign = sigv4.string_to_sign(signed.amz_date, signed.credential.scope, canonical)
        key = sigv4.signing_key(cred.secret_access_key, signed.credential)
        if not sigv4.signatures_match(sigv4.sign(key, to_sign), signed.signature):
            extra = {"AWSAccessKeyId": cred.access_key_id, "SignatureProvided": signed.signature}
            if self.cfg.debug_signatures:
                extra |= {"StringToSign": to_sign, "CanonicalRequest": canonical}
            raise S3Error("SignatureDoesNotMatch", extra=extra)
        signer = None
        if payload_hash in (sigv4.STREAMING_SIGNED, sigv4.STREAMING_SIGNED_TRAILER):
            signer = sigv4.ChunkSigner(
                key, signed.amz_date, signed.credential.scope, signed.signature
            )
        principal = _principal(cred)
        principal.chunk_signer = signer
        return principal

    async def authenticate_form(
        self, req: S3Request, fields: dict[str, str]
    ) -> tuple[Principal, post_policy.Policy | None]:
        """Authenticate a browser form upload: the signature covers the policy."""
        policy_b64 = fields.get("policy")
        if not self.store.configured or not ("x-amz-signature" in fields or "signature" in fields):
            principal = Principal(ANONYMOUS, anonymous=True)
        elif policy_b64 is None:
            raise S3Error("InvalidArgument", "Bucket POST must contain a field named 'policy'.")
        elif "x-amz-signature" in fields:
            principal = self._form_v4(fields, policy_b64)
        else:
            principal = self._form_v2(fields, policy_b64)
        policy = post_policy.decode(policy_b64) if policy_b64 else None
        if policy is not None:
            post_policy.check(policy, fields)
        return principal, policy

    def _form_v4(self, fields: dict[str, str], policy_b64: str) -> Principal:
        if fields.get("x-amz-algorithm") != sigv4.ALGORITHM:
            raise S3Error("InvalidArgument", "x-amz-algorithm must be AWS4-HMAC-SHA256.")
        signed = sigv4.SignedRequest(
            credential=sigv4.parse_credential(
                fields.get("x-amz-credential", ""), "InvalidArgument"
            ),
            signed_headers=(),
            signature=fields["x-amz-signature"],
            amz_date=fields.get("x-amz-date", ""),
            presigned=True,
        )
        self._check_scope(signed)
        cred = self._lookup(signed.credential.access_key_id)
        key = sigv4.signing_key(cred.secret_access_key, signed.credential)
        if not sigv4.signatures_match(sigv4.sign(key, policy_b64), signed.signature):
            raise S3Error("SignatureDoesNotMatch", extra={"AWSAccessKeyId": cred.access_key_id})
        return _principal(cred)

    def _form_v2(self, fields: dict[str, str], policy_b64: str) -> Principal:
        if not self.cfg.allow_sigv2:
            raise S3Error("InvalidRequest", "Please use AWS4-HMAC-SHA256.")
        cred = self._lookup(fields.get("awsaccesskeyid", ""))
        if not sigv2.matches(sigv2.sign(cred.secret_access_key, policy_b64), fields["signature"]):
            raise S3Error("SignatureDoesNotMatch", extra={"AWSAccessKeyId": cred.access_key_id})
        return _principal(cred)

    def _lookup(self, access_key_id: str) -> CredentialConfig:
        cred = self.store.lookup(access_key_id)
        if cred is None:
            raise S3Error("InvalidAccessKeyId", extra={"AWSAccessKeyId": access_key_id})
        return cred

    def _authenticate_v2(self, req: S3Request, header: str | None) -> Principal:
        signed = sigv2.parse(header, req.query, req.headers)
        cred = self.store.lookup(signed.access_key_id)
        if cred is None:
            raise S3Error("InvalidAccessKeyId", extra={"AWSAccessKeyId": signed.access_key_id})
        now = datetime.now(UTC)
        if signed.expires is not None:
            if now.timestamp() > signed.expires:
                raise S3Error("AccessDenied", "Request has expired")
        else:
            amz_date = _amz_date(req)
            when = sigv4.parse_amz_date(amz_date or "")
            if abs((now - when).total_seconds()) > self.cfg.max_skew_seconds:
                raise S3Error("RequestTimeTooSkewed")
        # The signed resource is the path-style path, also for virtual-host requests;
        # a bucket itself is "/bucket/".
        resource = f"/{req.bucket}/" if req.bucket and req.key is None else req.resource
        to_sign = sigv2.string_to_sign(
            req.method, resource, req.query, req.headers, signed.date_line
        )
        if not sigv2.matches(sigv2.sign(cred.secret_access_key, to_sign), signed.signature):
            extra = {"AWSAccessKeyId": cred.access_key_id, "SignatureProvided": signed.signature}
            if self.cfg.debug_signatures:
                extra["StringToSign"] = to_sign
            raise S3Error("SignatureDoesNotMatch", extra=extra)
        return _principal(cred)

    def _check_scope(self, signed: sigv4.SignedRequest) -> None:
        code = (
            "AuthorizationQueryParametersError"
            if signed.presigned
            else "AuthorizationHeaderMalformed"
        )
        cred = signed.credential
        if cred.service != "s3":
            raise S3Error(
                code,
                f'The authorization header is malformed; incorrect service "{cred.service}". '
                'This endpoint belongs to "s3".',
            )
        if cred.region != self.region:
            raise S3Error(
                code,
                f"The authorization header is malformed; the region '{cred.region}' is wrong; "
                f"expecting '{self.region}'",
                extra={"Region": self.region},
            )
        if signed.amz_date[:8] != cred.date:
            raise S3Error(
                code,
                "The authorization header is malformed; Invalid credential date. "
                "Date is not the same as X-Amz-Date.",
            )

    def _check_time(self, signed: sigv4.SignedRequest) -> None:
        when = sigv4.parse_amz_date(signed.amz_date)
        now = datetime.now(UTC)
        skew = (now - when).total_seconds()
        if signed.presigned:
            assert signed.expires is not None
            if skew > signed.expires:
                raise S3Error(
                    "AccessDenied",
                    "Request has expired",
                    extra={"X-Amz-Expires": str(signed.expires), "ServerTime": _iso(now)},
                )
            if -skew > self.cfg.max_skew_seconds:
                raise S3Error("AccessDenied", "Request is not valid yet")
            return
        if abs(skew) > self.cfg.max_skew_seconds:
            raise S3Error(
                "RequestTimeTooSkewed",
                extra={
                    "RequestTime": signed.amz_date,
                    "ServerTime": _iso(now),
                    "MaxAllowedSkewMilliseconds": str(self.cfg.max_skew_seconds * 1000),
                },
            )

    @staticmethod
    def _payload_hash(req: S3Request, signed: sigv4.SignedRequest) -> str:
        value = req.headers.get("x-amz-content-sha256")
        if signed.presigned:
            return value or sigv4.UNSIGNED_PAYLOAD
        if value is None:
            raise S3Error(
                "InvalidRequest", "Missing required header for this request: x-amz-content-sha256"
            )
        return value


def _principal(cred: CredentialConfig) -> Principal:
    return Principal(
        cred.access_key_id,
        buckets=cred.buckets,
        read_only=cred.read_only,
        operations=cred.operations,
    )


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


class PolicyAuthorizer:
    """Applies each key's policy (buckets, read-only, operations) and anonymous access."""

    def __init__(self, cfg: AuthConfig, open_access: bool) -> None:
        self.cfg = cfg
        # No credentials on a loopback bind: the local-development mode.
        self.open_access = open_access

    async def authorize(self, principal: Principal, req: S3Request) -> None:
        op = req.operation
        if principal.anonymous:
            if self.open_access or self.cfg.anonymous == "full":
                return
            public = req.bucket is not None and any(
                fnmatch.fnmatchcase(req.bucket, p) for p in self.cfg.public_read_buckets
            )
            if is_read(op) and op != "ListBuckets" and (self.cfg.anonymous == "read" or public):
                return
            raise S3Error("AccessDenied")
        if principal.read_only and not is_read(op):
            raise S3Error("AccessDenied")
        if principal.operations and op not in principal.operations:
            raise S3Error("AccessDenied")
        for bucket in (req.bucket, _copy_source_bucket(req)):
            if bucket is not None and not principal.may_use_bucket(bucket):
                raise S3Error("AccessDenied")


def _copy_source_bucket(req: S3Request) -> str | None:
    source = req.headers.get("x-amz-copy-source")
    if not source:
        return None
    return unquote(source).lstrip("/").split("/", 1)[0] or None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def open_access(cfg: Config) -> bool:
    """Whether the proxy runs in local-development mode (everything allowed).

    Refuses (ConfigError) to expose an unauthenticated proxy beyond loopback.
    """
    auth = cfg.auth
    has_keys = bool(auth.credentials or auth.access_key_id or auth.credentials_file)
    if has_keys or auth.anonymous != "none":
        return False
    if not is_loopback(cfg.server.host):
        raise ConfigError(
            f"invalid config auth: refusing to serve on {cfg.server.host} without credentials; "
            "configure auth.credentials (or S3PROXY_AUTH__ACCESS_KEY_ID and "
            "S3PROXY_AUTH__SECRET_ACCESS_KEY) or choose auth.anonymous explicitly"
        )
    return True


@hookimpl(trylast=True)
def make_authenticator(config: Config) -> SigV4Authenticator:
    return SigV4Authenticator(config, CredentialStore(config.auth))


@hookimpl(trylast=True)
def make_authorizer(config: Config) -> PolicyAuthorizer:
    dev = open_access(config)
    if dev:
        log.warning("no credentials configured: accepting every request (loopback only)")
    return PolicyAuthorizer(config.auth, dev)
