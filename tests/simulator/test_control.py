"""Counters, run-time revocation, statistics, latency, failure rate, quiet logging, `run`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from reconciler.simulator import Simulator


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as running:
        yield running


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def stripe(http: httpx.Client, sim: Simulator, key: str) -> httpx.Response:
    return http.get(
        sim.base_url("stripe") + "/v1/account", headers={"Authorization": f"Bearer {key}"}
    )


def anthropic(http: httpx.Client, sim: Simulator, key: str) -> httpx.Response:
    return http.get(
        sim.base_url("anthropic") + "/v1/models",
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
    )


def test_ratelimit2_fails_twice_then_succeeds(http: httpx.Client, sim: Simulator) -> None:
    statuses = [stripe(http, sim, "sk_test_ratelimit2").status_code for _ in range(4)]
    assert statuses == [429, 429, 200, 200]


def test_flaky2_is_a_503_twice_then_success(http: httpx.Client, sim: Simulator) -> None:
    statuses = [anthropic(http, sim, "sk-ant-flaky2").status_code for _ in range(3)]
    assert statuses == [503, 503, 200]


def test_counters_are_per_key(http: httpx.Client, sim: Simulator) -> None:
    assert stripe(http, sim, "sk_test_ratelimit2_a").status_code == 429
    assert stripe(http, sim, "sk_test_ratelimit2_b").status_code == 429
    assert stripe(http, sim, "sk_test_ratelimit2_a").status_code == 429
    assert stripe(http, sim, "sk_test_ratelimit2_a").status_code == 200


def test_revoke_and_restore_through_the_object(http: httpx.Client, sim: Simulator) -> None:
    assert stripe(http, sim, "sk_test_live1").status_code == 200
    sim.revoke("sk_test_live1")
    assert stripe(http, sim, "sk_test_live1").status_code == 401
    assert stripe(http, sim, "sk_test_other").status_code == 200
    sim.restore("sk_test_live1")
    assert stripe(http, sim, "sk_test_live1").status_code == 200


def test_revoke_and_restore_over_http(http: httpx.Client, sim: Simulator) -> None:
    key = "pk.runtime"
    mapbox = sim.base_url("mapbox") + "/tokens/v2"
    assert http.post(sim.url + "/_sim/revoke", json={"key": key}).status_code == 200
    assert http.get(mapbox, params={"access_token": key}).json()["code"] == "TokenInvalid"
    assert http.post(sim.url + "/_sim/restore", json={"key": key}).status_code == 200
    assert http.get(mapbox, params={"access_token": key}).json()["code"] == "TokenValid"
    assert http.post(sim.url + "/_sim/revoke", json={}).status_code == 400


def test_stats_count_requests_per_provider_and_path(http: httpx.Client, sim: Simulator) -> None:
    stripe(http, sim, "sk_test_a")
    stripe(http, sim, "sk_test_b")
    anthropic(http, sim, "sk-ant-a")
    stats = http.get(sim.url + "/_sim/stats").json()
    assert stats == {
        "total": 3,
        "providers": {"anthropic": {"/v1/models": 1}, "stripe": {"/v1/account": 2}},
    }
    assert sim.request_count() == 3
    assert sim.request_count("stripe") == 2
    assert sim.request_count("quo") == 0
    http.post(sim.url + "/_sim/reset")
    assert sim.request_count() == 0


def test_latency_is_added_to_every_answer(http: httpx.Client) -> None:
    with Simulator(latency_ms=200) as slow:
        started = time.monotonic()
        assert stripe(http, slow, "sk_test_x").status_code == 200
        assert time.monotonic() - started >= 0.2


def test_failure_rate_answers_a_seeded_fraction_with_the_outage_answer() -> None:
    def statuses(seed: int) -> list[int]:
        with Simulator(failure_rate=0.5, seed=seed) as flaky, httpx.Client() as client:
            url = flaky.base_url("stripe") + "/v1/account"
            headers = {"Authorization": "Bearer sk_test_x"}
            return [client.get(url, headers=headers).status_code for _ in range(40)]

    first = statuses(7)
    assert set(first) == {200, 503}
    assert 5 < first.count(503) < 35
    assert statuses(7) == first


def test_failure_rate_must_be_a_fraction() -> None:
    with pytest.raises(ValueError, match="failure_rate"):
        Simulator(failure_rate=1.5)


def test_env_points_every_provider_at_the_simulator(http: httpx.Client, sim: Simulator) -> None:
    env = sim.env()
    assert env["RECONCILER_BASE_URL_GOOGLE_MAPS"] == sim.url + "/google_maps"
    assert env["RECONCILER_BASE_URL_OAUTHDEMO"] == sim.url + "/oauthdemo"
    assert len(env) == 8
    assert sim.url.startswith("http://127.0.0.1:")


def test_nothing_is_logged(
    http: httpx.Client, sim: Simulator, capfd: pytest.CaptureFixture[str]
) -> None:
    key = "pk.canary-4f2b9c1d"
    http.get(sim.base_url("mapbox") + "/tokens/v2", params={"access_token": key})
    http.get(sim.base_url("mapbox") + "/nothing", params={"access_token": key})
    out, err = capfd.readouterr()
    assert key not in out + err


def test_the_access_log_leaves_out_query_strings(http: httpx.Client) -> None:
    lines: list[str] = []
    with Simulator(access_log=lines.append) as sim:
        http.get(sim.base_url("mapbox") + "/tokens/v2", params={"access_token": "pk.canary"})
    assert lines == ["GET /mapbox/tokens/v2 200"]


def test_run_prints_the_url_and_export_lines_and_serves() -> None:
    code = "from reconciler.simulator import run; run('127.0.0.1', 0)"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in first
        exports = [proc.stdout.readline().strip() for _ in range(8)]
        assert all(line.startswith("export RECONCILER_BASE_URL_") for line in exports)
        stripe_url = next(x for x in exports if "_STRIPE=" in x).split("=", 1)[1]
        response = httpx.get(stripe_url + "/v1/account", headers={"Authorization": "Bearer k"})
        assert response.status_code == 200
        assert proc.stdout.readline().strip() == "GET /stripe/v1/account 200"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == 0
