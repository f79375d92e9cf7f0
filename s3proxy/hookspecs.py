"""The s3proxy extension contract: every pluggy hook the core calls.

Plugins are modules (or objects) with functions named after these specs and marked
with ``s3proxy.hookimpl``. Third-party plugins are found through the Python entry point
group ``s3proxy``; the core's own default behaviour is implemented as plugins through
the same hooks (see ``s3proxy.storage.builtin``).

pluggy hooks are synchronous: they are called once at start-up and return objects
(backends, async callables) that the core wires into the request path. No hook is
called per request.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

PROJECT = "s3proxy"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: ``register(name, factory, config=None, description="")`` as passed to
#: :func:`register_backends`. ``factory(settings)`` builds the backend from an instance
#: of ``config`` (a ``msgspec.Struct`` type validated from ``[backends.<name>]``), or
#: from ``None`` when the backend takes no settings.
RegisterBackend = Callable[..., None]


# -- start-up ------------------------------------------------------------------------


@hookspec
def register_backends(register: RegisterBackend) -> None:
    """Register the storage backends this plugin provides.

    Called once when the plugin manager is built, before the configuration is
    validated, so that each backend's settings section can be checked against the
    ``config`` Struct it registers.

    :param register: call ``register(name, factory, config=SettingsStruct,
        description="...")`` once per backend. ``name`` is what users select with
        ``--backend`` / ``S3PROXY_BACKEND``; it must be unique across all plugins.
        ``factory(settings)`` must not open network connections or files: the core
        calls the backend's ``start()`` in each worker process for that.
    """


__all__ = ["PROJECT", "RegisterBackend", "hookimpl", "hookspec", "register_backends"]
