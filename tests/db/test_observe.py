"""The state a plan reads (``observe``: the driver's tuples) is the state apply reads under an
organization's lock (ORM rows), record for record, on both databases."""

from __future__ import annotations

import dataclasses

from sqlalchemy import select

from reconciler.core.state import ObservedInstance
from reconciler.db.engine import make_engine
from reconciler.db.observe import observe
from reconciler.db.records import OrgRows
from reconciler.db.schema import Connection, Resource
from tests.conftest import Env


def _without_health(inst: ObservedInstance) -> ObservedInstance:
    connections = tuple(dataclasses.replace(c, last_health=None) for c in inst.connections)
    return dataclasses.replace(inst, connections=connections)


def test_observe_reads_what_apply_reads(env: Env) -> None:
    assert env.run("apply").exit_code == 0
    with env.session() as s, s.begin():  # a non-default value of every boolean column
        s.execute(select(Connection)).scalars().first().prevent_destroy = True  # type: ignore[union-attr]
        s.execute(select(Resource)).scalars().first().remote_adopted = True  # type: ignore[union-attr]
    engine = make_engine(env.vars["RECONCILER_DATABASE_URL"])
    observed = observe(engine)
    organizations = sorted({org for org, _ in observed.instances})
    assert organizations
    with env.session() as s:
        for org in organizations:
            assert [_without_health(i) for i in observed.of(org)] == OrgRows.load(s, org).observed()
    # the driver's 0/1 of SQLite become booleans, as the ORM's do; JSON is decoded
    records = [
        (c, r)
        for i in observed.instances.values()
        for c in i.connections
        for r in i.resources or (None,)
    ]
    assert any(c.prevent_destroy for c, _ in records)
    assert any(r is not None and r.remote_adopted for _, r in records)
    for c, r in records:
        assert type(c.prevent_destroy) is bool
        assert isinstance(c.identity, dict)
        if r is not None:
            assert type(r.is_default) is bool
            assert type(r.remote_adopted) is bool
            assert isinstance(r.spec, dict)
    assert observe(engine, organizations[:1]).instances == {
        k: v for k, v in observed.instances.items() if k[0] == organizations[0]
    }
