"""Where credentials are sent: https catalog origins only, no redirects followed (the key is not
sent on), no proxies from the environment, and overrides announced by `plan` and `status`."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import CATALOG, Env

STRIPE_ONLY = """apiVersion: reconciler/v1
kind: Organization
metadata:
  name: globex
spec:
  members:
    - user: admin@globex.example
      permissions: [settings.edit]
  connections:
    - provider: stripe
      owner: admin@globex.example
      credentials:
        api_key: ${GLOBEX_STRIPE_SECRET_KEY}
"""
UNREACHABLE = "Could not reach Stripe. The service may be temporarily unavailable."


class Recorder:
    """A test server on 127.0.0.1 that records each request and answers with ``answer``."""

    def __init__(self, answer: tuple[int, dict[str, str]]) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                recorder.requests.append((self.command, self.path, dict(self.headers)))
                status, headers = answer
                self.send_response(status)
                for k, v in {**headers, "Content-Length": "0"}.items():
                    self.send_header(k, v)
                self.end_headers()

            do_GET = do_POST = do_CONNECT = _any

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def servers() -> Iterator[list[Recorder]]:
    made: list[Recorder] = []
    yield made
    for r in made:
        r.close()


def stripe_only(env: Env) -> None:
    for f in (env.cwd / "manifests").iterdir():
        f.unlink()
    (env.cwd / "manifests" / "globex.yaml").write_text(STRIPE_ONLY)


def test_http_base_url_is_refused_at_load_with_file_and_field(env: Env, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    shutil.copytree(CATALOG, catalog)
    path = catalog / "stripe.yaml"
    path.write_text(
        path.read_text().replace(
            "base_url: https://api.stripe.com", "base_url: http://api.stripe.com"
        )
    )
    for command in ("validate", "plan", "apply", "catalog"):
        r = env.run(command, "--catalog", str(catalog))
        assert r.exit_code == 1, r.output
        assert "stripe.yaml" in r.output and "base_url" in r.output and "https" in r.output
        assert "Traceback" not in r.output


def test_redirect_is_unreachable_and_the_key_is_not_sent_on(
    env: Env, servers: list[Recorder]
) -> None:
    second = Recorder((200, {"Content-Type": "application/json"}))
    servers.append(second)
    first = Recorder((302, {"Location": f"{second.url}/v1/account"}))
    servers.append(first)
    stripe_only(env)
    r = env.run("apply", RECONCILER_BASE_URL_STRIPE=first.url)
    assert r.exit_code == 1, r.output
    assert UNREACHABLE in r.output
    assert len(first.requests) >= 1 and first.requests[0][1] == "/v1/account"
    assert second.requests == []
    for redirect in (301, 303, 307, 308):
        again = Recorder((redirect, {"Location": f"{second.url}/v1/account"}))
        servers.append(again)
        r = env.run("apply", RECONCILER_BASE_URL_STRIPE=again.url)
        assert r.exit_code == 1 and UNREACHABLE in r.output
    assert second.requests == []


def test_proxies_from_the_environment_are_ignored(env: Env, servers: list[Recorder]) -> None:
    proxy = Recorder((200, {}))
    servers.append(proxy)
    stripe_only(env)
    r = env.run(
        "apply",
        HTTP_PROXY=proxy.url,
        HTTPS_PROXY=proxy.url,
        ALL_PROXY=proxy.url,
        http_proxy=proxy.url,
        https_proxy=proxy.url,
        NO_PROXY="",
    )
    assert r.exit_code == 0, r.output
    assert proxy.requests == []


def test_plan_and_status_say_when_an_override_is_in_effect(env: Env) -> None:
    url = env.vars["RECONCILER_BASE_URL_STRIPE"]
    r = env.run("plan")
    assert r.exit_code == 0
    sim = url.removesuffix("/stripe")
    note = "Note: health checks and API calls of anthropic, geoapify, google_maps, mapbox, "
    assert f"{note}postmark, quo, stripe go to {sim}/<provider>" in r.stdout
    assert r.stdout.count("Note: ") == 1
    data = json.loads(env.run("plan", "--format", "json").stdout)
    assert data["overrides"]["stripe"] == url
    assert env.run("apply").exit_code == 0
    r = env.run("status")
    assert f"{note}postmark, quo, stripe go to {sim}/<provider>" in r.stdout
    r = env.run("plan", RECONCILER_BASE_URL_STRIPE="")
    assert "API calls of anthropic, geoapify, google_maps, mapbox, postmark, quo go to" in r.stdout
    assert "stripe" not in r.stdout.split("\n")[0]
