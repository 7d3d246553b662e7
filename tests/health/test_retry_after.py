"""A 429's ``Retry-After`` sets the wait before the next attempt, not the default wait.

A real HTTP server on 127.0.0.1 answers the first request 429 with a ``Retry-After`` far from
``RetryPolicy.default_rate_limit_wait`` and the next one 200; the gap is measured between the
requests' arrivals at the server, so nothing else the check does is timed.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from reconciler.core.catalog import load_catalog
from reconciler.core.secret import Secret
from reconciler.health import CheckRequest, RetryPolicy, run_checks


class RateLimitedOnce(ThreadingHTTPServer):
    """Answers 429 with ``retry_after`` to the first request, 200 (a Postmark server) after."""

    def __init__(self, retry_after: str) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.retry_after = retry_after
        self.arrivals: list[float] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: RateLimitedOnce

    def do_GET(self) -> None:
        self.server.arrivals.append(time.monotonic())
        if len(self.server.arrivals) == 1:
            self._answer(429, {"ErrorCode": 429, "Message": "Slow down"}, self.server.retry_after)
        else:
            self._answer(200, {"Name": "Acme", "DeliveryType": "Live"}, None)

    def _answer(self, status: int, body: dict[str, object], retry_after: str | None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[RateLimitedOnce]:
    s = RateLimitedOnce(request.param)
    thread = threading.Thread(target=s.serve_forever, daemon=True)
    thread.start()
    try:
        yield s
    finally:
        s.shutdown()
        s.server_close()
        thread.join()


def check(server: RateLimitedOnce) -> str:
    provider = load_catalog(None).providers["postmark"]
    request = CheckRequest(
        ("acme", "postmark"), provider, {"api_key": Secret("pm-test-token", "PM")}, server.url
    )
    policy = RetryPolicy(default_rate_limit_wait=1.0, max_rate_limit_wait=10.0)
    [result] = run_checks([request], policy=policy)
    return result.status


@pytest.mark.parametrize("server", ["3"], indirect=True)
def test_a_longer_retry_after_is_waited_out(server: RateLimitedOnce) -> None:
    assert check(server) == "healthy"
    first, second = server.arrivals
    assert second - first >= 2.9  # Retry-After: 3, not the default 1 s


@pytest.mark.parametrize("server", ["0"], indirect=True)
def test_retry_after_zero_retries_at_once(server: RateLimitedOnce) -> None:
    assert check(server) == "healthy"
    first, second = server.arrivals
    # the default wait would be 1 s; a retry at once leaves a generous margin for a busy machine
    assert second - first < 0.9
