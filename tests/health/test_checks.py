"""The health engine against real tiny HTTP servers on 127.0.0.1.

Each server is scripted per test: a function of the request (and how many times its path was
asked) gives the answer. Nothing in httpx is patched.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from reconciler.core.catalog import load_catalog
from reconciler.core.secret import Secret
from reconciler.health import (
    CheckRequest,
    CheckResult,
    RetryPolicy,
    TokenResult,
    exchange_refresh_token,
    run_checks,
)

ROOT = Path(__file__).resolve().parents[2]
CATALOG = load_catalog(ROOT / "catalog")
OAUTH = load_catalog(ROOT / "tests" / "fixtures" / "catalog_oauth").providers["oauthdemo"]
FAST = RetryPolicy(
    connect_timeout=0.5,
    read_timeout=1.0,
    deadline=3.0,
    backoff_base=0.01,
    backoff_cap=0.02,
    default_rate_limit_wait=0.01,
    max_rate_limit_wait=0.05,
    max_total_rate_limit_wait=0.1,
)


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


Reply = tuple[int, dict[str, str], bytes]
Script = Callable[[Seen, int], Reply | Callable[[BaseHTTPRequestHandler], None]]


@dataclass
class ScriptedServer:
    """A threaded HTTP server answering by script; records requests and peak concurrency."""

    script: Script
    seen: list[Seen] = field(default_factory=list)
    in_flight: int = 0
    peak: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    delay: float = 0.0

    def handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    dict(self.headers.items()),
                    self.rfile.read(length),
                )
                with server.lock:
                    server.seen.append(seen)
                    count = sum(1 for s in server.seen if s.path == seen.path)
                    server.in_flight += 1
                    server.peak = max(server.peak, server.in_flight)
                # a request is in flight while the server holds it: until its answer starts
                # to go out (counted after the answer, the client may already have sent its
                # next request while this thread waits to run again, and count one too many)
                try:
                    if server.delay:
                        time.sleep(server.delay)
                    reply = server.script(seen, count)
                    if callable(reply):
                        reply(self)
                        return
                finally:
                    with server.lock:
                        server.in_flight -= 1
                status, headers, body = reply
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


@pytest.fixture
def serve() -> Iterator[Callable[..., tuple[str, ScriptedServer]]]:
    started: list[ThreadingHTTPServer] = []

    def start(script: Script, delay: float = 0.0) -> tuple[str, ScriptedServer]:
        scripted = ScriptedServer(script, delay=delay)
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), scripted.handler())
        httpd.daemon_threads = True
        threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()
        started.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}", scripted

    yield start
    for httpd in started:
        httpd.shutdown()
        httpd.server_close()


def js(status: int, body: Any, **headers: str) -> Reply:
    return status, {"Content-Type": "application/json", **headers}, json.dumps(body).encode()


def check(name: str, base: str, key: str = "KEY_0123456789", **kw: Any) -> CheckResult:
    provider = OAUTH if name == "oauthdemo" else CATALOG.providers[name]
    creds = {"access_token" if name == "oauthdemo" else "api_key": Secret(key)}
    req = CheckRequest(key=(name, "acme"), provider=provider, credentials=creds, base_url=base)
    kw.setdefault("policy", FAST)
    [result] = run_checks([req], **kw)
    return result


# -- the truth table: each provider's answers, as providers.md describes them ------------------

HTML_403 = (403, {"Content-Type": "text/html"}, b"<html><body>403 Forbidden</body></html>")
CASES: list[tuple[str, str, Reply, str, str | None]] = [
    # provider, case, answer, outcome, provider_code
    ("postmark", "ok", js(200, {"ID": 1, "Name": "Acme", "DeliveryType": "Live"}), "healthy", None),
    (
        "postmark",
        "401 code 10",
        js(401, {"ErrorCode": 10, "Message": "Bad token"}),
        "invalid_credentials",
        "10",
    ),
    (
        "postmark",
        "403 code 10",
        js(403, {"ErrorCode": 10, "Message": "Bad token"}),
        "invalid_credentials",
        "10",
    ),
    ("postmark", "403 html network layer", HTML_403, "unreachable", None),
    ("postmark", "429", js(429, {"ErrorCode": 429, "Message": "Slow"}), "rate_limited", "429"),
    ("postmark", "500", js(500, {"ErrorCode": 500}), "unreachable", "500"),
    ("postmark", "503", (503, {}, b""), "unreachable", None),
    ("stripe", "ok", js(200, {"id": "acct_1A", "charges_enabled": True}), "healthy", None),
    (
        "stripe",
        "401 invalid",
        js(
            401,
            {
                "error": {
                    "type": "invalid_request_error",
                    "message": "Invalid API Key provided: sk_****",
                }
            },
        ),
        "invalid_credentials",
        "invalid_request_error",
    ),
    (
        "stripe",
        "401 expired",
        js(401, {"error": {"type": "invalid_request_error", "code": "api_key_expired"}}),
        "invalid_credentials",
        "api_key_expired",
    ),
    (
        "stripe",
        "403 restricted",
        js(403, {"error": {"type": "invalid_request_error"}}),
        "invalid_credentials",
        "invalid_request_error",
    ),
    (
        "stripe",
        "429",
        js(429, {"error": {"type": "rate_limit_error"}}, **{"Retry-After": "0"}),
        "rate_limited",
        "rate_limit_error",
    ),
    ("stripe", "500", js(500, {"error": {"type": "api_error"}}), "unreachable", "api_error"),
    ("mapbox", "ok", js(200, {"code": "TokenValid", "token": {"user": "acme"}}), "healthy", None),
    *[
        ("mapbox", code, js(200, {"code": code}), "invalid_credentials", code)
        for code in ("TokenInvalid", "TokenMalformed", "TokenExpired", "TokenRevoked")
    ],
    ("mapbox", "200 unknown code", js(200, {"code": "Weird"}), "unreachable", "Weird"),
    (
        "mapbox",
        "401",
        js(401, {"message": "Not Authorized - Invalid Token"}),
        "invalid_credentials",
        None,
    ),
    (
        "mapbox",
        "429 reset",
        js(429, {"message": "Too Many Requests"}, **{"X-Rate-Limit-Reset": str(int(time.time()))}),
        "rate_limited",
        None,
    ),
    ("mapbox", "500", js(500, {"message": "oops"}), "unreachable", None),
    *[
        ("google_maps", s, js(200, {"status": s, "results": []}), "healthy", None)
        for s in ("OK", "ZERO_RESULTS")
    ],
    *[
        ("google_maps", s, js(200, {"status": s, "error_message": "no"}), "invalid_credentials", s)
        for s in ("REQUEST_DENIED", "OVER_DAILY_LIMIT")
    ],
    (
        "google_maps",
        "OVER_QUERY_LIMIT",
        js(200, {"status": "OVER_QUERY_LIMIT"}),
        "rate_limited",
        "OVER_QUERY_LIMIT",
    ),
    (
        "google_maps",
        "UNKNOWN_ERROR",
        js(200, {"status": "UNKNOWN_ERROR"}),
        "unreachable",
        "UNKNOWN_ERROR",
    ),
    ("google_maps", "500", (500, {}, b"Server Error"), "unreachable", None),
    ("google_maps", "504", (504, {}, b""), "unreachable", None),
    ("geoapify", "ok", js(200, {"ip": "1.2.3.4", "country": {"name": "X"}}), "healthy", None),
    (
        "geoapify",
        "401",
        js(401, {"statusCode": 401, "error": "Unauthorized", "message": "Invalid apiKey"}),
        "invalid_credentials",
        "Unauthorized",
    ),
    (
        "geoapify",
        "429",
        js(429, {"statusCode": 429, "error": "Too Many Requests"}),
        "rate_limited",
        "TooManyRequests",
    ),
    ("geoapify", "500", js(500, {"statusCode": 500}), "unreachable", "500"),
    (
        "anthropic",
        "ok",
        js(200, {"data": [{"type": "model", "id": "claude-x"}], "has_more": True}),
        "healthy",
        None,
    ),
    (
        "anthropic",
        "401",
        js(401, {"type": "error", "error": {"type": "authentication_error"}}),
        "invalid_credentials",
        "authentication_error",
    ),
    (
        "anthropic",
        "403",
        js(403, {"type": "error", "error": {"type": "permission_error"}}),
        "invalid_credentials",
        "permission_error",
    ),
    (
        "anthropic",
        "429",
        js(429, {"type": "error", "error": {"type": "rate_limit_error"}}, **{"retry-after": "0"}),
        "rate_limited",
        "rate_limit_error",
    ),
    (
        "anthropic",
        "500",
        js(500, {"type": "error", "error": {"type": "api_error"}}),
        "unreachable",
        "api_error",
    ),
    (
        "anthropic",
        "529",
        js(529, {"type": "error", "error": {"type": "overloaded_error"}}),
        "unreachable",
        "overloaded_error",
    ),
    ("quo", "ok", js(200, {"data": [{"id": "PN1", "number": "+15555550100"}]}), "healthy", None),
    (
        "quo",
        "401",
        js(
            401,
            {
                "message": "Missing or invalid API key",
                "code": "0100401",
                "status": 401,
                "title": "Unauthorized",
                "trace": "t1",
            },
        ),
        "invalid_credentials",
        "0100401",
    ),
    ("quo", "429", js(429, {"message": "Too many", "status": 429}), "rate_limited", None),
    ("quo", "500", js(500, {"message": "boom", "trace": "t2"}), "unreachable", None),
    *[
        (n, "403 html network layer", HTML_403, "unreachable", None)
        for n in ("stripe", "mapbox", "google_maps", "geoapify", "anthropic", "quo")
    ],
    ("mapbox", "403 json", js(403, {"message": "Forbidden"}), "invalid_credentials", None),
    (
        "geoapify",
        "403 json",
        js(403, {"statusCode": 403, "error": "Forbidden"}),
        "invalid_credentials",
        "Forbidden",
    ),
    (
        "quo",
        "403 json",
        js(403, {"message": "Forbidden", "code": "0100403"}),
        "invalid_credentials",
        "0100403",
    ),
    (
        "stripe",
        "302 redirect",
        (302, {"Location": "http://127.0.0.1:1/x"}, b""),
        "unreachable",
        None,
    ),
]


@pytest.mark.parametrize(
    ("name", "reply", "outcome", "code"),
    [pytest.param(n, r, o, c, id=f"{n}-{case}") for n, case, r, o, c in CASES],
)
def test_answers_are_classified_per_provider(
    serve: Any, name: str, reply: Reply, outcome: str, code: str | None
) -> None:
    base, _ = serve(lambda seen, n: reply)
    result = check(name, base + "/" + name)
    assert (result.status == "healthy") == (outcome == "healthy")
    assert result.failure_type == (None if outcome == "healthy" else outcome)
    assert result.provider_code == code
    display = CATALOG.providers[name].display_name
    expected = {
        "healthy": f"{display} connected successfully",
        "invalid_credentials": "The API key you entered is invalid. Please check your credentials.",
        "unreachable": f"Could not reach {display}. The service may be temporarily unavailable.",
        "rate_limited": "Connection test was rate limited. Please wait a moment.",
    }[outcome]
    assert result.message == expected
    assert result.checked_at.tzinfo is not None


def test_request_reaches_the_path_with_auth_where_the_api_expects_it(serve: Any) -> None:
    base, server = serve(lambda seen, n: js(200, {}))
    for name in CATALOG.providers:
        check(name, f"{base}/{name}", key="K_abc")
    by_path = {s.path: s for s in server.seen}
    assert by_path["/postmark/server"].headers["X-Postmark-Server-Token"] == "K_abc"
    assert by_path["/postmark/server"].headers["Accept"] == "application/json"
    assert by_path["/stripe/v1/account"].headers["Authorization"] == "Bearer K_abc"
    assert by_path["/mapbox/tokens/v2"].query["access_token"] == ["K_abc"]
    google = by_path["/google_maps/maps/api/geocode/json"].query
    assert google["key"] == ["K_abc"]
    assert google["address"]
    assert by_path["/geoapify/v1/ipinfo"].query["apiKey"] == ["K_abc"]
    anthropic = by_path["/anthropic/v1/models"]
    assert anthropic.headers["x-api-key"] == "K_abc"
    assert anthropic.headers["anthropic-version"] == "2023-06-01"
    assert anthropic.query["limit"] == ["1"]
    assert by_path["/quo/v1/phone-numbers"].headers["Authorization"] == "K_abc"


@pytest.mark.parametrize(
    ("name", "key", "reply", "identity"),
    [
        (
            "stripe",
            "sk_test_abc",
            js(200, {"id": "acct_9"}),
            {"account_id": "acct_9", "mode": "test"},
        ),
        (
            "stripe",
            "sk_live_abc",
            js(200, {"id": "acct_9"}),
            {"account_id": "acct_9", "mode": "live"},
        ),
        (
            "postmark",
            "pm",
            js(200, {"ID": 3, "Name": "Acme Mail", "DeliveryType": "Sandbox"}),
            {"server_name": "Acme Mail", "delivery_type": "Sandbox"},
        ),
        (
            "mapbox",
            "pk.x",
            js(200, {"code": "TokenValid", "token": {"user": "acme-maps"}}),
            {"token_user": "acme-maps"},
        ),
    ],
)
def test_identity_is_read_from_a_successful_answer(
    serve: Any, name: str, key: str, reply: Reply, identity: dict[str, str]
) -> None:
    base, _ = serve(lambda seen, n: reply)
    result = check(name, base, key=key)
    assert result.status == "healthy"
    assert dict(result.identity) == identity


# -- retries ------------------------------------------------------------------------------------


def test_429_with_retry_after_twice_then_200_is_healthy(serve: Any) -> None:
    def script(seen: Seen, n: int) -> Reply:
        if n <= 2:
            return js(429, {"error": {"type": "rate_limit_error"}}, **{"Retry-After": "1"})
        return js(200, {"id": "acct_1"})

    base, _ = serve(script)
    policy = RetryPolicy(max_rate_limit_wait=2.0, max_total_rate_limit_wait=5.0)
    result = check("stripe", base, policy=policy)
    assert result.status == "healthy"
    assert result.attempts == 3


def test_429_forever_is_rate_limited_within_the_bounded_wait(serve: Any) -> None:
    base, server = serve(lambda seen, n: js(429, {}, **{"Retry-After": "1"}))
    policy = RetryPolicy(max_rate_limit_wait=1.0, max_total_rate_limit_wait=2.5)
    started = time.monotonic()
    result = check("anthropic", base, policy=policy)
    assert result.failure_type == "rate_limited"
    assert result.attempts == 3
    assert len(server.seen) == 3
    assert time.monotonic() - started < 6  # generous: waits are 1 s + 1 s


def test_retry_after_as_http_date_is_honoured(serve: Any) -> None:
    def script(seen: Seen, n: int) -> Reply:
        if n == 1:
            when = datetime.now(UTC) + timedelta(seconds=1)
            return js(429, {}, **{"Retry-After": format_datetime(when, usegmt=True)})
        return js(200, {"data": []})

    base, _ = serve(script)
    result = check("quo", base, policy=RetryPolicy(max_total_rate_limit_wait=3.0))
    assert (result.status, result.attempts) == ("healthy", 2)


def test_google_over_query_limit_in_a_200_is_retried_then_healthy(serve: Any) -> None:
    def script(seen: Seen, n: int) -> Reply:
        return js(200, {"status": "OVER_QUERY_LIMIT" if n <= 2 else "OK", "results": []})

    base, _ = serve(script)
    policy = RetryPolicy(default_rate_limit_wait=0.05, max_total_rate_limit_wait=1.0)
    result = check("google_maps", base, policy=policy)
    assert (result.status, result.attempts) == ("healthy", 3)


@pytest.mark.parametrize("status", [502, 503, 504, 529])
def test_outages_are_retried_with_backoff_then_healthy(serve: Any, status: int) -> None:
    base, _ = serve(lambda seen, n: (status, {}, b"") if n <= 2 else js(200, {"data": []}))
    result = check("anthropic", base)
    assert (result.status, result.attempts) == ("healthy", 3)


def test_outage_that_persists_stops_after_max_attempts(serve: Any) -> None:
    base, server = serve(lambda seen, n: (503, {}, b""))
    result = check("quo", base, policy=RetryPolicy(max_attempts=3, backoff_base=0.01))
    assert (result.failure_type, result.attempts, len(server.seen)) == ("unreachable", 3, 3)
    assert result.http_status == 503


@pytest.mark.parametrize("status", [401, 403, 500])
def test_rejections_and_500_are_never_retried(serve: Any, status: int) -> None:
    base, server = serve(lambda seen, n: js(status, {}))
    result = check("stripe", base)
    assert result.attempts == 1
    assert len(server.seen) == 1


# -- time limits and the network ---------------------------------------------------------------


def drip(handler: BaseHTTPRequestHandler) -> None:
    """Headers at once, then one byte of body every 0.2 s until the client gives up."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    try:
        for _ in range(100):
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(0.2)
    except OSError:
        pass


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A listening socket that never accepts: connects may queue, nothing ever answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(0)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def test_drip_and_black_hole_fail_at_the_deadline_without_holding_up_others(
    serve: Any, black_hole: str
) -> None:
    drip_base, _ = serve(lambda seen, n: drip)
    good_base, _ = serve(lambda seen, n: js(200, {"data": []}))
    quo = CATALOG.providers["quo"]
    requests = [
        CheckRequest(
            key="drip", provider=quo, credentials={"api_key": Secret("k1")}, base_url=drip_base
        ),
        CheckRequest(
            key="hole", provider=quo, credentials={"api_key": Secret("k2")}, base_url=black_hole
        ),
        *[
            CheckRequest(
                key=f"good{i}",
                provider=quo,
                credentials={"api_key": Secret("k3")},
                base_url=good_base,
            )
            for i in range(5)
        ],
    ]
    finished: list[tuple[object, float]] = []
    started = time.monotonic()
    policy = RetryPolicy(connect_timeout=0.5, read_timeout=0.8, deadline=1.5, backoff_base=0.05)
    results = run_checks(
        requests,
        parallelism=10,
        policy=policy,
        on_result=lambda r: finished.append((r.key, time.monotonic())),
    )
    elapsed = time.monotonic() - started
    by_key = {r.key: r for r in results}
    assert [r.key for r in results] == [r.key for r in requests]  # request order
    assert by_key["drip"].failure_type == "unreachable"
    assert by_key["drip"].detail == "deadline exceeded"
    assert by_key["hole"].failure_type == "unreachable"
    assert all(by_key[f"good{i}"].status == "healthy" for i in range(5))
    order = [k for k, _ in finished]
    assert set(order[:5]) == {f"good{i}" for i in range(5)}  # the good ones did not wait
    assert elapsed < 5


