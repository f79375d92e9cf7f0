"""A plugin that tries to take the built-in backend name "memory"."""

from __future__ import annotations

from s3proxy.hookspecs import RegisterBackend, hookimpl
from s3proxy.storage.builtin import make_memory


@hookimpl
def register_backends(register: RegisterBackend) -> None:
    register("memory", make_memory)
