"""The HTTP side of the simulator: one threaded server, every provider under its slug prefix.

Nothing here logs a request line: Mapbox, Google and Geoapify carry the key in the query
string, so the standard `log_message` would print keys. The optional access log gets the
method, the path without its query string, and the status.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from reconciler.simulator import (
    admin,
    anthropic_api,
    anthropic_costs,
    controls,
    geoapify_api,
    google_maps_api,
    mapbox_api,
    oauthdemo_api,
    postmark_api,
    postmark_resources,
    quo_api,
    quo_webhooks,
    stripe_api,
    stripe_webhooks,
)
from reconciler.simulator.dialect import Dialect, dispatch
from reconciler.simulator.state import SimState
from reconciler.simulator.wire import Answer, SimRequest

DIALECTS: dict[str, Dialect] = {
    d.slug: d
    for d in (
        stripe_api.DIALECT.with_routes(stripe_webhooks.ROUTES),
        postmark_api.DIALECT.with_routes(postmark_resources.ROUTES),
        mapbox_api.DIALECT,
        google_maps_api.DIALECT,
        geoapify_api.DIALECT,
        anthropic_api.DIALECT.with_routes(anthropic_costs.ROUTES),
        quo_api.DIALECT.with_routes(quo_webhooks.ROUTES),
        oauthdemo_api.DIALECT,
    )
}
PROVIDERS = tuple(DIALECTS)
MAX_BODY = 1 << 20

AccessLog = Callable[[str], None]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # benchmarks open many connections at once
    state: SimState
    latency_s: float
    access_log: AccessLog | None

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hung up mid-request (a run that stopped, with its reads given up)
        is no error of the simulator's: said by no traceback, as a real API says none."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so clients' connection pools are exercised
    server_version = "reconciler-simulator"
    sys_version = ""
    timeout = 30  # an idle keep-alive connection frees its thread after this
    # Headers and body leave in one segment: with Nagle's algorithm and delayed ACKs a
    # keep-alive client would otherwise wait ~40 ms for every answer.
    wbufsize = -1
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: object) -> None:
        """Silent: the default request line would include query-string keys."""

    def _serve(self) -> None:
        split = urlsplit(self.path)
        slug, _, rest = split.path.lstrip("/").partition("/")
        request = SimRequest(
            method=self.command,
            path="/" + rest,
            query=parse_qs(split.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self._body(),
            client_ip=self.client_address[0],
        )
        answer = self._answer(slug, request)
        if self.server.access_log is not None:  # before writing, so a client never outruns it
            self.server.access_log(f"{self.command} {split.path} {answer.status}")
        self._write(answer)

    def _answer(self, slug: str, request: SimRequest) -> Answer:
        if slug == admin.PREFIX:
            return admin.answer(request, self.server.state)
        dialect = DIALECTS.get(slug)
        if dialect is None:
            return Answer.json(404, {"error": f"no simulated provider at /{slug}"})
        if self.server.latency_s > 0:
            time.sleep(self.server.latency_s)
        return dispatch(dialect, request, self.server.state)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(min(length, MAX_BODY)) if length > 0 else b""

    def _write(self, answer: Answer) -> None:
        payload = answer.encoded()
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


class Simulator:
    """The seven providers (and the OAuth demo provider) on one local port.

    Usage::

        with Simulator(latency_ms=100) as sim:
            os.environ.update(sim.env())   # RECONCILER_BASE_URL_STRIPE=http://127.0.0.1:PORT/stripe
            sim.revoke("sk_test_abc")      # from now on that key answers as invalid
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency_ms: float = 0,
        failure_rate: float = 0.0,
        seed: int = 0,
        access_log: AccessLog | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.latency_ms = latency_ms
        self.state = SimState(failure_rate=failure_rate, seed=seed)
        self.url = ""
        self._access_log = access_log
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def bind(self) -> _Server:
        """Open the listening socket (so `url` is known) without serving yet."""
        if self._server is None:
            server = _Server((self.host, self.port), _Handler)
            server.state = self.state
            server.latency_s = max(self.latency_ms, 0) / 1000
            server.access_log = self._access_log
            self._server = server
            host, port = server.server_address[:2]
            host = host.decode() if isinstance(host, bytes) else host
            shown = f"[{host}]" if ":" in host else host
            self.url = f"http://{shown}:{port}"
        return self._server

    def start(self) -> Simulator:
        """Serve in a background daemon thread."""
        server = self.bind()
        if self._thread is None:
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},  # so stop() returns promptly in tests
                name="reconciler-simulator",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()
        self._server = None
        self._thread = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def base_url(self, provider: str) -> str:
        return f"{self.url}/{provider}"

    def env(self) -> dict[str, str]:
        """`RECONCILER_BASE_URL_<SLUG>` for every simulated provider."""
        return {f"RECONCILER_BASE_URL_{slug.upper()}": self.base_url(slug) for slug in PROVIDERS}

    def revoke(self, key: str) -> None:
        self.state.revoke(key)

    def restore(self, key: str) -> None:
        self.state.restore(key)

    def request_count(self, provider: str | None = None) -> int:
        return self.state.request_count(provider)

    def reset(self) -> None:
        self.state.reset()

    # -- the providers' objects, changed behind the tool's back (see `controls`) ---------------

    def objects(self, provider: str, kind: str, key: str) -> list[dict[str, Any]]:
        """What the provider holds for the key (signing secrets included)."""
        return controls.objects(self.state, provider, kind, key)

    def seed_object(
        self, provider: str, kind: str, key: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Create an object as the provider's dashboard would (not ours: no marker)."""
        return controls.seed_object(self.state, provider, kind, key, body)

    def change_object(
        self, provider: str, kind: str, key: str, object_id: str, fields: dict[str, Any]
    ) -> dict[str, Any]:
        return controls.change_object(self.state, provider, kind, key, object_id, fields)

    def delete_object(self, provider: str, kind: str, key: str, object_id: str) -> None:
        controls.delete_object(self.state, provider, kind, key, object_id)

    def set_phone_numbers(self, key: str, numbers: list[tuple[str, str]]) -> None:
        controls.set_phone_numbers(self.state, key, numbers)

    def set_daily_cost(self, key: str, cents: str) -> None:
        controls.set_daily_cost(self.state, key, cents)

    def advance_clock(self, seconds: float) -> None:
        self.state.advance(seconds)


def run(host: str, port: int, *, latency_ms: float = 0, failure_rate: float = 0.0) -> None:
    """Serve in the foreground until interrupted (used by `reconciler simulate`)."""
    sim = Simulator(
        host,
        port,
        latency_ms=latency_ms,
        failure_rate=failure_rate,
        access_log=lambda line: print(line, flush=True),
    )
    server = sim.bind()
    print(f"reconciler simulator listening on {sim.url} (Ctrl-C to stop)", flush=True)
    for name, value in sim.env().items():
        print(f"export {name}={value}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
