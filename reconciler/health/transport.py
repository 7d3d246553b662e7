"""The HTTP transport of the checks: the httpx API over aiohttp's connection pool.

httpcore's pool walks every pooled connection on each request's start and finish; at 50
concurrent checks that cost about 6 ms of CPU per request here, against 0.7 ms over aiohttp
(``bench/transport.py``). ``httpx_aiohttp`` provides the transport; this module adds what our
checks need on top of it:

- header names go out as written (``X-Postmark-Server-Token``, not lower-cased): HTTP says
  they are case-insensitive, but the providers' documents spell them so and we send exactly
  what they document;
- its exception map names a refused connection ``ConnectTimeout`` (the first base class
  matched wins); the class is what ``status`` shows as the reason a check was unreachable, so
  connection errors are mapped again here from aiohttp's own classes;
- aiohttp's own errors that ``httpx_aiohttp`` does not map are caught by the caller
  (``attempts.send_prepared``) as transport failures, never let through.

``WireClient`` is the ``httpx.AsyncClient`` our checks and provider calls get: its ``exchange``
sends over the same aiohttp session what httpx would send (``wire.shape``), with the same
timeouts and the same exceptions, and skips httpx's request and response models, which cost
more CPU than aiohttp itself. Anything else (``get``, ``request``, a test's mock transport)
is plain httpx.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import AiohttpResponseStream, map_aiohttp_exceptions
from multidict import CIMultiDict

from reconciler.health.wire import Exchanged, Pairs, Params, header_dict, shape

CHUNK = AiohttpResponseStream.CHUNK_SIZE

# Most specific first: aiohttp's class -> the httpx class httpcore would have raised.
_CONNECT_ERRORS: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientConnectionError, httpx.ReadError),
)


class CheckTransport(AiohttpTransport):
    """``AiohttpTransport`` sending header names in the case they were given."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        given = request.headers
        request.headers = CIMultiDict(  # type: ignore[assignment]
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in given.raw
        )
        try:
            with connect_errors(request):
                return await super().handle_async_request(request)
        finally:
            request.headers = given

    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session, opened on first use as ``handle_async_request`` opens it."""
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        return self.client


@contextmanager
def connect_errors(request: httpx.Request | None) -> Iterator[None]:
    """Name a failed connection by aiohttp's own class, as httpcore would (see above)."""
    try:
        yield
    except httpx.TransportError as e:
        for theirs, ours in _CONNECT_ERRORS:
            if isinstance(e.__cause__, theirs):
                if type(e) is ours:
                    raise
                raise ours(type(e.__cause__).__name__, request=request) from e.__cause__
        raise


class WireClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` over ``CheckTransport`` with a cheaper way to send
    (``exchange``). No proxies from the environment, no redirects."""

    def __init__(
        self, *, verify: ssl.SSLContext, limits: httpx.Limits, timeout: httpx.Timeout
    ) -> None:
        self.wire = CheckTransport(verify=verify, limits=limits, trust_env=False)
        super().__init__(
            transport=self.wire, timeout=timeout, trust_env=False, follow_redirects=False
        )
        # what httpx_aiohttp gives aiohttp for every request of this client
        self._aio_timeout = aiohttp.ClientTimeout(
            sock_connect=timeout.connect, sock_read=timeout.read, connect=timeout.pool
        )
        self._defaults = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self.headers.raw]

    async def exchange(
        self,
        method: str,
        url: str,
        *,
        params: Params | None = None,
        headers: Pairs = (),
        data: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        limit: int | None = None,
    ) -> Exchanged:
        """Send one request and read its body (at least ``limit`` bytes of it, when given, as
        ``send_prepared`` reads); raise what ``send`` would raise (httpx's exceptions)."""
        if self.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        if len(self.cookies.jar):  # httpx would send them: let httpx do it
            return await self._through_httpx(method, url, params, headers, data, content, limit)
        shaped = shape(
            self._defaults,
            method,
            url,
            params=params,
            headers=headers,
            data=data,
            content=content,
        )
        try:
            response = (
                await self.wire.session()
                .request(
                    method=method,
                    url=shaped.url,
                    headers=CIMultiDict(shaped.headers),
                    data=shaped.body,
                    allow_redirects=False,
                    auto_decompress=False,
                    compress=False,
                    timeout=self._aio_timeout,
                )
                .__aenter__()
            )
        except Exception:  # translated as CheckTransport translates it
            with connect_errors(None), map_aiohttp_exceptions():
                raise
        try:
            if response.headers.get("Content-Encoding", "identity") != "identity":
                body = await _decoded(response, limit)  # httpx's decoders, as before
            else:
                body = bytearray()
                async for chunk in response.content.iter_chunked(CHUNK):
                    body += chunk
                    if limit is not None and len(body) >= limit:
                        break
        except Exception:  # as httpx_aiohttp's response stream translates it
            with map_aiohttp_exceptions():
                raise
        finally:
            try:
                await response.__aexit__(None, None, None)
            except Exception:
                with map_aiohttp_exceptions():
                    raise
        return Exchanged(response.status, header_dict(response.raw_headers), bytes(body))

    async def _through_httpx(
        self,
        method: str,
        url: str,
        params: Params | None,
        headers: Pairs,
        data: Mapping[str, Any] | None,
        content: bytes | None,
        limit: int | None,
    ) -> Exchanged:
        request = self.build_request(
            method, url, params=params, headers=list(headers), data=data, content=content
        )
        response = await self.send(request, stream=True)
        try:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if limit is not None and len(body) >= limit:
                    break
        finally:
            await response.aclose()
        return Exchanged(response.status_code, dict(response.headers), bytes(body))


async def _decoded(response: aiohttp.ClientResponse, limit: int | None) -> bytearray:
    """A compressed body, decoded by httpx as ``httpx_aiohttp`` has it decoded."""
    decoding = httpx.Response(
        status_code=response.status,
        headers=response.raw_headers,
        stream=AiohttpResponseStream(response),
    )
    body = bytearray()
    async for chunk in decoding.aiter_bytes():
        body += chunk
        if limit is not None and len(body) >= limit:
            break
    return body
