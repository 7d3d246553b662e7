"""Errors and diagnostics.

ReconcilerError
 +-- InputError            bad catalog, manifest, environment or arguments (carries Diagnostics)
 +-- ConfigError           bad or missing configuration (keys, database URL)
 +-- StalePlanError        a saved plan no longer matches the database or secrets
 +-- LockError             an organization's lock could not be obtained
 +-- CryptoError           a credential could not be decrypted or encrypted

Every subclass is turned into a message and exit code 1 by the CLI; messages never carry
secret values.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem found in the input: where it is and a plain sentence saying what to do."""

    file: str
    line: int | None
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}" if where else self.message


@dataclass
class Diagnostics:
    """Collected problems; validation reports every one of them in a single run."""

    items: list[Diagnostic] = field(default_factory=list)

    def add(self, file: str, line: int | None, message: str) -> None:
        self.items.append(Diagnostic(file, line, message))

    def warn(self, file: str, line: int | None, message: str) -> None:
        self.items.append(Diagnostic(file, line, message, "warning"))

    def extend(self, other: Diagnostics) -> None:
        self.items.extend(other.items)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "warning"]

    def raise_if_errors(self) -> None:
        if self.errors:
            raise InputError(self)


class ReconcilerError(Exception):
    """Base of every error the tool reports as a plain message with exit code 1."""


class InputError(ReconcilerError):
    def __init__(self, diagnostics: Diagnostics | str) -> None:
        if isinstance(diagnostics, str):
            d = Diagnostics()
            d.add("", None, diagnostics)
            diagnostics = d
        self.diagnostics = diagnostics
        super().__init__("\n".join(str(x) for x in diagnostics.errors))


class ConfigError(ReconcilerError):
    pass


class StalePlanError(ReconcilerError):
    pass


class LockError(ReconcilerError):
    pass


class CryptoError(ReconcilerError):
    pass
