"""Key providers: where the layer gets data keys (envelope encryption).

Every object gets its own random 256-bit data key. The key provider wraps it with a
master key that never leaves the provider, and the wrapped form is stored with the
object (``envelope.Envelope.key``); reads ask the provider to unwrap it. This is the
shape of a KMS API (GenerateDataKey / Decrypt), so a KMS, Vault transit or HSM backed
provider drops in:

- the built-in ``StaticKeyProvider`` holds master keys from the configuration (``key``
  or ``key_file``, plus ``previous_keys`` still accepted for reading after a rotation);
- another plugin ships a provider by exposing a factory in the entry point group
  ``s3proxy_transform.key_providers``; users select it with ``key_provider = "<name>"``
  and give it settings in ``key_provider_options``. The factory is called once per
  worker with the validated ``TransformSettings`` and returns a ``KeyProvider``.
  (``key_provider = "package.module:factory"`` also works, without an entry point.)
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import importlib.metadata as md
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from s3proxy.config import ConfigError
from s3proxy_transform.errors import KeyUnavailable

if TYPE_CHECKING:
    from s3proxy_transform.settings import TransformSettings

ENTRY_POINT_GROUP = "s3proxy_transform.key_providers"
DATA_KEY_BYTES = 32
_NONCE = 12
_WRAP_AAD = b"s3proxy-transform data key v1|"


@dataclass(frozen=True, slots=True)
class DataKey:
    """A fresh data key: ``plaintext`` encrypts one object, ``wrapped`` is stored."""

    plaintext: bytes = field(repr=False)
    key_id: str
    wrapped: bytes


@runtime_checkable
class KeyProvider(Protocol):
    """Generates and unwraps per-object data keys. Both may do I/O (a KMS call).

    Raise ``s3proxy_transform.errors.KeyUnavailable`` when a key cannot be produced or
    unwrapped (unknown key id, wrong master key, KMS denied); the client then gets an
    S3 error and the object stays untouched. Never log key material.
    """

    async def new_data_key(self) -> DataKey:
        """A new random 32-byte data key and its wrapped form (called once per write)."""
        ...

    async def unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        """The 32-byte data key that ``new_data_key`` wrapped as ``wrapped``."""
        ...


def key_id_of(master: bytes) -> str:
    """A public id for a master key: an HMAC keyed by the key, which reveals nothing."""
    return (
        "static:" + hmac.new(master, b"s3proxy-transform key id", hashlib.sha256).hexdigest()[:16]
    )


class StaticKeyProvider:
    """Master keys from the configuration; the first one wraps new data keys."""

    def __init__(self, masters: Sequence[bytes]) -> None:
        if not masters:
            raise ValueError("at least one master key is needed")
        if any(len(m) != DATA_KEY_BYTES for m in masters):
            raise ValueError("master keys must be 32 bytes")
        self._masters = {key_id_of(m): AESGCM(m) for m in masters}
        self._current = key_id_of(masters[0])

    def __repr__(self) -> str:
        return f"StaticKeyProvider(key_ids={list(self._masters)!r})"

    @property
    def current_key_id(self) -> str:
        return self._current

    async def new_data_key(self) -> DataKey:
        plaintext = os.urandom(DATA_KEY_BYTES)
        nonce = os.urandom(_NONCE)
        aad = _WRAP_AAD + self._current.encode()
        wrapped = nonce + self._masters[self._current].encrypt(nonce, plaintext, aad)
        return DataKey(plaintext=plaintext, key_id=self._current, wrapped=wrapped)

    async def unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        master = self._masters.get(key_id)
        if master is None or len(wrapped) <= _NONCE:
            raise KeyUnavailable()
        try:
            key = master.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], _WRAP_AAD + key_id.encode())
        except InvalidTag:
            raise KeyUnavailable() from None
        if len(key) != DATA_KEY_BYTES:
            raise KeyUnavailable()
        return key


ProviderFactory = Callable[["TransformSettings"], KeyProvider]


def _load_factory(name: str) -> ProviderFactory:
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            factory: ProviderFactory = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(
                f"invalid config plugins.transform.key_provider: cannot load {name!r}: {exc}"
            ) from None
        return factory
    found = [ep for ep in md.entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not found:
        known = sorted({"static", *(ep.name for ep in md.entry_points(group=ENTRY_POINT_GROUP))})
        raise ConfigError(
            f"invalid config plugins.transform.key_provider: unknown key provider {name!r} "
            f"(known: {', '.join(known)})"
        )
    loaded: ProviderFactory = found[0].load()
    return loaded


def make_provider(settings: TransformSettings) -> KeyProvider:
    """The configured key provider (``static`` unless a plugin's is selected)."""
    if settings.key_provider == "static":
        return StaticKeyProvider(settings.master_keys())
    provider = _load_factory(settings.key_provider)(settings)
    if not isinstance(provider, KeyProvider):
        raise ConfigError(
            "invalid config plugins.transform.key_provider: "
            f"{settings.key_provider!r} did not return a KeyProvider"
        )
    return provider
