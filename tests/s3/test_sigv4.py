"""Known-answer tests from the AWS S3 SigV4 documentation examples, plus properties."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3proxy.s3 import sigv4
from s3proxy.s3.errors import S3Error

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
CRED = sigv4.Credential("AKIAIOSFODNN7EXAMPLE", "20130524", "us-east-1", "s3")
DATE = "20130524T000000Z"
HOST = "examplebucket.s3.amazonaws.com"


def signature(
    method: str,
    path: bytes,
    query: bytes,
    headers: dict[str, str],
    payload: str,
    presigned: bool = False,
) -> str:
    signed = tuple(sorted(headers))
    canonical = sigv4.canonical_request(method, path, query, headers, signed, payload, presigned)
    to_sign = sigv4.string_to_sign(DATE, CRED.scope, canonical)
    return sigv4.sign(sigv4.signing_key(SECRET, CRED), to_sign)


def test_get_object_example() -> None:
    headers = {
        "host": HOST,
        "range": "bytes=0-9",
        "x-amz-content-sha256": sigv4.EMPTY_SHA256,
        "x-amz-date": DATE,
    }
    got = signature("GET", b"/test.txt", b"", headers, sigv4.EMPTY_SHA256)
    assert got == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"


def test_put_object_example() -> None:
    payload = hashlib.sha256(b"Welcome to Amazon S3.").hexdigest()
    headers = {
        "date": "Fri, 24 May 2013 00:00:00 GMT",
        "host": HOST,
        "x-amz-content-sha256": payload,
        "x-amz-date": DATE,
        "x-amz-storage-class": "REDUCED_REDUNDANCY",
    }
    got = signature("PUT", b"/test%24file.text", b"", headers, payload)
    assert got == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"


def test_get_bucket_lifecycle_example() -> None:
    headers = {"host": HOST, "x-amz-content-sha256": sigv4.EMPTY_SHA256, "x-amz-date": DATE}
    got = signature("GET", b"/", b"lifecycle", headers, sigv4.EMPTY_SHA256)
    assert got == "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"


def test_list_objects_example() -> None:
    headers = {"host": HOST, "x-amz-content-sha256": sigv4.EMPTY_SHA256, "x-amz-date": DATE}
    got = signature("GET", b"/", b"max-keys=2&prefix=J", headers, sigv4.EMPTY_SHA256)
    assert got == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"


def test_presigned_url_example() -> None:
    query = (
        b"X-Amz-Algorithm=AWS4-HMAC-SHA256"
        b"&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
        b"&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        b"&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    )
    got = signature(
        "GET", b"/test.txt", query, {"host": HOST}, sigv4.UNSIGNED_PAYLOAD, presigned=True
    )
    assert got == "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"


def test_streaming_chunk_signatures_example() -> None:
    # "Signature Calculations for the Authorization Header: Transferring Payload in
    # Multiple Chunks": 64 KiB + 1 KiB of 'a', then the final empty chunk.
    seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
    signer = sigv4.ChunkSigner(sigv4.signing_key(SECRET, CRED), DATE, CRED.scope, seed)
    expected = [
        (b"a" * 65536, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"),
        (b"a" * 1024, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"),
        (b"", "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"),
    ]
    for data, sig in expected:
        signer.verify_chunk(hashlib.sha256(data).hexdigest(), sig)
    bad = sigv4.ChunkSigner(sigv4.signing_key(SECRET, CRED), DATE, CRED.scope, seed)
    with pytest.raises(S3Error) as exc:
        bad.verify_chunk(hashlib.sha256(b"b" * 65536).hexdigest(), expected[0][1])
    assert exc.value.code == "SignatureDoesNotMatch"


def test_parse_authorization() -> None:
    header = (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=abc"
    )
    parsed = sigv4.parse_authorization(header, DATE)
    assert parsed.credential == CRED
    assert parsed.signed_headers == ("host", "range", "x-amz-content-sha256", "x-amz-date")
    assert parsed.signature == "abc"
    for broken, code in [
        ("AWS AKIA:sig", "AuthorizationHeaderMalformed"),
        ("AWS4-HMAC-SHA256 Credential=a/b/c/s3/aws4_request", "AuthorizationHeaderMalformed"),
        (header.replace("aws4_request", "aws5"), "AuthorizationHeaderMalformed"),
    ]:
        with pytest.raises(S3Error) as exc:
            sigv4.parse_authorization(broken, DATE)
        assert exc.value.code == code


def test_presigned_expiry_limit() -> None:
    query = {
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": "AKIA/20130524/us-east-1/s3/aws4_request",
        "X-Amz-Date": DATE,
        "X-Amz-Expires": "604801",
        "X-Amz-SignedHeaders": "host",
        "X-Amz-Signature": "x",
    }
    with pytest.raises(S3Error) as exc:
        sigv4.parse_presigned(query)
    assert exc.value.code == "AuthorizationQueryParametersError"
    assert "604800" in exc.value.message


@settings(max_examples=100)
@given(
    path=st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
    query=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=4),
)
def test_canonical_forms_ignore_client_encoding_choices(path: str, query: dict[str, str]) -> None:
    """Percent-encoding a character or not must not change the canonical form."""
    from urllib.parse import quote

    raw = "/" + path
    minimal = quote(raw, safe="/:@!$&'()*+,;=").encode()
    maximal = "".join(
        c if c == "/" else "".join(f"%{b:02X}" for b in c.encode()) for c in raw
    ).encode()
    assert sigv4.canonical_uri(minimal) == sigv4.canonical_uri(maximal)
    pairs_a = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query.items())
    pairs_b = "&".join(
        f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in reversed(list(query.items()))
    )
    assert sigv4.canonical_query(pairs_a.encode()) == sigv4.canonical_query(pairs_b.encode())
