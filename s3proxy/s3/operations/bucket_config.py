"""Bucket and object sub-resources that clients probe: location, versioning, ACLs and
the configurations a proxy bucket never has (CORS rules, policy, lifecycle, ...).

Tools such as the AWS CLI, rclone and Terraform read these to decide how to behave;
answering "not configured" as S3 does (rather than NotImplemented) keeps them working.
Writes of real configuration stay NotImplemented: accepting them would be a lie.
"""

from __future__ import annotations

from xml.etree import ElementTree

from s3proxy.s3 import xml
from s3proxy.s3.errors import S3Error
from s3proxy.s3.http import S3Request, S3Response, xml_response
from s3proxy.s3.operations import (
    OWNER_ID,
    Handler,
    Handlers,
    bucket_and_key,
    owner,
    storage_errors,
)

XSI = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser"'
# Largest ACL body read when checking that it only restates the owner's full control.
MAX_ACL_BODY = 64 * 1024


async def _existing_bucket(req: S3Request) -> str:
    assert req.bucket is not None
    with storage_errors(req.bucket):
        await req.backend.head_bucket(req.bucket)
    return req.bucket


async def get_bucket_location(req: S3Request) -> S3Response:
    await _existing_bucket(req)
    # us-east-1 is reported as an empty constraint, as S3 does.
    region = "" if req.region == "us-east-1" else req.region
    return xml_response(xml.text_document("LocationConstraint", region))


async def get_bucket_versioning(req: S3Request) -> S3Response:
    await _existing_bucket(req)
    # Never enabled: no Status element.
    return xml_response(xml.document("VersioningConfiguration", []))


def _acl_document() -> bytes:
    return xml.document(
        "AccessControlPolicy",
        [
            ("Owner", owner()),
            (
                "AccessControlList",
                [("Grant", [(f"Grantee {XSI}", owner()), ("Permission", "FULL_CONTROL")])],
            ),
        ],
    )


async def get_bucket_acl(req: S3Request) -> S3Response:
    await _existing_bucket(req)
    return xml_response(_acl_document())


async def get_object_acl(req: S3Request) -> S3Response:
    bucket, key = bucket_and_key(req)
    with storage_errors(bucket, key):
        await req.backend.head(bucket, key)
    return xml_response(_acl_document())


def _only_owner_full_control(body: bytes) -> bool:
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise S3Error("MalformedACLError") from None
    grants = [g for g in root.iter() if g.tag.endswith("Grant")]
    for grant in grants:
        ids = [e.text for e in grant.iter() if e.tag.endswith("ID")]
        perms = [e.text for e in grant.iter() if e.tag.endswith("Permission")]
        if ids != [OWNER_ID] or perms != ["FULL_CONTROL"]:
            return False
    return bool(grants)


async def _check_private_acl(req: S3Request) -> None:
    """Only the canned ``private`` ACL (the proxy's only access model) is accepted, given
    as ``x-amz-acl: private`` or as a body granting the owner FULL_CONTROL alone."""
    refused = S3Error("NotImplemented", "Only the canned ACL 'private' is supported.")
    if any(h.startswith("x-amz-grant-") for h in req.headers):
        raise refused
    body = bytearray()
    async for chunk in req.body:
        body += chunk
        if len(body) > MAX_ACL_BODY:
            raise S3Error("MalformedACLError")
    canned = req.headers.get("x-amz-acl")
    if canned is not None:
        if canned != "private" or body:
            raise refused
        return
    if not body:
        raise S3Error("MissingSecurityHeader", "Your request was missing a required header")
    if not _only_owner_full_control(bytes(body)):
        raise refused


async def put_bucket_acl(req: S3Request) -> S3Response:
    await _existing_bucket(req)
    await _check_private_acl(req)
    return S3Response()


async def put_object_acl(req: S3Request) -> S3Response:
    bucket, key = bucket_and_key(req)
    with storage_errors(bucket, key):
        await req.backend.head(bucket, key)
    await _check_private_acl(req)
    return S3Response()


async def get_object_tagging(req: S3Request) -> S3Response:
    bucket, key = bucket_and_key(req)
    with storage_errors(bucket, key):
        await req.backend.head(bucket, key)
    # Tags cannot be set through the proxy, so every object has an empty tag set.
    return xml_response(xml.document("Tagging", [("TagSet", [])]))


def _not_configured(code: str) -> Handler:
    async def handler(req: S3Request) -> S3Response:
        bucket = await _existing_bucket(req)
        raise S3Error(code, resource=req.resource, extra={"BucketName": bucket})

    return handler


def _fixed(document: bytes) -> Handler:
    async def handler(req: S3Request) -> S3Response:
        await _existing_bucket(req)
        return xml_response(document)

    return handler


async def _nothing_to_delete(req: S3Request) -> S3Response:
    # Deleting a configuration that does not exist succeeds in S3.
    await _existing_bucket(req)
    return S3Response(status=204)


HANDLERS: Handlers = {
    "GetBucketLocation": get_bucket_location,
    "GetBucketVersioning": get_bucket_versioning,
    "GetBucketAcl": get_bucket_acl,
    "PutBucketAcl": put_bucket_acl,
    "GetObjectAcl": get_object_acl,
    "PutObjectAcl": put_object_acl,
    "GetObjectTagging": get_object_tagging,
    "GetBucketCors": _not_configured("NoSuchCORSConfiguration"),
    "GetBucketPolicy": _not_configured("NoSuchBucketPolicy"),
    "GetBucketPolicyStatus": _not_configured("NoSuchBucketPolicy"),
    "GetBucketLifecycleConfiguration": _not_configured("NoSuchLifecycleConfiguration"),
    "GetBucketTagging": _not_configured("NoSuchTagSet"),
    "GetBucketWebsite": _not_configured("NoSuchWebsiteConfiguration"),
    "GetBucketEncryption": _not_configured("ServerSideEncryptionConfigurationNotFoundError"),
    "GetPublicAccessBlock": _not_configured("NoSuchPublicAccessBlockConfiguration"),
    "GetObjectLockConfiguration": _not_configured("ObjectLockConfigurationNotFoundError"),
    "GetBucketOwnershipControls": _not_configured("OwnershipControlsNotFoundError"),
    "GetBucketReplication": _not_configured("ReplicationConfigurationNotFoundError"),
    "GetBucketRequestPayment": _fixed(
        xml.document("RequestPaymentConfiguration", [("Payer", "BucketOwner")])
    ),
    "GetBucketAccelerateConfiguration": _fixed(xml.document("AccelerateConfiguration", [])),
    "GetBucketLogging": _fixed(xml.document("BucketLoggingStatus", [])),
    "GetBucketNotificationConfiguration": _fixed(xml.document("NotificationConfiguration", [])),
    **{
        op: _nothing_to_delete
        for op in (
            "DeleteBucketCors",
            "DeleteBucketPolicy",
            "DeleteBucketLifecycle",
            "DeleteBucketTagging",
            "DeleteBucketWebsite",
            "DeleteBucketEncryption",
            "DeletePublicAccessBlock",
            "DeleteBucketOwnershipControls",
            "DeleteBucketReplication",
        )
    },
}
