"""The one XML encoder for S3 responses.

A document is a tree of ``(name, content)`` pairs where content is text, a number, a
bool, a nested list of pairs, or None (element omitted).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'

Content = str | int | bool | datetime | Sequence["Node"] | None
Node = tuple[str, Content]

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\r": "&#xD;"}
# Characters XML 1.0 cannot carry literally; S3 emits them as character references.
_SPECIAL = re.compile('[&<>"\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]')


def _escape_char(match: re.Match[str]) -> str:
    ch = match.group(0)
    return _ESCAPES.get(ch) or f"&#x{ord(ch):X};"


def escape(text: str) -> str:
    if _SPECIAL.search(text) is None:  # the common case, without building a new string
        return text
    return _SPECIAL.sub(_escape_char, text)


def timestamp(value: datetime) -> str:
    """ISO 8601 with milliseconds, as S3 writes dates in XML.

    Aware datetimes are converted to UTC (the ``Z``); naive ones are taken as UTC.
    """
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    # isoformat is C code (strftime is not), and truncates to milliseconds as S3 does.
    return value.isoformat(timespec="milliseconds") + "Z"


_TAGS: dict[str, str] = {}


def _tag(name: str) -> str:
    """The tag of an element name that may carry attributes (``Grantee xsi:type="..."``)."""
    tag = _TAGS.get(name)
    if tag is None:
        tag = _TAGS[name] = name.split(" ", 1)[0]
    return tag


def _render(out: list[str], name: str, content: Content) -> None:
    # Most frequent types first: a listing renders several elements per key.
    if isinstance(content, str):
        text = escape(content)
    elif content is None:
        return
    elif isinstance(content, datetime):
        text = timestamp(content)
    elif isinstance(content, bool):
        text = "true" if content else "false"
    elif isinstance(content, int):
        text = str(content)
    else:
        out.append(f"<{name}>")
        for child_name, child in content:
            _render(out, child_name, child)
        out.append(f"</{_tag(name)}>")
        return
    out.append(f"<{name}>{text}</{_tag(name)}>")


def document(name: str, children: Sequence[Node], *, namespace: bool = True) -> bytes:
    """Render a whole response document with declaration and (optionally) the S3 xmlns."""
    out = [DECLARATION, f'<{name} xmlns="{S3_NS}">' if namespace else f"<{name}>"]
    for child_name, child in children:
        _render(out, child_name, child)
    out.append(f"</{_tag(name)}>")
    return "".join(out).encode()


def text_document(name: str, text: str) -> bytes:
    """A document whose root element holds only text (e.g. GetBucketLocation)."""
    return f'{DECLARATION}<{name} xmlns="{S3_NS}">{escape(text)}</{name}>'.encode()
