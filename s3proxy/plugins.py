"""Plugin discovery: entry points of group ``s3proxy`` plus the built-in plugins."""

from __future__ import annotations

import functools
import importlib
import importlib.metadata as md
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pluggy

from s3proxy import hookspecs
from s3proxy.config import Config, ConfigError, convert
from s3proxy.storage import routing
from s3proxy.storage.backend import StorageBackend

# Built-in plugins: loaded like third-party ones, registered last so that an installed
# plugin can be listed first. Name -> module.
BUILTIN_PLUGINS = {"builtin": "s3proxy.storage.builtin", "builtin-auth": "s3proxy.auth"}


class PluginError(Exception):
    """A plugin could not be loaded or registered something invalid."""


@dataclass(slots=True)
class BackendSpec:
    name: str
    factory: Callable[[Any], StorageBackend]
    config: type[msgspec.Struct] | None
    description: str
    plugin: str


@dataclass(slots=True)
class PluginInfo:
    name: str
    distribution: str
    version: str
    backends: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Plugins:
    """The loaded plugin manager and what the plugins registered."""

    manager: pluggy.PluginManager
    plugins: list[PluginInfo]
    backends: dict[str, BackendSpec]

    def build_backend(self, name: str, cfg: Config) -> StorageBackend:
        """Validate ``[backends.<name>]`` against the plugin's Struct and build it."""
        spec = self.backends.get(name)
        if spec is None:
            known = ", ".join(sorted(self.backends)) or "none"
            raise ConfigError(f"invalid config backend: unknown backend {name!r} (known: {known})")
        raw = cfg.backends.get(name, {})
        if spec.config is None:
            if raw:
                raise ConfigError(f"invalid config backends.{name}: this backend takes no settings")
            return spec.factory(None)
        settings = convert(raw, spec.config, f"backends.{name}")
        return spec.factory(settings)

    def _call(self, hook: str, plugin: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except (ConfigError, PluginError):
            raise
        except Exception as exc:
            raise PluginError(
                f"plugin {plugin!r} failed in {hook}: {type(exc).__name__}: {exc}"
            ) from None

    def wrap_backend(self, backend: Any, cfg: Config) -> Any:
        """Chain the ``wrap_backend`` layers: tryfirst ones sit closest to the storage."""
        for impl in reversed(self.manager.hook.wrap_backend.get_hookimpls()):
            wrapped = self._call(
                "wrap_backend",
                impl.plugin_name,
                functools.partial(impl.function, backend=backend, config=cfg),
            )
            if wrapped is not None:
                backend = wrapped
        return backend

    def event_sinks(self, cfg: Config) -> tuple[Any, ...]:
        """The sinks the ``make_event_sink`` implementations return."""
        sinks = []
        for impl in self.manager.hook.make_event_sink.get_hookimpls():
            sink = self._call(
                "make_event_sink", impl.plugin_name, functools.partial(impl.function, config=cfg)
            )
            if sink is not None:
                sinks.append(sink)
        return tuple(sinks)

    def validate(self, cfg: Config) -> None:
        """Check every configured backend section, the default backend and the routes."""
        for name in cfg.backends:
            if name not in self.backends:
                raise ConfigError(f"invalid config backends.{name}: no plugin provides it")
        self.build_backend(cfg.backend, cfg)
        routing.build_routes(self, cfg)


def _entry_points() -> list[md.EntryPoint]:
    return sorted(md.entry_points(group=hookspecs.PROJECT), key=lambda ep: ep.name)


def make_plugin_manager(disabled: Iterable[str] = (), extra: Iterable[str] = ()) -> Plugins:
    """Load entry-point plugins, ``extra`` plugin modules, then the built-ins.

    ``disabled`` names plugins (entry point or module names) not to load. Any failure
    becomes one PluginError that names the plugin.
    """
    off = {d.strip() for d in disabled if d.strip()}
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    infos: list[PluginInfo] = []

    def add(name: str, load: Callable[[], object], dist: str, version: str) -> None:
        if name in off:
            return
        try:
            plugin = load()
            pm.register(plugin, name=name)
        except Exception as exc:
            raise PluginError(
                f"plugin {name!r} ({dist} {version}) failed to load: {type(exc).__name__}: {exc}"
            ) from None
        infos.append(PluginInfo(name=name, distribution=dist, version=version))

    for ep in _entry_points():
        dist = ep.dist.name if ep.dist else "?"
        version = ep.dist.version if ep.dist else "?"
        add(ep.name, ep.load, dist, version)
    for module in extra:
        add(module, functools.partial(importlib.import_module, module), module, "-")
    core_version = md.version("s3proxy")
    for name, module in BUILTIN_PLUGINS.items():
        add(name, functools.partial(importlib.import_module, module), "s3proxy", core_version)

    try:
        pm.check_pending()  # a hookimpl whose name matches no hookspec (a typo)
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {pm.get_name(exc.plugin)!r}: {exc}") from None

    by_name = {i.name: i for i in infos}
    backends: dict[str, BackendSpec] = {}
    # get_hookimpls() is in reverse call order; register in load order instead.
    for impl in reversed(pm.hook.register_backends.get_hookimpls()):
        plugin_name = impl.plugin_name

        def register(
            name: str,
            factory: Callable[[Any], StorageBackend],
            config: type[msgspec.Struct] | None = None,
            description: str = "",
            _plugin: str = plugin_name,
        ) -> None:
            if name in backends:
                raise PluginError(
                    f"plugin {_plugin!r} and plugin {backends[name].plugin!r} "
                    f"both register backend {name!r}; disable one (S3PROXY_DISABLE_PLUGINS)"
                )
            backends[name] = BackendSpec(name, factory, config, description, _plugin)
            by_name[_plugin].backends.append(name)

        try:
            impl.function(register=register)
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(
                f"plugin {plugin_name!r} failed in register_backends: {type(exc).__name__}: {exc}"
            ) from None
    return Plugins(manager=pm, plugins=infos, backends=backends)
