"""What one simulated request and one simulated answer are, independent of the HTTP server.

Provider dialects are plain functions from a `SimRequest` to an `Answer`, so each one can be read
(and reasoned about) without the socket handling around it.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs


@dataclass(frozen=True)
class SimRequest:
    """One request as a dialect sees it: the path is already stripped of the provider prefix."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes = b""
    client_ip: str = "127.0.0.1"

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def form(self) -> dict[str, list[str]]:
        """The body as `application/x-www-form-urlencoded` fields (Stripe, OAuth token endpoint)."""
        return parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)

    def json(self) -> Any:
        """The body as JSON, or None when it is empty or not JSON."""
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None


@dataclass(frozen=True)
class Answer:
    """One response: status, body (JSON value or text) and headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    @classmethod
    def json(cls, status: int, body: Any, headers: dict[str, str] | None = None) -> Answer:
        return cls(status, body, dict(headers or {}), "application/json")

    @classmethod
    def text(
        cls, status: int, text: str, headers: dict[str, str] | None = None, *, html: bool = False
    ) -> Answer:
        kind = "text/html; charset=utf-8" if html else "text/plain; charset=utf-8"
        return cls(status, text, dict(headers or {}), kind)

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body).encode("utf-8")


NETWORK_BLOCK_HTML = (
    "<html>\r\n<head><title>403 Forbidden</title></head>\r\n"
    "<body>\r\n<center><h1>403 Forbidden</h1></center>\r\n</body>\r\n</html>\r\n"
)


def network_block() -> Answer:
    """A 403 from a firewall or proxy in front of the API: HTML, no provider error code."""
    return Answer.text(403, NETWORK_BLOCK_HTML, html=True)


def request_id(prefix: str = "", length: int = 24) -> str:
    """A random id in the style of the providers' request-id headers."""
    return prefix + secrets.token_hex(length // 2 + 1)[:length]
