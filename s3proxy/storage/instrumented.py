"""A StorageBackend wrapper that times every backend call, counts failures and opens a
child span per call. Wraps any backend, built once at start."""

from __future__ import annotations

import contextlib
import functools
import inspect
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from opentelemetry import trace

from s3proxy.observability import backend_duration, backend_errors, tracing_active
from s3proxy.storage.backend import NoSuchBucket, NoSuchKey, PreconditionFailed

_tracer = trace.get_tracer("s3proxy.storage")
# Without a tracer provider, no span at all (entering a no-op span still costs).
_NO_SPAN = contextlib.nullcontext()
# Answers, not failures: a missing key is S3 semantics, not a backend problem.
_EXPECTED = (NoSuchKey, NoSuchBucket, PreconditionFailed)
# Worker start and stop are not storage calls: no spans or timings for them.
_LIFECYCLE = frozenset({"start", "close"})


class InstrumentedBackend:
    """Delegates to ``inner``; async methods and async generators are measured."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._name: str = inner.name
        self._labels = {"backend": inner.name}
        self._cache: dict[str, Any] = {}

    @property
    def inner(self) -> Any:
        return self._inner

    def __getattr__(self, name: str) -> Any:
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        attr = getattr(self._inner, name)
        if name.startswith("_") or name in _LIFECYCLE or not callable(attr):
            return attr
        if inspect.isasyncgenfunction(attr):
            wrapped: Any = self._wrap_stream(name, attr)
        elif inspect.iscoroutinefunction(attr):
            wrapped = self._wrap_call(name, attr)
        else:
            return attr
        self._cache[name] = wrapped
        return wrapped

    def _record(self, operation: str, started: float, error: BaseException | None) -> None:
        backend_duration.record(time.perf_counter() - started, self._name, operation)
        if error is not None and not isinstance(error, _EXPECTED):
            labels = {**self._labels, "operation": operation, "error": type(error).__name__}
            backend_errors.add(1, labels)

    def _wrap_call(self, operation: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        async def call(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            span: contextlib.AbstractContextManager[Any] = _NO_SPAN
            if tracing_active():
                span = _tracer.start_as_current_span(
                    f"backend.{operation}", kind=trace.SpanKind.CLIENT, attributes=self._labels
                )
            with span:
                try:
                    result = await fn(*args, **kwargs)
                except Exception as exc:
                    self._record(operation, started, exc)
                    raise
            self._record(operation, started, None)
            return result

        return call

    def _wrap_stream(self, operation: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        async def stream(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            started = time.perf_counter()
            error: BaseException | None = None
            try:
                async for item in fn(*args, **kwargs):
                    yield item
            except Exception as exc:  # not GeneratorExit: a consumer stopping early is fine
                error = exc
                raise
            finally:
                self._record(operation, started, error)

        return stream
