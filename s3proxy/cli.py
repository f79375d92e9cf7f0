"""The ``s3proxy`` command: serve, plugins, config."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from s3proxy import config as config_mod
from s3proxy.config import ConfigError
from s3proxy.plugins import PluginError, Plugins, make_plugin_manager
from s3proxy.storage import routing

EXIT_USAGE = 2


def _fail(message: str) -> int:
    print(f"s3proxy: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _apply_overrides(args: argparse.Namespace) -> None:
    """Turn command-line options into the environment the workers read.

    Granian workers build the app themselves (stores are not fork-safe), so every
    setting must be recoverable from the environment.
    """
    if args.config:
        os.environ[config_mod.ENV_CONFIG_FILE] = args.config
    plugins = config_mod.extra_plugins() + list(getattr(args, "plugin", None) or [])
    if plugins:
        os.environ[config_mod.ENV_PLUGINS] = ",".join(dict.fromkeys(plugins))
    for option, env in (
        ("backend", "S3PROXY_BACKEND"),
        ("host", "S3PROXY_SERVER__HOST"),
        ("port", "S3PROXY_SERVER__PORT"),
        ("workers", "S3PROXY_SERVER__WORKERS"),
    ):
        value = getattr(args, option, None)
        if value is not None:
            os.environ[env] = str(value)


def _load() -> tuple[config_mod.Config, Plugins]:
    cfg = config_mod.load()
    plugins = make_plugin_manager(cfg.disable_plugins, config_mod.extra_plugins())
    plugins.validate(cfg)
    # Build the auth chain, storage layers and event sinks once here (none of them opens
    # connections) so that an unsafe or invalid setup (no credentials on a public
    # address, a bad plugin setting) stops start-up with one clear line.
    hooks = plugins.manager.hook
    hooks.make_authenticator(config=cfg)
    hooks.make_authorizer(config=cfg)
    plugins.event_sinks(cfg)
    plugins.wrap_backend(routing.build_backend(plugins, cfg), cfg)
    return cfg, plugins


def cmd_serve(args: argparse.Namespace) -> int:
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings

    cfg, _ = _load()
    with tempfile.TemporaryDirectory(prefix="s3proxy-") as tmp:
        drain_file = Path(tmp) / "draining"
        os.environ[config_mod.ENV_DRAIN_FILE] = str(drain_file)
        server = _draining_server(cfg.server.drain_seconds, drain_file)(
            "s3proxy.app:create_app",
            factory=True,
            address=cfg.server.host,
            port=cfg.server.port,
            interface=Interfaces.ASGI,
            workers=cfg.server.workers,
            workers_kill_timeout=max(1, int(cfg.server.shutdown_grace)),
            backlog=LISTEN_BACKLOG,
            backpressure=_connection_limit(),
            http1_settings=HTTP1Settings(
                header_read_timeout=max(1, int(cfg.limits.header_timeout * 1000))
            ),
            log_access=False,
        )
        server.serve()
    return 0


#: Connections waiting to be accepted (the kernel caps it at net.core.somaxconn).
LISTEN_BACKLOG = 4096
# Descriptors kept free of client connections: files, backend connections, logs.
_FD_RESERVE = 1024


def _connection_limit() -> int:
    """Client connections one worker holds at once (Granian's ``backpressure``).

    Granian's default (the listen backlog, 1024) counts idle keep-alive connections, so
    1024 idle clients made the proxy stop accepting anyone. Requests are limited by
    ``limits.max_concurrent_requests`` instead; connections only by descriptors, whose
    soft limit is first raised to the hard one.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(soft // 2, soft - _FD_RESERVE)


def _draining_server(drain_seconds: float, drain_file: Path) -> Any:
    """Granian's server, with a drain phase between SIGTERM and closing the listener.

    On the first SIGTERM/SIGINT the workers see the marker file: readiness turns 503 and
    new S3 requests get 503 while load balancers catch up; after ``drain_seconds`` the
    listener closes and Granian lets in-flight requests finish (``shutdown_grace``).
    """
    from granian import Granian

    class DrainingServer(Granian):  # type: ignore[misc, valid-type]
        def signal_handler_interrupt(self, *args: Any, **kwargs: Any) -> None:
            if drain_seconds > 0 and not drain_file.exists():
                drain_file.touch()
                print(f"s3proxy: draining for {drain_seconds:g}s", file=sys.stderr, flush=True)
                stop = functools.partial(super().signal_handler_interrupt, *args, **kwargs)
                threading.Timer(drain_seconds, stop).start()
                return
            super().signal_handler_interrupt(*args, **kwargs)

    return DrainingServer


def cmd_plugins(args: argparse.Namespace) -> int:
    cfg = config_mod.load()
    plugins = make_plugin_manager(cfg.disable_plugins, config_mod.extra_plugins())
    if args.json:
        out = [
            {
                "name": p.name,
                "distribution": p.distribution,
                "version": p.version,
                "backends": p.backends,
            }
            for p in plugins.plugins
        ]
        print(json.dumps(out, indent=2))
        return 0
    for p in plugins.plugins:
        print(f"{p.name}  ({p.distribution} {p.version})")
        if not p.backends:
            print("    (no backends)")
        for name in p.backends:
            spec = plugins.backends[name]
            print(f"    backend {name}: {spec.description}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    cfg, plugins = _load()
    data = msgspec.to_builtins(cfg)
    # Show each backend in use with its defaults filled in, validated by its plugin.
    for name in {cfg.backend, *cfg.backends}:
        spec = plugins.backends[name]
        if spec.config is not None:
            settings = config_mod.convert(cfg.backends.get(name, {}), spec.config, name)
            data["backends"][name] = msgspec.to_builtins(settings)
    print(json.dumps(config_mod.redacted(data), indent=2, sort_keys=True))
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    import asyncio

    from s3proxy.storage.multipart import sweep_all

    cfg = config_mod.load()
    plugins = make_plugin_manager(cfg.disable_plugins, config_mod.extra_plugins())
    backend = plugins.build_backend(cfg.backend, cfg)
    max_age = cfg.multipart.expiry if args.older_than is None else args.older_than

    async def run() -> None:
        await backend.start()
        try:
            found = await sweep_all(backend, max_age)
        finally:
            await backend.close()
        print(f"removed {found.uploads} expired multipart uploads, {found.parts} staged parts")

    asyncio.run(run())
    # obstore's Rust runtime can abort (SIGABRT) while the interpreter tears down after
    # a run over many listing streams; the work is done and reported, so leave without
    # the teardown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s3proxy", description="S3-compatible proxy for cloud object storage."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="TOML config file (env: S3PROXY_CONFIG)")
    common.add_argument(
        "--plugin",
        action="append",
        metavar="MODULE",
        help="also load this plugin module (repeatable; env: S3PROXY_PLUGINS)",
    )

    serve = sub.add_parser("serve", parents=[common], help="run the proxy")
    serve.add_argument("--backend", help="default storage backend (env: S3PROXY_BACKEND)")
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="bind port (default 8080)")
    serve.add_argument("--workers", type=int, help="worker processes (default 1)")
    serve.set_defaults(func=cmd_serve)

    plugins = sub.add_parser("plugins", parents=[common], help="list installed plugins")
    plugins.add_argument("--json", action="store_true", help="machine-readable output")
    plugins.set_defaults(func=cmd_plugins)

    show = sub.add_parser("config", parents=[common], help="print the effective config")
    show.add_argument("--backend", help="default storage backend")
    show.set_defaults(func=cmd_config)

    gc = sub.add_parser(
        "gc", parents=[common], help="remove expired multipart uploads and their parts, once"
    )
    gc.add_argument("--backend", help="storage backend (env: S3PROXY_BACKEND)")
    gc.add_argument(
        "--older-than",
        type=float,
        metavar="SECONDS",
        help="age of the uploads to remove (default: multipart.expiry)",
    )
    gc.set_defaults(func=cmd_gc)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _apply_overrides(args)
        result: int = args.func(args)
        return result
    except (ConfigError, PluginError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
