"""A package's names imported on first use (PEP 562): importing the package costs nothing
until one of them is asked for, so a command imports only the modules it uses."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def exports(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``: ``homes`` maps each name to the submodule
    that defines it. A name once found is kept in the package, so it is looked up only once.

    In the package, beside the names imported under ``TYPE_CHECKING`` for type checkers::

        __getattr__ = exports(__name__, {"Applier": "runner", ...})
    """
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{home}"), name)
        namespace[name] = value
        return value

    return __getattr__
