"""Azurite for the azure plugin's tests: one per session, on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from s3proxy.testing import emulators


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[emulators.Emulator]:
    with emulators.running("azure", tmp_path_factory.mktemp("azurite")) as emulator:
        yield emulator
