"""Importing a command's libraries without the garbage collector scanning them, as the CLI
imports its commands (``reconciler.cli``): importing SQLAlchemy, pydantic, the HTTP stack and
our modules makes some 400,000 objects that live as long as the process and next to no garbage.
Collected while they are made, and again at every later full collection, they cost a command
0.03 to 0.15 s of CPU (issue 16); made with the collector off and then frozen, nothing."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def frozen_imports() -> Iterator[None]:
    """Run the imports in the block with the collector off; freeze what they made."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if collecting:
            gc.enable()
