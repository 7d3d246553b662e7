"""No cyclic garbage collection while a command builds many short-lived objects that are
not in cycles: the collector's passes over them find nothing and cost 5-8% (measured on a
no-op plan of 1,000 organizations and on its 2,000 provider reads, bench/RESULTS.md)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collection_paused(*, freeze: bool = False) -> Iterator[None]:
    """The collector off for the block (left alone when it is off already, e.g. inside
    another such block). ``freeze``: what was made meanwhile lives on (the plan's records),
    so no later pass scans it either."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        gc.enable()