def test_refused_connection_and_dns_failure_are_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed on exit: nothing listens there
    refused = check(
        "stripe",
        f"http://127.0.0.1:{port}",
        policy=RetryPolicy(max_attempts=2, backoff_base=0.01, deadline=3),
    )
    assert refused.failure_type == "unreachable"
    assert refused.detail == "ConnectError"
    assert refused.attempts == 2
    dns = check(
        "stripe", "http://no-such-host.invalid", policy=RetryPolicy(max_attempts=1, deadline=3)
    )
    assert dns.failure_type == "unreachable"


def test_redirect_is_not_followed_and_the_key_not_resent(serve: Any) -> None:
    thief_base, thief = serve(lambda seen, n: js(200, {"id": "acct_stolen"}))
    base, _ = serve(lambda seen, n: (307, {"Location": thief_base + "/v1/account"}, b""))
    result = check("stripe", base, key="sk_test_redirect")
    assert result.failure_type == "unreachable"
    assert result.http_status == 307
    assert thief.seen == []


def test_parallelism_bounds_checks_in_flight(serve: Any) -> None:
    base, server = serve(lambda seen, n: js(200, {"data": []}), delay=0.15)
    quo = CATALOG.providers["quo"]
    requests = [
        CheckRequest(key=i, provider=quo, credentials={"api_key": Secret(f"k{i}")}, base_url=base)
        for i in range(12)
    ]
    seen_results: list[CheckResult] = []
    results = run_checks(requests, parallelism=3, policy=FAST, on_result=seen_results.append)
    assert all(r.status == "healthy" for r in results)
    assert len(seen_results) == 12
    assert 2 <= server.peak <= 3


