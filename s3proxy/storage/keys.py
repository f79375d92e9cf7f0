"""S3 key <-> backend path encoding.

S3 keys are any UTF-8 string up to 1024 bytes: ``a//b``, ``dir/``, ``../x``, control
characters and ``%2F`` are all legal. obstore paths are not: they reject empty segments,
``.``/``..`` segments, control characters, and drop leading/trailing ``/``. A filesystem
adds two more limits: a name cannot be both a file and a directory (S3 has both ``a`` and
``a/b``), and a name is at most 255 bytes.

The encoding keeps ``/`` as the path delimiter (so prefix listing maps onto backend
directories) and leaves every *clean* segment untouched, so ordinary keys look the same
in the backend as in S3. Anything else is escaped per segment as ``%%`` followed by the
percent-encoded UTF-8 of the segment. ``quote()`` never emits ``!`` or ``>``, which gives
two unambiguous markers:

- ``%%!!...`` names are reserved for the proxy (bucket markers, multipart staging) and are
  never produced for a client key, so they cannot be addressed or listed. (Not just
  ``%%!``: the filesystem layout names the file of an empty last segment, as in ``dir/``,
  ``%%`` + ``!o``.)
- ``%%>...`` (filesystem layout only) is a piece of an over-long segment that continues
  in the next path piece.

In the filesystem layout every object file gets the suffix ``!o``, which no directory
name can end with, so ``a`` (file ``a!o``) and ``a/b`` (directory ``a``) coexist, and no
file name ends in ``#<digits>`` (LocalStore hides those as in-progress uploads).
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote, unquote

ESC = "%%"
RESERVED = "%%!!"
CONTINUED = "%%>"
LEAF_SUFFIX = "!o"
# Room below the usual 255-byte NAME_MAX for the markers and the leaf suffix.
MAX_NAME_BYTES = 200
MAX_KEY_BYTES = 1024


def _is_control(ch: str) -> bool:
    return unicodedata.category(ch) == "Cc"


def _is_clean(segment: str, filesystem: bool) -> bool:
    if segment in ("", ".", "..") or segment.startswith(ESC):
        return False
    if any(_is_control(ch) for ch in segment):
        return False
    too_long = len(segment.encode()) > MAX_NAME_BYTES
    return not (filesystem and (segment.endswith(LEAF_SUFFIX) or too_long))


def _encode_segment(segment: str, filesystem: bool) -> list[str]:
    if _is_clean(segment, filesystem):
        return [segment]
    escaped = ESC + quote(segment, safe="")
    if not filesystem or len(escaped) <= MAX_NAME_BYTES:
        return [escaped]
    # Split the (pure ASCII) escaped form into pieces; all but the last are marked.
    body = escaped[len(ESC) :]
    step = MAX_NAME_BYTES - len(CONTINUED)
    pieces = [body[i : i + step] for i in range(0, len(body), step)]
    return [CONTINUED + p for p in pieces[:-1]] + [ESC + pieces[-1]]


def encode_dir(segments: list[str], filesystem: bool) -> str:
    """Encode directory segments (no leaf suffix) into a backend path prefix."""
    out: list[str] = []
    for seg in segments:
        out.extend(_encode_segment(seg, filesystem))
    return "/".join(out)


def encode_key(key: str, filesystem: bool) -> str:
    """Encode an S3 key as a backend path (relative to its bucket)."""
    segments = key.split("/")
    path = encode_dir(segments, filesystem)
    return path + LEAF_SUFFIX if filesystem else path


def decode_path(path: str, filesystem: bool) -> str | None:
    """Decode a backend path back into the S3 key; None for reserved (internal) paths."""
    if filesystem:
        if not path.endswith(LEAF_SUFFIX):
            return None
        path = path[: -len(LEAF_SUFFIX)]
    segments: list[str] = []
    pending = ""
    for piece in path.split("/"):
        if piece.startswith(RESERVED):
            return None
        if piece.startswith(CONTINUED):
            pending += piece[len(CONTINUED) :]
            continue
        if piece.startswith(ESC):
            segments.append(unquote(pending + piece[len(ESC) :], errors="strict"))
        elif pending:
            return None  # a continuation must end in an escaped piece
        else:
            segments.append(piece)
        pending = ""
    if pending:
        return None
    return "/".join(segments)


def dir_prefix_for(prefix: str, filesystem: bool) -> str:
    """The backend directory to list for an S3 listing prefix.

    S3 prefixes are string prefixes, backend listings are per directory: list the
    deepest directory that the prefix fully names, then filter keys by the prefix.
    """
    head, sep, _ = prefix.rpartition("/")
    return encode_dir(head.split("/"), filesystem) if sep else ""


def reserved_name(name: str) -> str:
    """A backend path piece that no client key can produce."""
    return RESERVED + name
