"""The one error a provider client raises, with nothing secret in it.

Every failure at the boundary (transport errors, refusals, unexpected answers) becomes a
``ProviderError``: the provider, what was being done, the HTTP status and the provider's error
code, and the provider's message with every credential value and anything shaped like a key or
a signing secret replaced by ``(sensitive)``. httpx's own exceptions never travel further: their
text and their ``request`` carry URLs and headers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "(sensitive)"
# Key and secret shapes of the providers we manage (Stripe keys and whsec_, Anthropic keys).
_SECRET_SHAPES = re.compile(
    r"(?:whsec|sk_live|sk_test|rk_live|rk_test|pk_live|pk_test)_[A-Za-z0-9*]+|sk-ant-[A-Za-z0-9_*-]+"
)
MAX_MESSAGE = 300


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without any of ``secrets`` and without key- or secret-shaped words."""
    for value in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return _SECRET_SHAPES.sub(REDACTED, text)[:MAX_MESSAGE]


class ProviderError(Exception):
    """A provider call that did not do what was asked.

    ``status`` None: no HTTP answer (``code`` is then the transport failure, e.g. ConnectError).
    ``rate_limited``: still refused with 429 after the bounded wait. ``not_found``: the object
    is not there (404), which a delete takes as done.
    """

    def __init__(
        self,
        provider: str,
        operation: str,
        *,
        status: int | None = None,
        code: str | None = None,
        detail: str = "",
    ) -> None:
        self.provider = provider
        self.operation = operation
        self.status = status
        self.code = code
        self.detail = detail
        super().__init__(self.message)

    @property
    def message(self) -> str:
        what = f"HTTP {self.status}" if self.status is not None else "no answer"
        code = f", {self.code}" if self.code else ""
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.provider}: {self.operation} failed ({what}{code}){detail}"

    @property
    def rate_limited(self) -> bool:
        return self.status == 429

    @property
    def not_found(self) -> bool:
        return self.status == 404
