"""How much of each streamed upload obstore may hold, from one budget for the process.

obstore uploads a streamed body in parts of ``chunk_size`` bytes with up to
``max_concurrency`` of them in flight, and pulls the next chunk of the body only when a
part slot is free: one upload holds about ``chunk_size * max_concurrency`` bytes, plus
the chunk it has just pulled. An upload that starts while the budget has room gets two
8 MiB parts in flight (parallel parts keep a single large PUT fast); the others get one
5 MiB part at a time (S3's smallest). 32 concurrent uploads then hold about the budget
plus 6 MiB for each upload past it, rather than 16 MiB or more each.

The shape is chosen when an upload starts and kept to its end (obstore cannot change it
mid-upload). No upload ever waits for the budget: past it, uploads take the smallest
shape, so memory still grows with the number of uploads, just more slowly.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

MiB = 1024 * 1024
#: S3's (and GCS's) smallest part but the last.
MIN_PART = 5 * MiB
#: Footprint that uploads in progress may reserve before new ones get the smallest shape.
BUDGET = 64 * MiB


@dataclass(frozen=True, slots=True)
class Shape:
    """The ``chunk_size`` and ``max_concurrency`` of one obstore ``put_async``."""

    chunk_size: int
    max_concurrency: int

    @property
    def footprint(self) -> int:
        return self.chunk_size * self.max_concurrency


#: Largest first; the last is what an upload gets when the budget is spent.
SHAPES = (Shape(8 * MiB, 2), Shape(MIN_PART, 2), Shape(MIN_PART, 1))


class UploadBudget:
    """Hands each starting upload the largest shape the unreserved budget allows."""

    def __init__(self, budget: int = BUDGET, shapes: tuple[Shape, ...] = SHAPES) -> None:
        self.budget = budget
        self.shapes = shapes
        #: Footprint of the shapes of uploads in progress.
        self.reserved = 0
        self._lock = threading.Lock()

    def _pick(self) -> Shape:
        free = self.budget - self.reserved
        for shape in self.shapes:
            if shape.footprint <= free:
                return shape
        return self.shapes[-1]

    @contextmanager
    def lease(self) -> Iterator[Shape]:
        """The shape for an upload that runs while the context is open."""
        with self._lock:
            shape = self._pick()
            self.reserved += shape.footprint
        try:
            yield shape
        finally:
            with self._lock:
                self.reserved -= shape.footprint


#: Shared by every streamed upload in the process, whatever its backend.
UPLOADS = UploadBudget()

__all__ = ["BUDGET", "MIN_PART", "SHAPES", "UPLOADS", "Shape", "UploadBudget"]
