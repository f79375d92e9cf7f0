"""Errors of the layer: storage errors that carry the S3 error code to answer with.

The S3 layer maps a ``StorageError`` to an S3 error; these carry ``code`` and
``message`` (as ``s3proxy.storage.obstore_errors.KeyTooLongForBackend`` does) so that
the client gets a plain S3 error, never a key, a tag or a stack trace.
"""

from __future__ import annotations

from s3proxy.storage.backend import StorageError


class TransformError(StorageError):
    """The object's stored form could not be read or written."""

    code = "InternalError"
    message = "The object's stored data could not be decoded."


class KeyUnavailable(TransformError):
    """The master key that wrapped the object's data key is not available (or wrong)."""

    # As S3 answers for an SSE-KMS object whose key the caller may not use.
    code = "AccessDenied"
    message = "The object's encryption key is not available to this proxy."


class IntegrityError(TransformError):
    """Stored bytes failed authentication: tampered, truncated or from another object."""

    message = "The object's stored data failed its integrity check."
