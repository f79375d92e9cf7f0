"""CORS for browser clients, from configuration: preflight answers and response headers."""

from __future__ import annotations

from collections.abc import Mapping

from s3proxy.config import CorsConfig
from s3proxy.s3.errors import S3Error
from s3proxy.s3.http import S3Response


def origin_allowed(origin: str, patterns: list[str]) -> bool:
    """Exact match, ``*``, or a pattern with one ``*`` wildcard (as in S3 CORS rules)."""
    for pattern in patterns:
        if pattern in ("*", origin):
            return True
        head, star, tail = pattern.partition("*")
        fits = len(origin) >= len(head) + len(tail)
        if star and fits and origin.startswith(head) and origin.endswith(tail):
            return True
    return False


def _allow_origin(cfg: CorsConfig, origin: str) -> str:
    return "*" if cfg.allowed_origins == ["*"] else origin


def preflight(cfg: CorsConfig, headers: Mapping[str, str]) -> S3Response:
    """Answer an OPTIONS preflight request."""
    origin = headers.get("origin")
    method = headers.get("access-control-request-method")
    if not origin or not method:
        raise S3Error(
            "InvalidRequest",
            "Insufficient information. Origin request header needed.",
            status=400,
        )
    wanted = [
        h.strip().lower() for h in headers.get("access-control-request-headers", "").split(",")
    ]
    wanted = [h for h in wanted if h]
    allowed_headers = {h.lower() for h in cfg.allowed_headers}
    if (
        not origin_allowed(origin, cfg.allowed_origins)
        or method.upper() not in {m.upper() for m in cfg.allowed_methods}
        or ("*" not in allowed_headers and not set(wanted) <= allowed_headers)
    ):
        raise S3Error("AccessForbidden")
    out = [
        ("access-control-allow-origin", _allow_origin(cfg, origin)),
        ("access-control-allow-methods", ", ".join(cfg.allowed_methods)),
        ("access-control-max-age", str(cfg.max_age)),
        ("vary", "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"),
    ]
    if wanted:
        out.append(("access-control-allow-headers", ", ".join(wanted)))
    if cfg.expose_headers:
        out.append(("access-control-expose-headers", ", ".join(cfg.expose_headers)))
    return S3Response(headers=out)


def response_headers(cfg: CorsConfig, headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """CORS headers for an actual (non-preflight) request from an allowed origin."""
    origin = headers.get("origin")
    if not origin or not origin_allowed(origin, cfg.allowed_origins):
        return []
    out = [
        ("access-control-allow-origin", _allow_origin(cfg, origin)),
        ("vary", "Origin"),
    ]
    if cfg.expose_headers:
        out.append(("access-control-expose-headers", ", ".join(cfg.expose_headers)))
    return out
