"""One manifest document being read: where each value is, and the problems found in it.

Validation never stops at the first problem (Terraform style): each check reports through
``SourceDocument.error`` with the line of the value at fault and carries on with what it can.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.core.errors import Diagnostics
from reconciler.core.yamlsafe import Loc, YamlDocument


def dotted(path: Loc) -> str:
    """``("spec", "connections", 0, "owner")`` -> ``spec.connections[0].owner``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "the document"


@dataclass
class SourceDocument:
    file: str
    doc: YamlDocument
    diags: Diagnostics

    def line(self, path: Loc) -> int | None:
        return self.doc.line_of(path)

    def error(self, path: Loc, message: str) -> None:
        self.diags.add(self.file, self.line(path), message)

    def fields(
        self,
        path: Loc,
        value: Any,
        *,
        allowed: Sequence[str],
        required: Sequence[str] = (),
        what: str = "",
    ) -> dict[str, Any] | None:
        """Check that ``value`` is a mapping with only ``allowed`` and all ``required`` fields.

        Returns the mapping (unknown fields included, already reported) or None when it is not
        a mapping at all.
        """
        if not isinstance(value, dict):
            self.error(
                path,
                f"{what or dotted(path)} must be a mapping with the fields: {', '.join(allowed)}",
            )
            return None
        for key in value:
            if key not in allowed:
                self.error(
                    (*path, key),
                    f"unknown field {key!r} in {what or dotted(path)}; the "
                    f"allowed fields are: {', '.join(allowed)}",
                )
        for key in required:
            if key not in value:
                self.error(path, f"{what or dotted(path)} is missing the required field {key!r}")
        return value

    def boolean(self, path: Loc, value: Any, default: bool) -> bool:
        """A true/false switch; anything else is reported and the default is used."""
        if value is None:
            return default
        if not isinstance(value, bool):
            self.error(path, f"{dotted(path)} must be true or false")
            return default
        return value

    def text(self, path: Loc, value: Any) -> str | None:
        """A required piece of text; anything else (missing included) is reported as None."""
        if isinstance(value, str) and value:
            return value
        if value is not None:
            self.error(path, f"{dotted(path)} must be text")
        return None

    def items(self, path: Loc, value: Any) -> list[Any]:
        """A list, or an empty one (missing means empty; anything else is reported)."""
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(path, f"{dotted(path)} must be a list")
            return []
        return value
