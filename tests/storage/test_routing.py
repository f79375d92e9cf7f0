"""Bucket routes: configuration, validation, and the RoutingBackend's bucket semantics."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from s3proxy import config as config_mod
from s3proxy.config import ConfigError
from s3proxy.plugins import make_plugin_manager
from s3proxy.storage.backend import BucketAlreadyExists, NoSuchBucket, ObjectInfo
from s3proxy.storage.routing import BucketConfigured, RoutingBackend, build_backend
from s3proxy.testing.backend_contract import make_body, read_key


def load(toml: str, tmp_path, env: dict[str, str] | None = None) -> config_mod.Config:  # type: ignore[no-untyped-def]
    path = tmp_path / "c.toml"
    path.write_text(toml)
    return config_mod.load(str(path), env or {})


@pytest.fixture
def plugins():  # type: ignore[no-untyped-def]
    return make_plugin_manager()


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[buckets.xx1]\nbackend = "nope"\n', "buckets.xx1.backend: unknown backend 'nope'"),
        ("[buckets.xx1]\npath = '/tmp'\n", "buckets.xx1.backend: a route names its backend"),
        ('[buckets.Bad_Name]\nbackend = "memory"\n', "buckets.Bad_Name: not a valid S3 bucket"),
        ('[buckets.xx1]\nbackend = "memory"\nprefix = "p"\n', "backend memory takes no settings"),
        (
            '[buckets.xx1]\nbackend = "local"\nbogus = 1\n',
            "buckets.xx1: Object contains unknown field",
        ),
    ],
)
def test_invalid_routes(plugins, tmp_path, toml: str, message: str) -> None:  # type: ignore[no-untyped-def]
    cfg = load(toml, tmp_path)
    with pytest.raises(ConfigError) as exc:
        plugins.validate(cfg)
    assert message in str(exc.value)


def test_routes_from_the_environment(plugins, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = config_mod.load(None, {"S3PROXY_BUCKETS__ARCHIVE__BACKEND": "memory"})
    assert cfg.buckets == {"archive": {"backend": "memory"}}
    plugins.validate(cfg)


def test_no_routes_means_no_wrapper(plugins, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = load('backend = "memory"\n', tmp_path)
    assert not isinstance(build_backend(plugins, cfg), RoutingBackend)


@pytest.fixture
async def router(plugins, tmp_path) -> AsyncIterator[RoutingBackend]:  # type: ignore[no-untyped-def]
    toml = (
        'backend = "memory"\n'
        f"[backends.local]\npath = {str(tmp_path / 'default')!r}\n"
        f'[buckets.archive]\nbackend = "local"\npath = {str(tmp_path / "archive")!r}\n'
        '[buckets.scratch]\nbackend = "memory"\n'
    )
    backend = build_backend(plugins, load(toml, tmp_path))
    assert isinstance(backend, RoutingBackend)
    await backend.start()
    yield backend
    await backend.close()


async def test_routed_buckets_exist_and_stay(router: RoutingBackend) -> None:
    await router.create_bucket("mine")
    assert [b.name for b in await router.list_buckets()] == ["archive", "mine", "scratch"]
    with pytest.raises(BucketAlreadyExists):
        await router.create_bucket("archive")
    with pytest.raises(BucketConfigured):
        await router.delete_bucket("scratch")
    await router.delete_bucket("mine")
    with pytest.raises(NoSuchBucket):
        await router.head_bucket("mine")
    assert (await router.head_bucket("archive")).name == "archive"


async def test_objects_go_to_the_routed_backend(router: RoutingBackend, tmp_path) -> None:  # type: ignore[no-untyped-def]
    await router.put("archive", "a/b", make_body(b"kept on disk"))
    assert await read_key(router, "archive", "a/b") == b"kept on disk"
    assert any((tmp_path / "archive").rglob("b!o"))
    assert not (tmp_path / "default").exists() or not any((tmp_path / "default").rglob("b!o"))
    entries = [e.key async for e in router.list("archive") if isinstance(e, ObjectInfo)]
    assert entries == ["a/b"]
    await router.delete("archive", "a/b")
    assert [e async for e in router.list("archive")] == []


async def test_readiness_per_backend(router: RoutingBackend) -> None:
    assert await router.readiness() == {
        "default (memory)": "ok",
        "bucket archive (local)": "ok",
        "bucket scratch (memory)": "ok",
    }
    await router.check_ready()
