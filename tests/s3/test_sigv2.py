"""Signature Version 2 known answers from the AWS documentation examples."""

from __future__ import annotations

from s3proxy.s3 import sigv2

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def test_get_object_example() -> None:
    headers = {"date": "Tue, 27 Mar 2007 19:36:42 +0000", "host": "johnsmith.s3.amazonaws.com"}
    req = sigv2.parse("AWS AKIAIOSFODNN7EXAMPLE:x", {}, headers)
    to_sign = sigv2.string_to_sign("GET", "/johnsmith/photos/puppy.jpg", {}, headers, req.date_line)
    assert to_sign == "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/johnsmith/photos/puppy.jpg"
    assert sigv2.sign(SECRET, to_sign) == "bWq2s1WEIj+Ydj0vQ697zp+IXMU="


def test_put_object_example() -> None:
    headers = {
        "content-type": "image/jpeg",
        "content-length": "94328",
        "date": "Tue, 27 Mar 2007 21:15:45 +0000",
    }
    to_sign = sigv2.string_to_sign(
        "PUT", "/johnsmith/photos/puppy.jpg", {}, headers, headers["date"]
    )
    assert sigv2.sign(SECRET, to_sign) == "MyyxeRY7whkBe+bq8fHCL/2kKUg="


def test_amz_headers_and_subresources_are_signed() -> None:
    headers = {"x-amz-date": "Tue, 27 Mar 2007 19:36:42 +0000", "X-Ignored": "1"}
    headers = {k.lower(): v for k, v in headers.items()}
    req = sigv2.parse("AWS key:sig", {}, headers)
    assert req.date_line == ""  # x-amz-date replaces the Date line
    to_sign = sigv2.string_to_sign(
        "GET", "/b/k", {"acl": "", "prefix": "x", "versionId": "null"}, headers, req.date_line
    )
    assert to_sign.endswith("x-amz-date:Tue, 27 Mar 2007 19:36:42 +0000\n/b/k?acl&versionId=null")
