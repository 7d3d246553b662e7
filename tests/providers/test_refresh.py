"""Reading the provider side: the kinds of one connection are read at the same time, within
the run's parallelism, and a kind that fails fails its connection only."""

from __future__ import annotations

import asyncio
import time

import httpx

from reconciler.core.catalog import Catalog
from reconciler.core.secret import Secret
from reconciler.health.limits import RateLimits
from reconciler.providers.refresh import (
    InterleavedReads,
    RefreshRequest,
    RefreshResult,
    refresh_one,
)
from reconciler.simulator import Simulator
from tests.netfaults import BlackHole

NUMBERS = {"data": [{"id": "PN1", "number": "+15555550100", "name": "Support"}]}


def quo(catalog: Catalog, key: str = "quo-refresh") -> RefreshRequest:
    return RefreshRequest(("acme", "quo"), catalog.providers["quo"], {"api_key": Secret(key, "K")})


def test_the_kinds_of_one_connection_are_read_at_the_same_time(catalog: Catalog) -> None:
    """Neither of Quo's two lists is answered until both were asked: read one after the
    other, the first would wait for the second forever (the test would fail at its bound)."""
    asked: list[str] = []
    both = asyncio.Event()

    async def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        if len(asked) == 2:
            both.set()
        await both.wait()
        body = NUMBERS if request.url.path == "/v1/phone-numbers" else {"data": []}
        return httpx.Response(200, json=body)

    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            result = await asyncio.wait_for(
                refresh_one(
                    quo(catalog),
                    client=client,
                    limits=RateLimits(private=True),
                    gate=asyncio.Semaphore(2),
                    environ={},
                ),
                timeout=30,
            )
        assert result.error is None
        assert [o.identity for o in result.objects["phone_numbers"]] == ["+15555550100"]
        assert result.objects["webhooks"] == ()

    asyncio.run(main())
    assert sorted(asked) == ["/v1/phone-numbers", "/v1/webhooks"]


def test_a_gate_of_one_reads_one_kind_at_a_time(catalog: Catalog) -> None:
    in_flight, most = 0, 0

    async def answer(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0)
        in_flight -= 1
        return httpx.Response(200, json={"data": []})

    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            result = await refresh_one(
                quo(catalog),
                client=client,
                limits=RateLimits(private=True),
                gate=asyncio.Semaphore(1),
                environ={},
            )
        assert result.error is None

    asyncio.run(main())
    assert most == 1


def test_one_failing_kind_fails_its_connection_with_the_reason(
    catalog: Catalog, sim: Simulator, access: list[str]
) -> None:
    """Quo refuses the key: the connection has the error (with its status) and no objects;
    both reads were sent and ran to their end (none left behind)."""

    async def main() -> RefreshResult:
        async with httpx.AsyncClient() as client:
            return await refresh_one(
                quo(catalog, "quo-invalid-key"),
                client=client,
                limits=RateLimits(private=True),
                environ=sim.env(),
            )

    result = asyncio.run(main())
    assert result.error is not None and result.error.status == 401
    assert result.objects == {}
    assert sorted(line.split()[1] for line in access) == [
        "/quo/v1/phone-numbers",
        "/quo/v1/webhooks",
    ]


def test_interleaved_reads_go_on_between_the_callers_steps(
    catalog: Catalog, sim: Simulator, access: list[str]
) -> None:
    """Sent at a pump, answered while the caller waits; results in the order asked."""
    with InterleavedReads(parallelism=2, environ=sim.env()) as reads:
        first = reads.submit(quo(catalog, "quo-one"))
        second = reads.submit(quo(catalog, "quo-invalid-key"))
        assert access == []  # nothing goes out until the loop runs
        deadline = time.monotonic() + 10
        while not access and time.monotonic() < deadline:
            reads.pump()
            time.sleep(0.005)
        assert access, "a pump sent nothing"
        got = reads.wait([second, first])
    assert got[0].error is not None and got[0].error.status == 401
    assert got[1].error is None and got[1].key == ("acme", "quo")
    assert len(access) == 4


def test_interleaved_reads_left_unanswered_are_given_up_at_close(catalog: Catalog) -> None:
    """A provider that never answers: close returns at once and leaves no task pending
    (the warning filter would fail the test on one destroyed while pending)."""
    hole = BlackHole()
    try:
        environ = {"RECONCILER_BASE_URL_QUO": f"http://127.0.0.1:{hole.port}"}
        reads = InterleavedReads(parallelism=2, environ=environ)
        tasks = [reads.submit(quo(catalog, f"quo-key-{i}")) for i in range(3)]
        for _ in range(20):
            reads.pump()
        started = time.monotonic()
        reads.close()
        assert time.monotonic() - started < 5
        assert all(t.done() for t in tasks)
        reads.close()  # twice is harmless
    finally:
        hole.close()
