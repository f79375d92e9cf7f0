"""moto's S3 server for the aws plugin's tests: one per session, on a free port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from s3proxy.testing import emulators


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[emulators.Emulator]:
    with emulators.running("aws", tmp_path_factory.mktemp("moto")) as emulator:
        yield emulator
