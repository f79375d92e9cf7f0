"""S3 key <-> backend path encoding (s3proxy/storage/keys.py)."""

from __future__ import annotations

import re
import tempfile
import unicodedata
from collections.abc import Iterator

import obstore
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from obstore.store import LocalStore, MemoryStore

from s3proxy.storage import keys

LAYOUTS = [pytest.param(False, id="objectstore"), pytest.param(True, id="filesystem")]

# Segments S3 allows but a path-based store does not, or that collide with our markers.
AWKWARD = [
    "",
    ".",
    "..",
    "%",
    "%%",
    "%%!",
    "%%!bucket",
    "%%>",
    "%%>x",
    "%2F",
    "!o",
    "x!o",
    "#1",
    "x#12",
    "+",
    "?",
    "#",
    "\x00",
    "\x01\x1f",
    "\x7f",
    "\u0085",
    "é",
    "日本",
    "😀",
]

text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
long_segment = st.builds(
    lambda ch, n: ch * n,
    st.sampled_from(["a", "é", "\x01", "%", "😀", "!o"]),
    st.integers(90, 420),
)
segment = st.one_of(st.sampled_from(AWKWARD), text, long_segment)
segments = st.lists(segment, min_size=1, max_size=8)


def fits(key: str) -> bool:
    return len(key.encode()) <= keys.MAX_KEY_BYTES


s3_keys = st.one_of(segments.map("/".join), text).filter(fits)


@st.composite
def related_keys(draw: st.DrawFn) -> tuple[str, str]:
    """Two keys that often share leading segments (where file/dir clashes would hide)."""
    shared = draw(st.lists(segment, max_size=4))
    k1 = "/".join(shared + draw(st.lists(segment, min_size=1, max_size=3)))
    k2 = "/".join(shared + draw(st.lists(segment, min_size=1, max_size=3)))
    return k1, k2


def pieces(path: str) -> list[str]:
    return path.split("/")


@pytest.fixture(scope="module")
def local_store() -> Iterator[LocalStore]:
    with tempfile.TemporaryDirectory() as root:
        yield LocalStore(root)


# -- properties ----------------------------------------------------------------------


@pytest.mark.parametrize("filesystem", LAYOUTS)
@given(key=s3_keys)
@settings(max_examples=300)
def test_round_trip(filesystem: bool, key: str) -> None:
    assert keys.decode_path(keys.encode_key(key, filesystem), filesystem) == key


@pytest.mark.parametrize("filesystem", LAYOUTS)
@given(key=s3_keys)
@settings(max_examples=300)
def test_pieces_are_valid_store_paths(filesystem: bool, key: str) -> None:
    path = keys.encode_key(key, filesystem)
    for piece in pieces(path):
        assert piece not in ("", ".", "..")
        assert not any(unicodedata.category(ch) == "Cc" for ch in piece)
        assert not piece.startswith(keys.RESERVED)
        if filesystem:
            assert len(piece.encode()) <= 255
    if filesystem:
        # LocalStore treats files named like ``x#123`` as unfinished uploads and hides them.
        assert not re.search(r"#[0-9]+$", pieces(path)[-1])


@given(key=s3_keys)
@settings(max_examples=100)
def test_memory_store_accepts_and_lists_path(key: str) -> None:
    store = MemoryStore()
    path = "bucket/" + keys.encode_key(key, filesystem=False)
    obstore.put(store, path, b"data")
    assert bytes(obstore.get(store, path).bytes()) == b"data"
    listed = [m["path"] for m in obstore.list(store, "bucket").collect()]
    assert listed == [path]


@given(key=s3_keys)
@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_local_store_accepts_and_lists_path(local_store: LocalStore, key: str) -> None:
    path = "bucket/" + keys.encode_key(key, filesystem=True)
    obstore.put(local_store, path, b"data")
    try:
        assert bytes(obstore.get(local_store, path).bytes()) == b"data"
        listed = [m["path"] for m in obstore.list(local_store, "bucket").collect()]
        assert listed == [path]
    finally:
        obstore.delete(local_store, path)


@pytest.mark.parametrize("filesystem", LAYOUTS)
@given(pair=related_keys())
@settings(max_examples=300)
def test_injective(filesystem: bool, pair: tuple[str, str]) -> None:
    k1, k2 = pair
    if k1 != k2:
        assert keys.encode_key(k1, filesystem) != keys.encode_key(k2, filesystem)


