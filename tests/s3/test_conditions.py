"""Conditional request evaluation (s3/conditions.py): S3's precedence, parsing, writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3proxy.s3.conditions import (
    NotModified,
    check_copy_source,
    check_read,
    etag_matches,
    normalize_etag,
    parse_http_date,
    write_conditions,
)
from s3proxy.s3.errors import S3Error
from s3proxy.storage.backend import ObjectInfo, ObjectMetadata

ETAG = "9b2cf535f27731c974343645a3985328"
MODIFIED = datetime(2024, 5, 1, 12, 0, 0, 500_000, tzinfo=UTC)
EARLIER = format_datetime(MODIFIED - timedelta(days=1), usegmt=True)
LATER = format_datetime(MODIFIED + timedelta(days=1), usegmt=True)
# The same second as Last-Modified (which goes out without the fraction).
SAME = format_datetime(MODIFIED.replace(microsecond=0), usegmt=True)


def info() -> ObjectInfo:
    return ObjectInfo("k", 10, MODIFIED, ObjectMetadata(etag=ETAG))


def outcome(headers: dict[str, str]) -> int:
    """200, 304 or 412, as GetObject would answer."""
    try:
        check_read(headers, info())
    except NotModified:
        return 304
    except S3Error as err:
        assert err.code == "PreconditionFailed"
        return err.status
    return 200


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 200),
        ({"if-match": f'"{ETAG}"'}, 200),
        ({"if-match": '"other"'}, 412),
        ({"if-match": "*"}, 200),
        ({"if-none-match": f'"{ETAG}"'}, 304),
        ({"if-none-match": '"other"'}, 200),
        ({"if-none-match": "*"}, 304),
        ({"if-modified-since": EARLIER}, 200),
        ({"if-modified-since": SAME}, 304),
        ({"if-modified-since": LATER}, 304),
        ({"if-unmodified-since": EARLIER}, 412),
        ({"if-unmodified-since": SAME}, 200),
        ({"if-unmodified-since": LATER}, 200),
        # S3's documented precedence: If-Match true wins over If-Unmodified-Since false.
        ({"if-match": ETAG, "if-unmodified-since": EARLIER}, 200),
        ({"if-match": "other", "if-unmodified-since": LATER}, 412),
        # If-None-Match false + If-Modified-Since true is still a 304.
        ({"if-none-match": ETAG, "if-modified-since": EARLIER}, 304),
        # If-None-Match true: If-Modified-Since is not consulted.
        ({"if-none-match": "other", "if-modified-since": LATER}, 200),
        # If-Match is checked before If-None-Match.
        ({"if-match": "other", "if-none-match": ETAG}, 412),
        ({"if-match": ETAG, "if-none-match": ETAG}, 304),
        ({"if-unmodified-since": EARLIER, "if-modified-since": LATER}, 412),
        # Unparseable dates are ignored.
        ({"if-modified-since": "yesterday"}, 200),
        ({"if-unmodified-since": "not a date"}, 200),
    ],
)
def test_read_precedence(headers: dict[str, str], status: int) -> None:
    assert outcome(headers) == status


def test_precondition_names_the_condition() -> None:
    with pytest.raises(S3Error) as exc:
        check_read({"if-unmodified-since": EARLIER}, info())
    assert exc.value.extra == {"Condition": "If-Unmodified-Since"}


def test_not_modified_carries_the_info() -> None:
    with pytest.raises(NotModified) as exc:
        check_read({"if-none-match": ETAG}, info())
    assert exc.value.info.etag == ETAG


@pytest.mark.parametrize(
    ("headers", "condition"),
    [
        ({"x-amz-copy-source-if-match": "other"}, "x-amz-copy-source-If-Match"),
        ({"x-amz-copy-source-if-none-match": ETAG}, "x-amz-copy-source-If-None-Match"),
        ({"x-amz-copy-source-if-modified-since": LATER}, "x-amz-copy-source-If-Modified-Since"),
        (
            {"x-amz-copy-source-if-unmodified-since": EARLIER},
            "x-amz-copy-source-If-Unmodified-Since",
        ),
    ],
)
def test_copy_source_failures_are_412(headers: dict[str, str], condition: str) -> None:
    with pytest.raises(S3Error) as exc:
        check_copy_source(headers, info())
    assert (exc.value.code, exc.value.status) == ("PreconditionFailed", 412)
    assert exc.value.extra["Condition"] == condition


def test_copy_source_ignores_plain_conditions() -> None:
    # If-Match on a CopyObject is about the destination, not the source.
    check_copy_source({"if-match": "other", "if-none-match": ETAG}, info())
    check_copy_source(
        {"x-amz-copy-source-if-match": ETAG, "x-amz-copy-source-if-unmodified-since": EARLIER},
        info(),
    )


@pytest.mark.parametrize(
    "value", [ETAG, f'"{ETAG}"', f'W/"{ETAG}"', f' "{ETAG}" ', f'"x", "{ETAG}"', "*"]
)
def test_etag_forms_match(value: str) -> None:
    assert etag_matches(value, ETAG)
    assert etag_matches(value, f'"{ETAG}"')


@pytest.mark.parametrize("value", ["", '""', f'"{ETAG}x"', "W/other", f"{ETAG[:-1]}"])
def test_etag_forms_that_do_not_match(value: str) -> None:
    assert not etag_matches(value, ETAG)


def test_multipart_etag_matches() -> None:
    assert etag_matches('"abc-3"', "abc-3")
    assert not etag_matches('"abc"', "abc-3")


@given(st.text(alphabet="0123456789abcdef-", min_size=1, max_size=40))
def test_normalize_is_idempotent_over_quoting(etag: str) -> None:
    for form in (etag, f'"{etag}"', f'W/"{etag}"'):
        assert normalize_etag(form) == etag
        assert normalize_etag(normalize_etag(form)) == etag


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)))
def test_http_dates_round_trip(moment: datetime) -> None:
    moment = moment.replace(microsecond=0, tzinfo=UTC)
    assert parse_http_date(format_datetime(moment, usegmt=True)) == moment


def test_other_http_date_forms() -> None:
    expected = datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)
    assert parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == expected
    assert parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == expected
    assert parse_http_date("Sun Nov  6 08:49:37 1994") == expected
    assert parse_http_date("garbage") is None
    assert parse_http_date("") is None


def test_write_conditions() -> None:
    assert write_conditions({}).mode == "overwrite"
    create = write_conditions({"if-none-match": "*"})
    assert (create.mode, create.if_match, create.condition) == ("create", None, "If-None-Match")
    update = write_conditions({"if-match": f'"{ETAG}"'})
    assert (update.mode, update.if_match, update.condition) == ("overwrite", ETAG, "If-Match")


def test_if_none_match_with_an_etag_is_not_implemented_for_writes() -> None:
    with pytest.raises(S3Error) as exc:
        write_conditions({"if-none-match": f'"{ETAG}"'})
    assert (exc.value.code, exc.value.status) == ("NotImplemented", 501)
