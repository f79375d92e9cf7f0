"""Enables the transform layer in a test proxy from ``TRANSFORM_TEST_SETTINGS`` (JSON).

For cores whose Config has no ``plugins`` section yet (where the layer's settings
belong: ``[plugins.transform]`` / ``S3PROXY_PLUGINS__TRANSFORM__*``). Loaded with
``S3PROXY_PLUGINS=transform_env_plugin``; see ``transform_proxy.transform_env``.
"""

from __future__ import annotations

import json
import os

from s3proxy_transform.plugin import build

from s3proxy.config import Config
from s3proxy.hookspecs import hookimpl
from s3proxy.storage.backend import StorageBackend


@hookimpl(tryfirst=True)
def wrap_backend(backend: StorageBackend, config: Config) -> StorageBackend | None:
    raw = os.environ.get("TRANSFORM_TEST_SETTINGS")
    return build(backend, json.loads(raw)) if raw else None