@given(pair=related_keys())
@settings(max_examples=300)
def test_file_is_never_a_directory_of_another_key(pair: tuple[str, str]) -> None:
    file_path = keys.encode_key(pair[0], filesystem=True)
    other = pieces(keys.encode_key(pair[1], filesystem=True))
    directories = {"/".join(other[:i]) for i in range(1, len(other))}
    assert file_path not in directories


@pytest.mark.parametrize("filesystem", LAYOUTS)
@given(key=s3_keys, data=st.data())
@settings(max_examples=200)
def test_dir_prefix_covers_every_matching_key(
    filesystem: bool, key: str, data: st.DataObject
) -> None:
    prefix = key[: data.draw(st.integers(0, len(key)))]
    directory = keys.dir_prefix_for(prefix, filesystem)
    if directory:
        assert keys.encode_key(key, filesystem).startswith(directory + "/")


# -- examples ------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["photos/2024/a.jpg", "a", "%2F", "a b/c+d?e#f", "é/日本"])
def test_clean_keys_unchanged_in_object_store_layout(key: str) -> None:
    assert keys.encode_key(key, filesystem=False) == key
    assert keys.encode_key(key, filesystem=True) == key + keys.LEAF_SUFFIX


@pytest.mark.parametrize(
    ("key", "encoded"),
    [
        ("a//b", "a/%%/b"),
        ("dir/", "dir/%%"),
        ("/lead", "%%/lead"),
        ("../x", "%%../x"),
        ("a/./b", "a/%%./b"),
        ("%%2F", "%%%25%252F"),
        ("%%!bucket", "%%%25%25%21bucket"),
        ("tab\there", "%%tab%09here"),
    ],
)
def test_escaped_keys(key: str, encoded: str) -> None:
    assert keys.encode_key(key, filesystem=False) == encoded
    assert keys.decode_path(encoded, filesystem=False) == key


def test_filesystem_leaf_suffix_keeps_file_and_directory_apart() -> None:
    assert keys.encode_key("a", filesystem=True) == "a!o"
    assert keys.encode_key("a/b", filesystem=True) == "a/b!o"
    # A segment that already ends with the suffix is escaped, so it is never a file name.
    assert keys.encode_key("a!o/b", filesystem=True) == "%%a%21o/b!o"
    assert keys.encode_key("a!o", filesystem=False) == "a!o"


@pytest.mark.parametrize("char", ["a", "é", "\x01", "😀"])
def test_max_length_key_single_segment(char: str) -> None:
    key = char * (keys.MAX_KEY_BYTES // len(char.encode()))
    for filesystem in (False, True):
        path = keys.encode_key(key, filesystem)
        assert keys.decode_path(path, filesystem) == key
    fs_pieces = pieces(keys.encode_key(key, filesystem=True))
    assert len(fs_pieces) > 1
    assert all(len(p.encode()) <= 255 for p in fs_pieces)
    assert all(p.startswith(keys.CONTINUED) for p in fs_pieces[:-1])


@pytest.mark.parametrize(
    "path",
    [
        keys.reserved_name("bucket"),
        "x/" + keys.reserved_name("uploads") + "/part",
        keys.reserved_name("bucket") + keys.LEAF_SUFFIX,
    ],
)
@pytest.mark.parametrize("filesystem", LAYOUTS)
def test_reserved_paths_decode_to_none(path: str, filesystem: bool) -> None:
    assert keys.decode_path(path, filesystem) is None


@pytest.mark.parametrize(
    "path",
    [
        "a",  # no leaf suffix: a directory or a foreign file
        "%%>abc!o",  # continuation never finished
        "%%>abc/def!o",  # continuation followed by a clean piece
    ],
)
def test_malformed_filesystem_paths_decode_to_none(path: str) -> None:
    assert keys.decode_path(path, filesystem=True) is None


@pytest.mark.parametrize(
    ("prefix", "expected_dir"),
    [
        ("", ""),
        ("ph", ""),
        ("photos/", "photos"),
        ("photos/20", "photos"),
        ("a/b/c", "a/b"),
        ("a//", "a/%%"),
        ("/x", "%%"),
        ("../", "%%.."),
    ],
)
@pytest.mark.parametrize("filesystem", LAYOUTS)
def test_dir_prefix_for(prefix: str, expected_dir: str, filesystem: bool) -> None:
    assert keys.dir_prefix_for(prefix, filesystem) == expected_dir


def test_dir_prefix_for_escapes_like_encode_key() -> None:
    assert keys.dir_prefix_for("x!o/", filesystem=True) == "%%x%21o"
    assert keys.dir_prefix_for("x!o/", filesystem=False) == "x!o"
