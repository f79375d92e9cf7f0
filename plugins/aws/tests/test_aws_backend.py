"""The aws backend against moto: the backend contract in both layouts, plus S3 quirks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from s3proxy_aws.plugin import AwsSettings, make_aws

from s3proxy.storage.backend import StorageBackend
from s3proxy.storage.native import NativeObstoreBackend
from s3proxy.testing import emulators
from s3proxy.testing.cloud_contract import CloudBackendContract

# Small, so that the contract exercises both buffered and streamed writes.
MiB = 1024 * 1024


def backend_for(moto: emulators.Emulator, bucket: str, **extra: Any) -> NativeObstoreBackend:
    return make_aws(AwsSettings(**{**emulators.bucket_settings(moto, bucket), **extra}))


@pytest.fixture(scope="module")
def cloud_bucket(moto: emulators.Emulator) -> str:
    name = emulators.new_name("aws")
    emulators.create_bucket(moto, name)
    return name


class TestAwsFolders(CloudBackendContract):
    @pytest.fixture
    async def backend(
        self, moto: emulators.Emulator, cloud_bucket: str
    ) -> AsyncIterator[StorageBackend]:
        backend = backend_for(
            moto, cloud_bucket, layout="folders", prefix="folders", buffer_limit=MiB
        )
        await backend.start()
        yield backend
        await backend.close()


class TestAwsSingle(CloudBackendContract):
    @pytest.fixture
    async def backend(self, moto: emulators.Emulator) -> AsyncIterator[StorageBackend]:
        name = emulators.new_name("aws")
        emulators.create_bucket(moto, name)
        backend = backend_for(moto, name, prefix="tenant/a", buffer_limit=MiB)
        await backend.start()
        yield backend
        await backend.close()
