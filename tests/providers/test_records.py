"""What our clients make of the providers' answers, answer by answer. Pure: no server."""

from __future__ import annotations

import pytest

from reconciler.providers import quo


@pytest.mark.parametrize(
    ("named", "events", "kind"),
    [
        (None, ["message.received"], "messages"),
        (None, ["call.ringing", "call.completed"], "calls"),
        (None, ["call.summary.completed"], "call_summaries"),
        (None, ["call.transcript.completed"], "call_transcripts"),
        ("call-summaries", ["call.summary.completed"], "call_summaries"),
        ("call_transcripts", [], "call_transcripts"),
        ("something-else", ["message.delivered"], "messages"),
    ],
)
def test_a_quo_webhooks_type_is_the_one_named_else_read_from_its_events(
    named: str | None, events: list[str], kind: str
) -> None:
    hook = {"id": "WH1", "url": "https://h.example/q", "events": events, "label": "l"}
    if named is not None:
        hook["type"] = named
    record = quo.webhook_record(hook)
    assert (record.fields["type"], record.identity) == (kind, f"{kind}:https://h.example/q")
