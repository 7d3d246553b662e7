"""Reading a provider's answer: the catalog's rules first, then the generic HTTP reading.

Pure functions over an ``Answer``; no I/O. The provider's body is parsed here and never leaves:
only its error code and identity fields, sanitized, reach a result.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.core.catalog import HealthCheck, Match

_MISSING = object()
_CODE_CHARS = re.compile(r"[^A-Za-z0-9_.:-]")
MAX_CODE_LEN = 64
MAX_IDENTITY_LEN = 200


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, or a transport failure (``status`` None, ``error`` the exception name)."""

    status: int | None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str = ""

    def json(self) -> Any:
        """The body as JSON, or ``_MISSING`` when it is not JSON (e.g. an HTML error page)."""
        if not self.body:
            return _MISSING
        try:
            return json.loads(self.body)
        except ValueError:
            return _MISSING


@dataclass(frozen=True)
class Verdict:
    outcome: str  # healthy | invalid_credentials | rate_limited | unreachable | oauth_denied
    provider_code: str | None = None
    identity: Mapping[str, str] = field(default_factory=dict)
    detail: str = ""


def lookup(document: Any, path: str) -> Any:
    """The value at a dotted path (``error.code``, ``data.0.id``), or ``_MISSING``."""
    node = document
    for part in path.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def _same(actual: Any, expected: Any) -> bool:
    """Equality that keeps ``True`` apart from ``1``, as YAML and JSON do."""
    if isinstance(actual, bool) or isinstance(expected, bool):
        return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected
    return bool(actual == expected)


def matches(match: Match, status: int, document: Any) -> bool:
    """Whether every given part of a rule's condition holds for this answer."""
    if match.status is not None and status not in match.status:
        return False
    for path, allowed in (match.json_values or {}).items():
        value = lookup(document, path)
        if value is _MISSING or not any(_same(value, a) for a in allowed):
            return False
    if any(lookup(document, p) is _MISSING for p in match.json_present or []):
        return False
    return all(lookup(document, p) is _MISSING for p in match.json_absent or [])


def generic_outcome(status: int) -> str:
    """The reading when no rule matches: redirects are never followed, so 3xx is unreachable."""
    if 200 <= status < 300:
        return "healthy"
    if status in (401, 403):
        return "invalid_credentials"
    if status == 429:
        return "rate_limited"
    return "unreachable"


def classify(check: HealthCheck, answer: Answer, secrets: Iterable[str] = ()) -> Verdict:
    """The outcome of one answer, its provider code and, when healthy, the identity it shows.

    ``secrets`` are the plaintext credential values: any code or identity value containing one
    is dropped, so a provider echoing the key cannot leak it into a result.
    """
    if answer.status is None:
        return Verdict("unreachable", detail=answer.error or "connection failed")
    document = answer.json()
    outcome = next(
        (r.outcome for r in check.rules if matches(r.match, answer.status, document)),
        None,
    ) or generic_outcome(answer.status)
    secret_values = [s for s in secrets if s]
    code = _error_code(check.error_code, document, secret_values)
    identity = _identity(check.identity, document, secret_values) if outcome == "healthy" else {}
    detail = "" if outcome == "healthy" else f"HTTP {answer.status}"
    return Verdict(outcome, code, identity, detail)


def _error_code(paths: Iterable[str], document: Any, secrets: list[str]) -> str | None:
    for path in paths:
        value = lookup(document, path)
        if isinstance(value, str | int | float | bool) and not isinstance(value, dict):
            text = _CODE_CHARS.sub("", str(value))[:MAX_CODE_LEN]
            if text and not _leaks(str(value), secrets):
                return text
    return None


def _identity(paths: Mapping[str, str], document: Any, secrets: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, path in paths.items():
        value = lookup(document, path)
        if isinstance(value, str | int | float | bool):
            text = str(value)[:MAX_IDENTITY_LEN]
            if not _leaks(text, secrets):
                found[name] = text
    return found


def identity_from_key(rules: Mapping[str, list[list[str]]], key: str | None) -> dict[str, str]:
    """Identity read off the key itself, e.g. Stripe's mode from ``sk_live_``/``sk_test_``."""
    found: dict[str, str] = {}
    if not key:
        return found
    for name, pairs in rules.items():
        for pair in pairs:
            if len(pair) == 2 and key.startswith(pair[0]):
                found[name] = pair[1]
                break
    return found


def _leaks(text: str, secrets: list[str]) -> bool:
    return any(s in text for s in secrets)
