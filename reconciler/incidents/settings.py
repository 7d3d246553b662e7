"""What the environment says about incidents and notifications, read and checked in one place.

- ``RECONCILER_RESOLVE_AFTER``: consecutive healthy checks that resolve an incident (default 2).
- ``RECONCILER_NOTIFY_URL``: where events are POSTed; without it no event is recorded.
- ``RECONCILER_NOTIFY_SECRET``: the HMAC key of the ``X-Reconciler-Signature`` header.
- ``RECONCILER_NOTIFY_FORMAT``: ``webhook`` (default, signed JSON per event) or ``slack`` (one
  Slack incoming-webhook message per delivery, no signature).
- ``RECONCILER_NOTIFY_TIMEOUT``: seconds one delivery may take (default 5).

The URL and the secret are never printed: a Slack webhook URL is itself a credential.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.core.errors import ConfigError

FORMATS = ("webhook", "slack")


@dataclass(frozen=True)
class NotifySettings:
    resolve_after: int = 2
    url: str | None = None
    secret: str | None = None
    format: str = "webhook"
    timeout: float = 5.0

    @property
    def enabled(self) -> bool:
        """Whether events are recorded (and so delivered): a receiver is configured."""
        return bool(self.url)

    @property
    def signs(self) -> bool:
        return self.format == "webhook"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> NotifySettings:
        resolve_after = _number(environ, "RECONCILER_RESOLVE_AFTER", 2, whole=True, least=1)
        timeout = _number(environ, "RECONCILER_NOTIFY_TIMEOUT", 5.0, whole=False, least=0.1)
        fmt = (environ.get("RECONCILER_NOTIFY_FORMAT") or "webhook").strip().lower()
        if fmt not in FORMATS:
            raise ConfigError(
                f"RECONCILER_NOTIFY_FORMAT is {fmt!r}; use one of: {', '.join(FORMATS)}"
            )
        url = (environ.get("RECONCILER_NOTIFY_URL") or "").strip() or None
        if url is not None and not url.startswith(("http://", "https://")):
            raise ConfigError("RECONCILER_NOTIFY_URL must be an http:// or https:// URL")
        secret = environ.get("RECONCILER_NOTIFY_SECRET") or None
        return cls(int(resolve_after), url, secret, fmt, float(timeout))


def _number(
    environ: Mapping[str, str], name: str, default: float, *, whole: bool, least: float
) -> float:
    raw = (environ.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        kind = "a whole number" if whole else "a number of seconds"
        raise ConfigError(f"{name} is {raw!r}; it must be {kind}, e.g. {default}") from None
    if value < least:
        raise ConfigError(f"{name} is {raw!r}; it must be at least {least:g}")
    return value
