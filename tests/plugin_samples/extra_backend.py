"""A third-party style plugin: a backend with its own settings Struct."""

from __future__ import annotations

import msgspec
from obstore.store import MemoryStore

from s3proxy.hookspecs import RegisterBackend, hookimpl
from s3proxy.storage.objectstore import ObstoreBackend


class ExtraSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    label: str = "extra"
    access_secret: str = ""


def make(settings: ExtraSettings) -> ObstoreBackend:
    return ObstoreBackend(settings.label, MemoryStore, sorted_listing=False)


@hookimpl
def register_backends(register: RegisterBackend) -> None:
    register("extra", make, config=ExtraSettings, description="memory, from a test plugin")
