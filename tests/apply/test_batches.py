"""Upserts waiting for SQLite's write turn are written together by the writer that gets it:
one transaction for all of them, each thread back with its own organization's result, and
an error of that transaction raised in every one of their threads."""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import text

from reconciler.apply.batches import Combiner, Upsert
from tests.conftest import Env
from tests.e2e.manifests import connection, organization, write


def _job(org: str) -> Upsert:
    return Upsert(org, [], [], checker=None)  # type: ignore[arg-type]


def _waiting(combiner: Combiner, n: int) -> None:
    deadline = time.monotonic() + 5
    while len(combiner._waiting) < n and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(combiner._waiting) == n


def test_the_upserts_waiting_for_the_turn_are_written_in_one_batch() -> None:
    turn = threading.Lock()
    batches: list[tuple[list[str], str]] = []

    def write(batch: list[Upsert], own: Upsert) -> None:
        batches.append(([j.org for j in batch], own.org))
        for j in batch:
            j.ok = True

    combiner = Combiner(turn, write)
    jobs = [_job(f"org{i}") for i in range(4)]
    back: dict[str, Upsert] = {}
    with turn:  # another transaction is being written meanwhile
        threads = [
            threading.Thread(target=lambda j=j: back.update({j.org: combiner.write(j)}))
            for j in jobs
        ]
        for t in threads:
            t.start()
        _waiting(combiner, 4)
    for t in threads:
        t.join(5)
    assert len(batches) == 1
    written, own = batches[0]
    assert sorted(written) == ["org0", "org1", "org2", "org3"]
    assert own in written  # the writing thread's organization is among them
    assert {org: j.ok for org, j in back.items()} == {f"org{i}": True for i in range(4)}
    assert all(j.done for j in jobs)


def test_an_upsert_alone_is_written_alone() -> None:
    calls: list[list[str]] = []
    combiner = Combiner(threading.Lock(), lambda batch, own: calls.append([j.org for j in batch]))
    combiner.write(_job("a"))
    combiner.write(_job("b"))
    assert calls == [["a"], ["b"]]


def test_a_failed_transaction_is_every_organizations_error() -> None:
    turn = threading.Lock()

    def write(batch: list[Upsert], own: Upsert) -> None:
        raise RuntimeError("disk full")

    combiner = Combiner(turn, write)
    errors: dict[str, str] = {}

    def run(job: Upsert) -> None:
        try:
            combiner.write(job)
        except RuntimeError as e:
            errors[job.org] = str(e)

    with turn:
        threads = [threading.Thread(target=run, args=(_job(f"o{i}"),)) for i in range(3)]
        for t in threads:
            t.start()
        _waiting(combiner, 3)
    for t in threads:
        t.join(5)
    assert errors == {"o0": "disk full", "o1": "disk full", "o2": "disk full"}


def test_organizations_written_together_are_each_whole_and_chained(env: Env) -> None:
    """Twelve organizations with a webhook at Stripe (so each is held across its provider
    call): however their upserts were combined, every one is written, once, and the audit
    chain verifies."""
    orgs = [f"org{i:02d}" for i in range(12)]
    hook = {"webhook_endpoints": [{"url": "https://example.com/h", "events": ["charge.failed"]}]}
    write(
        env.cwd / "manifests",
        *(organization(o, [connection("stripe", "STRIPE_KEY", resources=hook)]) for o in orgs),
    )
    keys: dict[str, Any] = {"STRIPE_KEY": "sk_test_acct_1Batch_key0001"}
    r = env.run("apply", "manifests", "--parallelism", "8", **keys)
    assert r.exit_code == 0, r.output
    assert "Apply complete: 24 created." in r.output
    # the new rows of a batch's organizations are inserted together: each has all of its own
    with env.session() as s:
        per_org = s.execute(
            text(
                "SELECT i.organization, count(DISTINCT cr.id), count(DISTINCT h.id),"
                " count(DISTINCT r.id) FROM integration_instances i"
                " JOIN integration_connections c ON c.instance_id = i.id"
                " LEFT JOIN integration_credentials cr ON cr.connection_id = c.id"
                " LEFT JOIN integration_health h ON h.instance_id = i.id AND h.status = 'healthy'"
                " LEFT JOIN integration_resources r ON r.instance_id = i.id"
                " AND r.remote_id IS NOT NULL GROUP BY i.organization"
            )
        ).all()
        pending = s.execute(text("SELECT count(*) FROM reconciler_pending_creates")).scalar()
    assert sorted(per_org) == [(o, 2, 1, 1) for o in orgs]  # the key and the signing secret
    assert pending == 0
    assert env.run("audit", "verify").exit_code == 0
    again = env.run("plan", "manifests", **keys)
    assert "No changes." in again.output, again.output


def test_writers_on_postgresql_share_the_servers_connections_among_the_processes() -> None:
    """Twelve writer threads a process (bigger batches), fewer when several processes share
    the server (``--workers``): 24 in all, each holding a connection; never more than the
    process's share of ``--parallelism`` or its organizations."""
    from types import SimpleNamespace

    from sqlalchemy import create_engine

    from reconciler.apply.batches import writer_count

    pg = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")  # never connected
    plan: Any = SimpleNamespace(
        changes=[SimpleNamespace(remote=("a call",))], organizations=tuple(range(500))
    )
    assert [writer_count(pg, plan, 50, processes=n) for n in (1, 2, 3, 4, 8)] == [12, 12, 8, 6, 3]
    assert writer_count(pg, plan, 5, processes=1) == 5  # the share of --parallelism
    few: Any = SimpleNamespace(changes=plan.changes, organizations=("acme", "globex"))
    assert writer_count(pg, few, 50) == 2
    calls_nothing: Any = SimpleNamespace(changes=[SimpleNamespace(remote=())], organizations=("a",))
    assert writer_count(pg, calls_nothing, 50) == 1
    pg.dispose()
