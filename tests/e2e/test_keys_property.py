"""Any S3 key round-trips through the proxy on the local backend (hypothesis)."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ProxyServer, s3_client, start_proxy, stop_proxy

# Keys S3 accepts: any UTF-8 text up to 1024 bytes (no NUL: S3 rejects it in XML).
KEY_ALPHABET = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
SEGMENT = st.one_of(
    st.sampled_from(["", ".", "..", "%", "%%", "%%!x", "!o", "a#1", "%2F", " "]),
    st.text(KEY_ALPHABET, min_size=1, max_size=40),
)
KEYS = (
    st.lists(SEGMENT, min_size=1, max_size=6)
    .map("/".join)
    .filter(lambda k: 0 < len(k.encode()) <= 1024)
)


@pytest.fixture(scope="module")
def local_proxy(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    server: ProxyServer = start_proxy(tmp_path_factory.mktemp("keys"), "local")
    yield server
    stop_proxy(server)


def test_any_key_round_trips(local_proxy: ProxyServer) -> None:
    s3 = s3_client(local_proxy.endpoint)
    bucket = f"keys-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(key=KEYS)
    def round_trip(key: str) -> None:
        body = key.encode()
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        try:
            assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
            # boto3 asks for encoding-type=url itself and decodes the keys.
            listed = s3.list_objects_v2(Bucket=bucket)
            assert [o["Key"] for o in listed.get("Contents", [])] == [key]
            prefix = key[: len(key) // 2]
            listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
            assert [o["Key"] for o in listed.get("Contents", [])] == [key]
        finally:
            s3.delete_object(Bucket=bucket, Key=key)

    round_trip()
