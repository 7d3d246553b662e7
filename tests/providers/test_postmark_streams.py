"""Postmark lists webhooks per message stream (``GET /webhooks?MessageStream=outbound``):
we ask for each stream the manifest or our tables name, and ``outbound``, so a server that
filters by stream, or insists on one, still shows us every webhook of ours."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from reconciler.core.catalog import Catalog
from reconciler.core.remote import list_scope
from reconciler.core.secret import Secret
from reconciler.providers import RateLimits, open_reads, provider_client

HOOKS = [
    {"ID": 1, "Url": "https://a.example/o", "MessageStream": "outbound", "Triggers": {}},
    {"ID": 2, "Url": "https://a.example/b", "MessageStream": "broadcast", "Triggers": {}},
    {"ID": 3, "Url": "https://a.example/i", "MessageStream": "inbound", "Triggers": {}},
]


@pytest.fixture
def strict() -> Iterator[tuple[str, list[str]]]:
    """A Postmark that answers only for a named stream (an unknown or missing one is 422)."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            stream = parse_qs(urlsplit(self.path).query).get("MessageStream", [""])[0]
            known = {h["MessageStream"] for h in HOOKS}
            status, body = (
                (200, {"Webhooks": [h for h in HOOKS if h["MessageStream"] == stream]})
                if stream in known
                else (422, {"ErrorCode": 1221, "Message": "Unknown message stream."})
            )
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def _list(catalog: Catalog, base: str, scope: tuple[str, ...]) -> list[str]:
    async def main() -> list[str]:
        async with provider_client() as http:
            reads = open_reads(
                catalog.providers["postmark"],
                {"api_key": Secret("server-token", "TOKEN")},
                client=http,
                limits=RateLimits(private=True),
                environ={"RECONCILER_BASE_URL_POSTMARK": base},
            )
            return sorted(o.identity for o in await reads.list("webhooks", scope))

    return asyncio.run(main())


def test_webhooks_are_read_for_each_stream_named(
    strict: tuple[str, list[str]], catalog: Catalog
) -> None:
    base, seen = strict
    found = _list(catalog, base, ("broadcast", "outbound"))
    assert found == ["broadcast:https://a.example/b", "outbound:https://a.example/o"]
    assert sorted(seen) == [
        "/webhooks?MessageStream=broadcast",
        "/webhooks?MessageStream=outbound",
    ]


@pytest.mark.parametrize(
    ("specs", "scope"),
    [
        ([], ("outbound",)),
        ([{"url": "u"}], ("outbound",)),
        ([{"message_stream": "broadcast"}, None], ("broadcast", "outbound")),
        ([{"message_stream": "outbound"}, {"message_stream": "b2"}], ("b2", "outbound")),
    ],
)
def test_the_streams_read_are_those_named_and_outbound(
    specs: list[dict[str, str] | None], scope: tuple[str, ...]
) -> None:
    assert list_scope("postmark", "webhooks", specs) == scope
    assert list_scope("stripe", "webhook_endpoints", specs) == ()
