"""The reads a plan sends while parsing are taken only where they are the very read it needs
(same connection, kinds, scopes and key values); any other is sent then."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.commands.provider_side import Prefetch
from reconciler.core.catalog import Catalog, load_catalog
from reconciler.core.manifest import load_manifests
from reconciler.core.secret import Secret
from reconciler.core.state import Observed
from reconciler.providers.refresh import RefreshRequest
from reconciler.simulator import Simulator
from tests.e2e.manifests import connection, organization, write

HOOK = {"webhook_endpoints": [{"url": "https://example.com/hooks", "events": ["charge.failed"]}]}
KEYS = {"A_STRIPE": "sk_test_acct_1PrefA_key0001", "B_STRIPE": "sk_test_acct_1PrefB_key0001"}


@pytest.fixture
def access() -> Iterator[tuple[Simulator, list[str]]]:
    lines: list[str] = []
    with Simulator(access_log=lines.append) as sim:
        yield sim, lines


def _prefetched(
    tmp_path: Path, catalog: Catalog, environ: dict[str, str], admits: set[str]
) -> tuple[Prefetch, dict[tuple[str, str], RefreshRequest]]:
    write(
        tmp_path,
        organization("a", [connection("stripe", "A_STRIPE", resources=HOOK)]),
        organization("b", [connection("stripe", "B_STRIPE", resources=HOOK)]),
    )
    prefetch = Prefetch(
        catalog,
        Observed(exists=False),
        environ=environ,
        parallelism=4,
        admits=admits.__contains__,
    )
    _, diags = load_manifests([tmp_path], catalog, environ, on_organization=prefetch.organization)
    assert not diags.errors
    return prefetch, {k: request for k, (request, _) in prefetch.sent.items()}


def test_the_same_read_is_taken_a_different_one_is_sent(
    tmp_path: Path, access: tuple[Simulator, list[str]]
) -> None:
    sim, lines = access
    catalog = load_catalog()
    environ = {**sim.env(), **KEYS}
    prefetch, sent = _prefetched(tmp_path, catalog, environ, {"a", "b"})
    try:
        assert sorted(sent) == [("a", "stripe"), ("b", "stripe")]
        same = replace(sent[("a", "stripe")], credentials={"api_key": Secret(KEYS["A_STRIPE"])})
        rotated = replace(
            sent[("b", "stripe")], credentials={"api_key": Secret("sk_test_acct_1PrefB_key0002")}
        )
        results = prefetch.read([same, rotated])
    finally:
        prefetch.close()
    assert [r.key for r in results] == [("a", "stripe"), ("b", "stripe")]
    assert all(r.error is None for r in results)
    reads = [line for line in lines if line.startswith("GET /stripe/v1/webhook_endpoints")]
    # a's read was the one sent while parsing; b's was sent again with the rotated key
    assert len(reads) == 3, lines


def test_organizations_outside_the_selection_are_not_read(
    tmp_path: Path, access: tuple[Simulator, list[str]]
) -> None:
    sim, lines = access
    environ = {**sim.env(), **KEYS}
    prefetch, sent = _prefetched(tmp_path, load_catalog(), environ, {"b"})
    try:
        assert list(sent) == [("b", "stripe")]
        prefetch.read([sent[("b", "stripe")]])
    finally:
        prefetch.close()
    assert sum("webhook_endpoints" in line for line in lines) == 1, lines
