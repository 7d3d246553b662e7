"""``WireClient.exchange`` puts on the wire what httpx would, and reads answers as httpx would.

A bare asyncio server on 127.0.0.1 records the bytes of each request and answers with what the
test chose; each request goes once through httpx (``build_request`` + ``send``) and once through
``exchange``, and both must be byte for byte the same, with the same status, headers, body or
exception name.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import httpx
import pytest

from reconciler.health.attempts import make_client, send_prepared
from reconciler.health.policy import RetryPolicy
from reconciler.health.request import PreparedRequest
from reconciler.health.transport import WireClient
from reconciler.health.wire import header_dict, shape

Answerer = Callable[[bytes], bytes]


def plain(status: int = 200, body: bytes = b'{"ok": true}', extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s" % (
        status,
        len(body),
        extra,
        body,
    )


@asynccontextmanager
async def server(answer: Answerer) -> AsyncIterator[tuple[str, list[bytes]]]:
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                request = head + (await reader.readexactly(length) if length else b"")
                seen.append(request)
                writer.write(answer(request))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async with serving(handle) as url:
        yield url, seen


@asynccontextmanager
async def serving(
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[str]:
    """A server on 127.0.0.1 whose connections are all finished when it stops."""
    tasks: set[asyncio.Task[None]] = set()

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)  # type: ignore[arg-type]
        await handle(reader, writer)

    srv = await asyncio.start_server(tracked, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await srv.wait_closed()


async def both(
    send: Callable[[WireClient, bool, str], Awaitable[Any]],
    answer: Answerer = lambda _: plain(),
) -> tuple[Any, Any, list[bytes]]:
    """What ``send(client, fast, server_url)`` gives through httpx and through ``exchange``,
    and the requests the server saw."""
    async with server(answer) as (url, seen):
        out = []
        for fast in (False, True):
            # an answer shorter than its content-length is waited for until the read timeout
            async with make_client(RetryPolicy(read_timeout=2.0), 4) as client:
                out.append(await send(client, fast, url))
    return out[0], out[1], seen


async def via(
    client: WireClient,
    fast: bool,
    method: str,
    url: str,
    *,
    params: Any = None,
    headers: list[tuple[str, str]] | None = None,
    data: dict[str, Any] | None = None,
    content: bytes | None = None,
) -> tuple[int, dict[str, str], bytes] | str:
    try:
        if fast:
            got = await client.exchange(
                method, url, params=params, headers=headers or [], data=data, content=content
            )
            return got.status, got.headers, got.body
        response = await client.send(
            client.build_request(
                method, url, params=params, headers=headers, data=data, content=content
            )
        )
        return response.status_code, dict(response.headers), response.content
    except (httpx.HTTPError, OSError, ValueError, aiohttp.ClientError) as e:
        return type(e).__name__


SHAPES: list[dict[str, Any]] = [
    {"method": "GET", "path": "/v1/account"},
    {
        "method": "GET",
        "path": "/maps/api/geocode/json",
        "params": (("address", "1600 Amphitheatre Pkwy, Mountain View"), ("key", "AIza/+=&?")),
        "headers": [("User-Agent", "reconciler-health/1"), ("X-Postmark-Server-Token", "t0k")],
    },
    {"method": "GET", "path": "/v1/items", "params": {"limit": 100, "flag": True, "x": None}},
    {"method": "GET", "path": "/v1/items", "params": (("a", "1"), ("b", "2"), ("a", "3"))},
    {"method": "GET", "path": "/v1/items?fixed=1", "params": (("a", "1"),)},
    {"method": "GET", "path": "/v1/ünïcode path/+1555", "params": {}},
    {
        "method": "POST",
        "path": "/oauth/token",
        "headers": [("User-Agent", "reconciler-health/1"), ("Accept", "application/json")],
        "data": {"grant_type": "refresh_token", "refresh_token": "r t&=", "client_id": "c"},
    },
    {
        "method": "POST",
        "path": "/v1/webhook_endpoints",
        "headers": [("Authorization", "Bearer sk"), ("Idempotency-Key", "k1")],
        "data": {"url": "https://a.example/h", "enabled_events[]": ["a.b", "c.d"]},
    },
    {
        "method": "POST",
        "path": "/senders",
        "headers": [("Content-Type", "application/json"), ("Accept", "application/json")],
        "content": b'{"Name": "Billing"}',
    },
    {"method": "POST", "path": "/empty", "headers": [("Authorization", "Bearer x")]},
    {"method": "DELETE", "path": "/v1/webhook_endpoints/we_1"},
    {"method": "PATCH", "path": "/v1/x", "content": b""},
]


@pytest.mark.parametrize("case", SHAPES, ids=lambda c: f"{c['method']} {c['path']}")
def test_shape_is_what_httpx_builds(case: dict[str, Any]) -> None:
    client = make_client(RetryPolicy(), 1)
    url = "http://127.0.0.1:8080/base" + case["path"]
    kw = {k: case.get(k) for k in ("params", "headers", "data", "content")}
    built = client.build_request(case["method"], url, **kw)
    defaults = [(k.decode(), v.decode()) for k, v in client.headers.raw]
    shaped = shape(
        defaults,
        case["method"],
        url,
        params=kw["params"],
        headers=kw["headers"] or (),
        data=kw["data"],
        content=kw["content"],
    )
    assert shaped.url == str(built.url)
    assert shaped.headers == [(k.decode(), v.decode()) for k, v in built.headers.raw]
    assert (shaped.body or b"") == built.read()


@pytest.mark.parametrize("case", SHAPES, ids=lambda c: f"{c['method']} {c['path']}")
def test_exchange_sends_the_bytes_httpx_sends(case: dict[str, Any]) -> None:
    async def send(client: WireClient, fast: bool, url: str) -> Any:
        kw = {k: case.get(k) for k in ("params", "headers", "data", "content")}
        return await via(client, fast, case["method"], url + case["path"], **kw)

    slow, fast, seen = asyncio.run(both(send))
    assert slow == fast and not isinstance(fast, str)
    assert len(seen) == 2 and seen[0] == seen[1]


@pytest.mark.parametrize(
    "answer",
    [
        plain(404, b'{"error": {"code": "nope"}}'),
        plain(429, b"", b"Retry-After: 2\r\nX-Dup: a\r\nx-dup: b\r\nSet-Thing: caf\xc3\xa9\r\n"),
        plain(200, b"\xff\xfe not json", b"X-Latin: caf\xe9\r\n"),
        plain(200, gzip.compress(b'{"id": "acct_1"}'), b"Content-Encoding: gzip\r\n"),
        plain(200, b"not gzip at all", b"Content-Encoding: gzip\r\n"),
        plain(302, b"", b"Location: http://127.0.0.1:1/elsewhere\r\n"),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\nshort",
        b"garbage\r\n\r\n",
    ],
)
def test_exchange_reads_answers_as_httpx_reads_them(answer: bytes) -> None:
    async def send(client: WireClient, fast: bool, url: str) -> Any:
        return await via(client, fast, "GET", url + "/v1/account")

    slow, fast, _ = asyncio.run(both(send, lambda _: answer))
    assert slow == fast


def test_exchange_names_a_refused_connection_as_httpx_does() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there

    async def go() -> list[Any]:
        out = []
        for fast in (False, True):
            async with make_client(RetryPolicy(), 1) as client:
                out.append(await via(client, fast, "GET", f"http://127.0.0.1:{port}/x"))
        return out

    slow, fast = asyncio.run(go())
    assert slow == fast == "ConnectError"


def test_exchange_names_a_read_timeout_as_httpx_does() -> None:
    async def go() -> list[Any]:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await reader.read(1)
                await asyncio.sleep(5)
            finally:
                writer.close()

        out = []
        async with serving(silent) as url:
            for fast in (False, True):
                async with make_client(RetryPolicy(read_timeout=0.2), 1) as client:
                    out.append(await via(client, fast, "GET", url + "/x"))
        return out

    slow, fast = asyncio.run(go())
    assert slow == fast == "ReadTimeout"


def test_send_prepared_reads_no_more_than_it_needs() -> None:
    big = b"x" * (1024 * 1024)

    async def go() -> tuple[int | None, int]:
        async with (
            server(lambda _: plain(200, big)) as (url, _),
            make_client(RetryPolicy(), 1) as client,
        ):
            answer = await send_prepared(
                client, PreparedRequest("GET", url + "/big", (), (), frozenset())
            )
        return answer.status, len(answer.body)

    status, size = asyncio.run(go())
    assert status == 200 and 256 * 1024 <= size < 1024 * 1024


def test_header_dict_is_httpx_headers_as_a_dict() -> None:
    for raw in (
        [(b"Retry-After", b"2"), (b"X-Dup", b"a"), (b"x-dup", b"b")],
        [(b"X-Utf8", "café".encode()), (b"A", b"b")],
        [(b"X-Latin", b"caf\xe9"), (b"X-Utf8", "café".encode())],
        [],
    ):
        assert header_dict(raw) == dict(httpx.Headers(raw))
