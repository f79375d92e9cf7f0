"""Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket."""

from __future__ import annotations

from s3proxy.s3 import xml
from s3proxy.s3.errors import S3Error
from s3proxy.s3.http import S3Request, S3Response, xml_response
from s3proxy.s3.operations import Handlers, owner, storage_errors

# Largest CreateBucketConfiguration body read before giving up on it.
MAX_CONFIG_BODY = 64 * 1024


def _bucket(req: S3Request) -> str:
    assert req.bucket is not None  # guaranteed by dispatch
    return req.bucket


async def list_buckets(req: S3Request) -> S3Response:
    buckets = await req.backend.list_buckets()
    if req.principal is not None and not req.principal.anonymous:
        # A key limited to some buckets sees only those.
        buckets = [b for b in buckets if req.principal.may_use_bucket(b.name)]
    body = xml.document(
        "ListAllMyBucketsResult",
        [
            ("Owner", owner()),
            (
                "Buckets",
                [("Bucket", [("Name", b.name), ("CreationDate", b.created)]) for b in buckets],
            ),
        ],
    )
    return xml_response(body)


async def create_bucket(req: S3Request) -> S3Response:
    bucket = _bucket(req)
    # The optional CreateBucketConfiguration (LocationConstraint) does not change where
    # a proxy bucket lives; read and drop it, bounded.
    size = 0
    async for chunk in req.body:
        size += len(chunk)
        if size > MAX_CONFIG_BODY:
            raise S3Error("MalformedXML")
    with storage_errors(bucket):
        await req.backend.create_bucket(bucket)
    return S3Response(headers=[("location", f"/{bucket}")])


async def head_bucket(req: S3Request) -> S3Response:
    bucket = _bucket(req)
    with storage_errors(bucket):
        await req.backend.head_bucket(bucket)
    return S3Response(headers=[("x-amz-bucket-region", req.region)])


async def delete_bucket(req: S3Request) -> S3Response:
    bucket = _bucket(req)
    with storage_errors(bucket):
        await req.backend.delete_bucket(bucket)
    return S3Response(status=204)


HANDLERS: Handlers = {
    "ListBuckets": list_buckets,
    "CreateBucket": create_bucket,
    "HeadBucket": head_bucket,
    "DeleteBucket": delete_bucket,
}
