"""S3 errors: the one table from error code to HTTP status and default message."""

from __future__ import annotations

from s3proxy.storage import backend as st

# code -> (HTTP status, default message), as in the S3 API reference's error list.
ERRORS: dict[str, tuple[int, str]] = {
    "AccessDenied": (403, "Access Denied"),
    "AccessForbidden": (403, "CORSResponse: This CORS request is not allowed."),
    "BadDigest": (400, "The Content-MD5 you specified did not match what we received."),
    "BucketAlreadyExists": (409, "The requested bucket name is not available."),
    "BucketAlreadyOwnedByYou": (
        409,
        "Your previous request to create the named bucket succeeded and you already own it.",
    ),
    "BucketNotEmpty": (409, "The bucket you tried to delete is not empty"),
    "EntityTooLarge": (400, "Your proposed upload exceeds the maximum allowed size"),
    "EntityTooSmall": (
        400,
        "Your proposed upload is smaller than the minimum allowed object size.",
    ),
    "IncompleteBody": (
        400,
        "You did not provide the number of bytes specified by the Content-Length HTTP header",
    ),
    "InternalError": (500, "We encountered an internal error. Please try again."),
    "InvalidArgument": (400, "Invalid Argument"),
    "InvalidBucketName": (400, "The specified bucket is not valid."),
    "InvalidDigest": (400, "The Content-MD5 you specified is not valid."),
    "InvalidPart": (
        400,
        "One or more of the specified parts could not be found. The part may not have been "
        "uploaded, or the specified entity tag may not match the part's entity tag.",
    ),
    "InvalidPartNumber": (416, "The requested partnumber is not satisfiable"),
    "InvalidPartOrder": (
        400,
        "The list of parts was not in ascending order. The parts list must be specified in "
        "order by part number.",
    ),
    "InvalidRange": (416, "The requested range is not satisfiable"),
    "InvalidRequest": (400, "Invalid Request"),
    "InvalidURI": (400, "Couldn't parse the specified URI."),
    "KeyTooLongError": (400, "Your key is too long"),
    "MalformedXML": (
        400,
        "The XML you provided was not well-formed or did not validate against our published schema",
    ),
    "MetadataTooLarge": (
        400,
        "Your metadata headers exceed the maximum allowed metadata size.",
    ),
    "MethodNotAllowed": (405, "The specified method is not allowed against this resource."),
    "MissingContentLength": (411, "You must provide the Content-Length HTTP header."),
    "NoSuchBucket": (404, "The specified bucket does not exist"),
    "NoSuchKey": (404, "The specified key does not exist."),
    "NoSuchUpload": (
        404,
        "The specified upload does not exist. The upload ID may be invalid, or the upload "
        "may have been aborted or completed.",
    ),
    "NotImplemented": (501, "A header you provided implies functionality that is not implemented"),
    "PreconditionFailed": (412, "At least one of the preconditions you specified did not hold"),
    "ServiceUnavailable": (503, "Please reduce your request rate."),
    "SlowDown": (503, "Please reduce your request rate."),
    "NoSuchCORSConfiguration": (404, "The CORS configuration does not exist"),
    "NoSuchBucketPolicy": (404, "The bucket policy does not exist"),
    "NoSuchLifecycleConfiguration": (404, "The lifecycle configuration does not exist"),
    "NoSuchTagSet": (404, "The TagSet does not exist"),
    "NoSuchWebsiteConfiguration": (
        404,
        "The specified bucket does not have a website configuration",
    ),
    "NoSuchPublicAccessBlockConfiguration": (
        404,
        "The public access block configuration was not found",
    ),
    "ObjectLockConfigurationNotFoundError": (
        404,
        "Object Lock configuration does not exist for this bucket",
    ),
    "OwnershipControlsNotFoundError": (404, "The bucket ownership controls were not found"),
    "ReplicationConfigurationNotFoundError": (404, "The replication configuration was not found"),
    "ServerSideEncryptionConfigurationNotFoundError": (
        404,
        "The server side encryption configuration was not found",
    ),
    "MalformedACLError": (
        400,
        "The XML you provided was not well-formed or did not validate against our "
        "published schema.",
    ),
    "MissingSecurityHeader": (400, "Your request was missing a required header"),
    "AuthorizationHeaderMalformed": (400, "The authorization header is malformed."),
    "AuthorizationQueryParametersError": (
        400,
        "Error parsing the X-Amz-Credential parameter.",
    ),
    "InvalidAccessKeyId": (
        403,
        "The AWS Access Key Id you provided does not exist in our records.",
    ),
    "RequestTimeTooSkewed": (
        403,
        "The difference between the request time and the current time is too large.",
    ),
    "SignatureDoesNotMatch": (
        403,
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
    ),
    # Object semantics: conditional writes, checksums, copy, storage classes.
    "AccessControlListNotSupported": (400, "The bucket does not allow ACLs"),
    "ConditionalRequestConflict": (
        409,
        "A conflicting conditional operation is currently in progress against this resource. "
        "Please try again.",
    ),
    "InvalidStorageClass": (400, "The storage class you specified is not valid"),
    "MalformedTrailerError": (
        400,
        "The request contained trailing data that was not well-formed or did not conform to "
        "our published schema.",
    ),
    "XAmzContentSHA256Mismatch": (
        400,
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
    ),
    "InvalidPolicyDocument": (
        400,
        "The content of the form does not meet the conditions specified in the policy document.",
    ),
    "MalformedPOSTRequest": (
        400,
        "The body of your POST request is not well-formed multipart/form-data.",
    ),
    "MaxPostPreDataLengthExceeded": (
        400,
        "Your POST request fields preceding the upload file were too large.",
    ),
    "RequestTimeout": (
        400,
        "Your socket connection to the server was not read from or written to within the "
        "timeout period.",
    ),
    "RequestHeaderSectionTooLarge": (
        400,
        "Your request header section exceeds the maximum allowed size.",
    ),
}


