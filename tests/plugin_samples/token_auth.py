"""A third-party authenticator that replaces SigV4: a static token header."""

from __future__ import annotations

from s3proxy.auth import Principal
from s3proxy.config import Config
from s3proxy.hookspecs import hookimpl
from s3proxy.s3.errors import S3Error
from s3proxy.s3.http import S3Request


class TokenAuthenticator:
    async def authenticate(self, req: S3Request) -> Principal:
        if req.headers.get("x-test-token") != "letmein":
            raise S3Error("AccessDenied", "A valid x-test-token is required.")
        return Principal("token-user")


@hookimpl
def make_authenticator(config: Config) -> TokenAuthenticator:
    return TokenAuthenticator()
