"""The S3 response XML encoder."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3proxy.s3.xml import DECLARATION, S3_NS, document, escape, timestamp

NS = f"{{{S3_NS}}}"


def parse(body: bytes) -> ET.Element:
    return ET.fromstring(body)


def test_nested_document_is_well_formed() -> None:
    body = document(
        "ListBucketResult",
        [
            ("Name", "bucket"),
            ("Prefix", ""),
            ("KeyCount", 2),
            ("IsTruncated", False),
            ("NextContinuationToken", None),
            (
                "Contents",
                [
                    ("Key", "a&b"),
                    ("LastModified", datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)),
                    ("Size", 0),
                    ("Owner", [("ID", "o"), ("DisplayName", None)]),
                ],
            ),
            ("Contents", [("Key", "c<d>"), ("Size", 12)]),
            ("CommonPrefixes", [("Prefix", "dir/")]),
        ],
    )
    assert body.startswith(DECLARATION.encode())
    root = parse(body)
    assert root.tag == f"{NS}ListBucketResult"
    assert [child.tag.removeprefix(NS) for child in root] == [
        "Name",
        "Prefix",
        "KeyCount",
        "IsTruncated",
        "Contents",
        "Contents",
        "CommonPrefixes",
    ]
    assert root.findtext(f"{NS}Name") == "bucket"
    # An empty string is an empty element, unlike None.
    prefix = root.find(f"{NS}Prefix")
    assert prefix is not None
    assert prefix.text is None
    assert root.findtext(f"{NS}KeyCount") == "2"
    assert root.findtext(f"{NS}IsTruncated") == "false"
    first, second = root.findall(f"{NS}Contents")
    assert first.findtext(f"{NS}Key") == "a&b"
    assert first.findtext(f"{NS}LastModified") == "2024-05-06T07:08:09.123Z"
    assert first.findtext(f"{NS}Size") == "0"
    owner = first.find(f"{NS}Owner")
    assert owner is not None
    assert [c.tag.removeprefix(NS) for c in owner] == ["ID"]
    assert second.findtext(f"{NS}Key") == "c<d>"
    assert root.findtext(f"{NS}CommonPrefixes/{NS}Prefix") == "dir/"


def test_without_namespace() -> None:
    body = document("Error", [("Code", "NoSuchKey"), ("Key", "k")], namespace=False)
    assert body == (DECLARATION + "<Error><Code>NoSuchKey</Code><Key>k</Key></Error>").encode()
    assert parse(body).tag == "Error"


def test_exact_output() -> None:
    body = document("R", [("A", "x"), ("B", [("C", 1), ("D", None)]), ("E", [])])
    assert body == (DECLARATION + f'<R xmlns="{S3_NS}"><A>x</A><B><C>1</C></B><E></E></R>').encode()


def test_none_is_omitted() -> None:
    body = document("R", [("A", None), ("B", [("C", None)])], namespace=False)
    assert body == (DECLARATION + "<R><B></B></R>").encode()


@pytest.mark.parametrize(("value", "text"), [(True, "true"), (False, "false")])
def test_bools(value: bool, text: str) -> None:
    body = document("R", [("V", value)], namespace=False)
    assert f"<V>{text}</V>".encode() in body


def test_ints() -> None:
    body = document("R", [("A", 0), ("B", -1), ("C", 2**63)], namespace=False)
    assert b"<A>0</A><B>-1</B><C>9223372036854775808</C>" in body


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("plain", "plain"),
        ("&", "&amp;"),
        ("<", "&lt;"),
        (">", "&gt;"),
        ('"', "&quot;"),
        ("'", "'"),
        ('a&b<c>d"e', "a&amp;b&lt;c&gt;d&quot;e"),
        ("&amp;", "&amp;amp;"),
        # XML parsers turn a literal CR into LF; S3 keys may hold either.
        ("\r", "&#xD;"),
        ("\r\n", "&#xD;\n"),
        ("\t\n", "\t\n"),
        ("\x00", "&#x0;"),
        ("\x01", "&#x1;"),
        ("a\x1fb", "a&#x1F;b"),
        ("\x0b\x0c", "&#xB;&#xC;"),
        ("\ufffe\uffff", "&#xFFFE;&#xFFFF;"),
        ("\x7f\u00e9\u2603\U0001f600", "\x7f\u00e9\u2603\U0001f600"),
    ],
)
def test_escape(text: str, escaped: str) -> None:
    assert escape(text) == escaped


def test_control_characters_in_document() -> None:
    body = document("R", [("Key", "a\x01b")], namespace=False)
    assert b"<Key>a&#x1;b</Key>" in body


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05.000Z"),
        (datetime(2024, 1, 2, 3, 4, 5, 999999, tzinfo=UTC), "2024-01-02T03:04:05.999Z"),
        (datetime(2024, 12, 31, 23, 59, 59, 1000, tzinfo=UTC), "2024-12-31T23:59:59.001Z"),
        # Aware datetimes in other zones are written in UTC.
        (
            datetime(2024, 1, 1, 1, 30, tzinfo=timezone(timedelta(hours=2))),
            "2023-12-31T23:30:00.000Z",
        ),
        (
            datetime(2024, 6, 1, 12, 0, 0, 5000, tzinfo=timezone(timedelta(hours=-5))),
            "2024-06-01T17:00:00.005Z",
        ),
    ],
)
def test_timestamp(value: datetime, text: str) -> None:
    assert timestamp(value) == text
    assert f"<T>{text}</T>".encode() in document("R", [("T", value)], namespace=False)


@settings(max_examples=100)
@given(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 1, 1)))
def test_timestamp_parses_back(value: datetime) -> None:
    text = timestamp(value)
    assert text.endswith("Z")
    parsed = datetime.fromisoformat(text.removesuffix("Z") + "+00:00")
    assert parsed == value.replace(microsecond=value.microsecond // 1000 * 1000, tzinfo=UTC)


# Any XML 1.0 character except surrogates and the C0 controls, plus the whitespace
# controls XML does allow (tab, LF and CR, the last sent as a character reference).
xml_text = st.text(
    alphabet=st.one_of(
        st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"),
        st.sampled_from("\t\n\r&<>\"'"),
    )
)


@settings(max_examples=200)
@given(text=xml_text, nested=xml_text)
def test_text_round_trips(text: str, nested: str) -> None:
    root = parse(document("R", [("A", text), ("B", [("C", nested)])]))
    assert (root.findtext(f"{NS}A") or "") == text
    assert (root.findtext(f"{NS}B/{NS}C") or "") == nested