class S3Error(Exception):
    """An error answered to the client as S3 error XML."""

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        resource: str | None = None,
        status: int | None = None,
        extra: dict[str, str] | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        default_status, default_message = ERRORS[code]
        self.code = code
        self.status = status or default_status
        self.message = message or default_message
        self.resource = resource
        self.extra = extra or {}
        self.headers = headers or []
        super().__init__(f"{code}: {self.message}")


def from_storage(exc: st.StorageError, *, bucket: str = "", key: str = "") -> S3Error:
    """Map a backend error onto its S3 error."""
    extra: dict[str, str] = {}
    if bucket:
        extra["BucketName"] = bucket
    if isinstance(exc, st.NoSuchBucket):
        return S3Error("NoSuchBucket", extra=extra)
    if isinstance(exc, st.NoSuchKey):
        if key:
            extra["Key"] = key
        return S3Error("NoSuchKey", extra=extra)
    if isinstance(exc, st.BucketNotEmpty):
        return S3Error("BucketNotEmpty", extra=extra)
    if isinstance(exc, st.BucketAlreadyExists):
        return S3Error("BucketAlreadyOwnedByYou", extra=extra)
    if isinstance(exc, st.ConditionalRequestConflict):
        return S3Error("ConditionalRequestConflict")
    if isinstance(exc, st.PreconditionFailed):
        return S3Error("PreconditionFailed")
    # An error that names an S3 code of the table keeps it: multipart rule violations,
    # a cloud's throttling (SlowDown), a transform layer's AccessDenied for a wrong key.
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code in ERRORS:
        return S3Error(code, getattr(exc, "message", None) or None)
    if isinstance(exc, st.BackendUnavailable):
        return S3Error("ServiceUnavailable", "The storage backend is unavailable; try again.")
    return S3Error("InternalError")
