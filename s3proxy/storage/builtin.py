"""The embedded default backends, registered through the same hook as any plugin.

- ``local``: a directory on disk (``./data`` unless configured). The default, so that
  ``s3proxy serve`` works on a fresh machine with no cloud.
- ``memory``: process memory; for tests and throwaway use (not shared across workers).
"""

from __future__ import annotations

from pathlib import Path

import msgspec
from obstore.store import LocalStore, MemoryStore

from s3proxy.hookspecs import RegisterBackend, hookimpl
from s3proxy.storage.objectstore import ObstoreBackend


class LocalSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: Directory holding one folder per bucket; created if missing.
    path: str = "./data"


def make_local(settings: LocalSettings) -> ObstoreBackend:
    root = Path(settings.path).expanduser().resolve()

    def store() -> LocalStore:
        root.mkdir(parents=True, exist_ok=True)
        return LocalStore(root, automatic_cleanup=True)

    # A directory tree needs the filesystem key layout and lists unsorted.
    return ObstoreBackend("local", store, filesystem=True, sorted_listing=False)


def make_memory(settings: None) -> ObstoreBackend:
    # Escaped keys break the store's own ordering, so sort listings here too.
    return ObstoreBackend("memory", MemoryStore, sorted_listing=False)


@hookimpl(trylast=True)
def register_backends(register: RegisterBackend) -> None:
    register("local", make_local, config=LocalSettings, description="files in a local directory")
    register("memory", make_memory, description="process memory (lost on exit)")
