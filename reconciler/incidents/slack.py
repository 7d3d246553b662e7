"""RECONCILER_NOTIFY_FORMAT=slack: the events of one delivery as one Slack incoming-webhook
message (``{"text": ...}``), so an outage that fails many organizations at once is one message,
not a flood. Slack verifies nothing, so there is no signature; the webhook URL is the secret."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from reconciler.incidents.events import OPENED

MAX_LINES = 50  # events listed one per line; the rest are counted


def slack_body(events: Sequence[dict[str, Any]]) -> bytes:
    opened = [e for e in events if e["type"] == OPENED]
    resolved = [e for e in events if e["type"] != OPENED]
    head = []
    if opened:
        head.append(f"{len(opened)} incident{'s' if len(opened) != 1 else ''} opened")
    if resolved:
        head.append(f"{len(resolved)} resolved")
    lines = [f"*reconciler*: {', '.join(head)}"]
    for e in opened:
        lines.append(
            f":red_circle: {e['address']} {e['failure_type']}: {e['message']} "
            f"(since {e['opened_at']})"
        )
    for e in resolved:
        lines.append(
            f":large_green_circle: {e['address']} {e['failure_type']} resolved: {e['message']} "
            f"(open {e.get('open_seconds', 0)} s)"
        )
    if len(lines) > MAX_LINES + 1:  # Slack cuts long messages: say how many more there are
        rest = len(lines) - 1 - MAX_LINES
        lines = [*lines[: MAX_LINES + 1], f"... and {rest} more (`reconciler status`)"]
    return json.dumps({"text": "\n".join(lines)}, separators=(",", ":")).encode()
