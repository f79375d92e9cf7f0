"""Put a store's listing, which is in *backend path* order, into S3 key order, streaming.

``keys.encode_key`` leaves clean keys as they are and escapes the rest segment by
segment (``%%`` + percent-encoding). Escaping moves a key: ``tab\\there`` lists among
the ``%`` names, ``a//b`` (``a/%%/b``) before ``a/-x``. Sorting a whole listing would
fix that but costs memory and latency proportional to the bucket, so instead:

A key is *risky* if it has an escaped segment or a character up to ``%`` (control
characters, space, ``!"#$%``). For a key N that is not risky, every key that sorts
before N in S3 order is listed before N by the store: up to where a key's first escape
starts, its path equals its key, and there the path has ``%`` while N has a greater
character. So risky entries wait in a heap and are released, in key order, just before
the first non-risky key that sorts after them; everything else streams through.

Only risky keys are held, and only until a larger plain key arrives. A listing made only
of risky keys (every name containing a space, say) would be held whole; past
``HOLD_LIMIT`` entries the held ones are released in order as they stand, and the
listing is exact only up to there (logged).
"""

from __future__ import annotations

import heapq
import logging
import re
from collections.abc import AsyncIterator
from typing import TypeVar

log = logging.getLogger("s3proxy.storage")

T = TypeVar("T")

HOLD_LIMIT = 10_000
_LOW_CHAR = re.compile(r"[\x00-\x25]")


def is_risky(path: str) -> bool:
    """Does the key stored at backend ``path`` (bucket root removed) list out of order?"""
    return path.startswith("%%") or "/%%" in path or bool(_LOW_CHAR.search(path))


async def s3_order(
    entries: AsyncIterator[tuple[str, str, T]], hold_limit: int = HOLD_LIMIT
) -> AsyncIterator[tuple[str, T]]:
    """``(key, path, item)`` in backend path order -> ``(key, item)`` in key order."""
    held: list[tuple[str, int, T]] = []
    seq = 0  # ties never compare items
    warned = False
    async for key, path, item in entries:
        if is_risky(path):
            heapq.heappush(held, (key, seq, item))
            seq += 1
            if len(held) > hold_limit:
                if not warned:
                    log.warning(
                        "listing has over %d unusual keys in a row: order approximate", hold_limit
                    )
                    warned = True
                k, _, it = heapq.heappop(held)
                yield k, it
            continue
        while held and held[0][0] < key:
            k, _, it = heapq.heappop(held)
            yield k, it
        yield key, item
    while held:
        k, _, it = heapq.heappop(held)
        yield k, it
