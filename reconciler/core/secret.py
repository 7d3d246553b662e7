"""A secret value that never shows itself."""

from __future__ import annotations

SENSITIVE = "(sensitive)"  # what every output shows in place of a secret value


class Secret:
    """Wraps a plaintext secret. ``str``/``repr``/format are redacted; only ``reveal()`` gives it.

    The value came from an environment variable named in a manifest; the variable name is kept
    so errors can say which one is at fault without showing the value.
    """

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str = "") -> None:
        self._value = value
        self.source = source

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret(source={self.source!r}, value='{SENSITIVE}')"

    def __str__(self) -> str:
        return SENSITIVE

    def __format__(self, spec: str) -> str:
        return SENSITIVE

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("Secret values cannot be pickled")
