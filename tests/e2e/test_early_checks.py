"""Apply checks the new keys while its plan reads the provider side, and never twice.

A proxy in front of the simulator's Stripe holds each read of the webhook endpoints until
the check of the same organization's key has come through (or five seconds have passed):
apply that sent its checks only after the plan would wait out every hold."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from sqlalchemy import text

from reconciler.simulator import Simulator
from tests.conftest import Env
from tests.e2e.manifests import stripe_fleet

ORGS = [f"org{i:02d}" for i in range(6)]
HOLD = 5.0


class HoldingProxy:
    """Forwards to ``upstream``; a GET of the webhook endpoints waits until a GET of
    ``/v1/account`` with the same Authorization went through (at most ``HOLD`` seconds)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.checked: dict[str, threading.Event] = {}
        self.lock = threading.Lock()
        self.held_without_check = 0
        self.paths: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                proxy.forward(self, "GET")

            def do_POST(self) -> None:
                proxy.forward(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _event(self, key: str) -> threading.Event:
        with self.lock:
            return self.checked.setdefault(key, threading.Event())

    def forward(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        key = handler.headers.get("Authorization", "")
        path = handler.path.split("?", 1)[0]
        with self.lock:
            self.paths.append(f"{method} {path}")
        read = method == "GET" and path == "/v1/webhook_endpoints"
        if read and not self._event(key).wait(HOLD):
            with self.lock:
                self.held_without_check += 1
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        headers = {k: v for k, v in handler.headers.items() if k.lower() != "host"}
        got = httpx.request(
            method, self.upstream + handler.path, headers=headers, content=body, timeout=10
        )
        if method == "GET" and path == "/v1/account":
            self._event(key).set()
        handler.send_response(got.status_code)
        for k, v in got.headers.items():
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                handler.send_header(k, v)
        handler.send_header("Content-Length", str(len(got.content)))
        handler.end_headers()
        handler.wfile.write(got.content)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(sim: Simulator) -> Iterator[HoldingProxy]:
    p = HoldingProxy(sim.base_url("stripe"))
    yield p
    p.close()


def _fleet(env: Env) -> None:
    stripe_fleet(env.cwd / "manifests", ORGS)


def _keys() -> dict[str, str]:
    keys = {f"{org.upper()}_STRIPE": f"sk_test_acct_1{org}Early_key0001" for org in ORGS}
    return {**keys, "GEOAPIFY_KEY": "good_geoapify_key12345"}


@pytest.mark.parametrize("workers", ["1", "2"])
def test_checks_go_out_while_the_plan_reads_the_provider_side(
    env: Env, proxy: HoldingProxy, workers: str
) -> None:
    """In one process or two: the second gets the results of its organizations' checks."""
    _fleet(env)
    started = time.monotonic()
    r = env.run(
        "apply",
        "manifests",
        "--parallelism",
        "4",
        "--workers",
        workers,
        RECONCILER_BASE_URL_STRIPE=f"http://127.0.0.1:{proxy.port}",
        **_keys(),
    )
    took = time.monotonic() - started
    assert r.exit_code == 0, r.output
    # every read was let through by its organization's check: the checks did not wait for
    # the plan (else each read would have been held HOLD seconds)
    assert proxy.held_without_check == 0, (proxy.held_without_check, took)
    # each key checked once: the check sent during the plan is apply's check
    assert proxy.paths.count("GET /v1/account") == len(ORGS), proxy.paths
    assert proxy.paths.count("POST /v1/webhook_endpoints") == len(ORGS), proxy.paths
    with env.session() as s:
        rows = s.execute(
            text(
                "SELECT i.provider, h.status, count(*) FROM integration_health h"
                " JOIN integration_instances i ON i.id = h.instance_id GROUP BY 1, 2"
            )
        ).all()
    assert sorted(rows) == [("geoapify", "healthy", len(ORGS)), ("stripe", "healthy", len(ORGS))]


def test_a_failed_check_sent_during_the_plan_fails_its_connection_once(
    env: Env, proxy: HoldingProxy
) -> None:
    _fleet(env)
    keys = _keys()
    keys["ORG00_STRIPE"] = "sk_test_revoked_key_0001"
    r = env.run(
        "apply",
        "manifests",
        "--parallelism",
        "4",
        RECONCILER_BASE_URL_STRIPE=f"http://127.0.0.1:{proxy.port}",
        **keys,
    )
    assert r.exit_code == 1, r.output
    assert proxy.paths.count("GET /v1/account") == len(ORGS), proxy.paths
    with env.session() as s:
        rows = dict(
            s.execute(
                text(
                    "SELECT organization, status FROM integration_instances"
                    " WHERE provider = 'stripe'"
                )
            ).all()
        )
    assert rows == {org: "error" if org == "org00" else "active" for org in ORGS}
    assert "org00/stripe: The API key you entered is invalid." in r.output, r.output
