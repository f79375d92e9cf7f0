"""A plugin with a hook name that matches no hookspec."""

from s3proxy.hookspecs import hookimpl


@hookimpl
def register_backend(register):  # type: ignore[no-untyped-def]
    pass