def test_no_key_in_logs_results_or_errors(serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # even if someone turns httpx up
    caplog.set_level(logging.DEBUG, logger="httpcore")
    key = "pk.CANARYSECRET123"
    base, _ = serve(lambda seen, n: js(200, {"code": "TokenInvalid", "echo": key}))
    results = [
        check("mapbox", base, key=key),
        check("google_maps", base, key=key),
        check("mapbox", "http://127.0.0.1:1", key=key),
    ]
    for r in results:
        assert r.status == "unhealthy"
        assert key not in repr(r)
    assert caplog.records, "the engine logs attempts at DEBUG"
    for record in caplog.records:
        assert key not in record.getMessage()
        assert key not in str(record.args)


# -- OAuth2 --------------------------------------------------------------------------------------


def oauth_script(seen: Seen, n: int) -> Reply:
    if seen.path.endswith("/oauth/token"):
        form = {k: v[0] for k, v in parse_qs(seen.body.decode()).items()}
        if form.get("grant_type") != "refresh_token" or form.get("client_secret") != "cs":
            return js(401, {"error": "invalid_client"})
        token = form.get("refresh_token", "")
        if "revoked" in token:
            return js(400, {"error": "invalid_grant", "error_description": "revoked"})
        if "denied" in token:
            return js(400, {"error": "access_denied"})
        return js(
            200,
            {
                "access_token": "at_new",
                "token_type": "Bearer",
                "expires_in": 3600,
                "refresh_token": "rt_rotated",
            },
        )
    if seen.headers.get("Authorization") == "Bearer at_new":
        return js(200, {"id": "user_1"})
    return js(401, {"error": "invalid_token"})


def test_oauth_refresh_then_check_with_the_access_token(serve: Any) -> None:
    base, server = serve(oauth_script)
    tokens = exchange_refresh_token(
        OAUTH, base, Secret("cid"), Secret("cs"), Secret("rt_1"), policy=FAST
    )
    assert isinstance(tokens, TokenResult)
    assert tokens.access_token.reveal() == "at_new"
    assert tokens.refresh_token.reveal() == "rt_rotated"
    assert tokens.expires_at is not None and tokens.expires_at > datetime.now(UTC)
    posted = server.seen[0]
    assert posted.method == "POST" and posted.path == "/oauth/token"
    result = check("oauthdemo", base, key=tokens.access_token.reveal())
    assert result.status == "healthy"
    assert result.message == "OAuth Demo connected successfully"


@pytest.mark.parametrize(
    ("refresh", "secret", "outcome"),
    [
        ("rt_revoked", "cs", "oauth_denied"),
        ("rt_denied", "cs", "oauth_denied"),
        ("rt_1", "wrong", "invalid_credentials"),
    ],
)
def test_oauth_token_endpoint_refusals(serve: Any, refresh: str, secret: str, outcome: str) -> None:
    base, _ = serve(oauth_script)
    result = exchange_refresh_token(
        OAUTH, base, Secret("cid"), Secret(secret), Secret(refresh), key="k", policy=FAST
    )
    assert isinstance(result, CheckResult)
    assert result.failure_type == outcome
    assert result.key == "k"
    if outcome == "oauth_denied":
        assert result.message == "Connection was cancelled. You denied access."
    assert refresh not in repr(result)


@pytest.mark.parametrize(
    "key", ["sk_test_\u00e9t\u00e9", "sk_test_a\r\nX-Injected: 1", "sk_test_trailing\n"]
)
def test_a_key_no_header_can_carry_is_invalid_without_being_sent(serve: Any, key: str) -> None:
    base, server = serve(lambda seen, n: js(200, {"id": "acct_1"}))
    result = check("stripe", base, key=key)
    assert (result.failure_type, result.attempts, server.seen) == ("invalid_credentials", 0, [])
    assert key not in repr(result)
