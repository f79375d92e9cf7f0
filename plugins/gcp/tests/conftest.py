"""The fake GCS server for the gcp plugin's tests: one per session, on a free port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from s3proxy.testing import emulators


@pytest.fixture(scope="session")
def fake_gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[emulators.Emulator]:
    with emulators.running("gcp", tmp_path_factory.mktemp("fake-gcs")) as emulator:
        yield emulator
