"""The azure backend against Azurite: the backend contract in both layouts, Azure quirks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from s3proxy_azure.plugin import AzureSettings, make_azure

from s3proxy.storage.backend import StorageBackend
from s3proxy.storage.native import NativeObstoreBackend
from s3proxy.testing import emulators
from s3proxy.testing.cloud_contract import CloudBackendContract

# Small, so that the contract exercises both buffered and streamed writes.
MiB = 1024 * 1024


def backend_for(azurite: emulators.Emulator, container: str, **extra: Any) -> NativeObstoreBackend:
    return make_azure(AzureSettings(**{**emulators.bucket_settings(azurite, container), **extra}))


@pytest.fixture(scope="module")
def container(azurite: emulators.Emulator) -> str:
    name = emulators.new_name("az")
    emulators.create_bucket(azurite, name)
    return name


class TestAzureFolders(CloudBackendContract):
    @pytest.fixture
    async def backend(
        self, azurite: emulators.Emulator, container: str
    ) -> AsyncIterator[StorageBackend]:
        backend = backend_for(
            azurite, container, layout="folders", prefix="folders", buffer_limit=MiB
        )
        await backend.start()
        yield backend
        await backend.close()


class TestAzureSingle(CloudBackendContract):
    @pytest.fixture
    async def backend(self, azurite: emulators.Emulator) -> AsyncIterator[StorageBackend]:
        name = emulators.new_name("az")
        emulators.create_bucket(azurite, name)
        backend = backend_for(azurite, name, prefix="tenant/a", buffer_limit=MiB)
        await backend.start()
        yield backend
        await backend.close()
