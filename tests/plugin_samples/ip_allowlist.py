"""A third-party authorizer: only clients from the listed addresses (env ALLOWED_IPS)."""

from __future__ import annotations

import os

from s3proxy.auth import Principal
from s3proxy.config import Config
from s3proxy.hookspecs import hookimpl
from s3proxy.s3.errors import S3Error
from s3proxy.s3.http import S3Request


class AllowList:
    def __init__(self, allowed: set[str]) -> None:
        self.allowed = allowed

    async def authorize(self, principal: Principal, req: S3Request) -> None:
        if req.client.rsplit(":", 1)[0] not in self.allowed:
            raise S3Error("AccessDenied", "Your address is not allowed.")


@hookimpl
def make_authorizer(config: Config) -> AllowList:
    return AllowList({ip for ip in os.environ.get("ALLOWED_IPS", "").split(",") if ip})
