"""The gcp backend against the fake GCS server: the backend contract in both layouts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from s3proxy_gcp.plugin import GcpSettings, make_gcp

from s3proxy.storage.backend import StorageBackend
from s3proxy.storage.native import NativeObstoreBackend
from s3proxy.testing import emulators
from s3proxy.testing.cloud_contract import CloudBackendContract

# Small, so that the contract exercises both buffered and streamed writes.
MiB = 1024 * 1024


def backend_for(fake_gcs: emulators.Emulator, bucket: str, **extra: Any) -> NativeObstoreBackend:
    return make_gcp(GcpSettings(**{**emulators.bucket_settings(fake_gcs, bucket), **extra}))


@pytest.fixture(scope="module")
def gcs_bucket(fake_gcs: emulators.Emulator) -> str:
    name = emulators.new_name("gcs")
    emulators.create_bucket(fake_gcs, name)
    return name


class TestGcpFolders(CloudBackendContract):
    @pytest.fixture
    async def backend(
        self, fake_gcs: emulators.Emulator, gcs_bucket: str
    ) -> AsyncIterator[StorageBackend]:
        backend = backend_for(
            fake_gcs, gcs_bucket, layout="folders", prefix="folders", buffer_limit=MiB
        )
        await backend.start()
        yield backend
        await backend.close()


class TestGcpSingle(CloudBackendContract):
    @pytest.fixture
    async def backend(self, fake_gcs: emulators.Emulator) -> AsyncIterator[StorageBackend]:
        name = emulators.new_name("gcs")
        emulators.create_bucket(fake_gcs, name)
        backend = backend_for(fake_gcs, name, prefix="tenant/a", buffer_limit=MiB)
        await backend.start()
        yield backend
        await backend.close()
