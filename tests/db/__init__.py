"""Tests of the database edge on SQLite and PostgreSQL: migrations, locks, crashes, workers,
statement counts. Shared helpers live here: real `reconciler` subprocesses, generated
fleets of organizations, and a canonical dump of the state to compare databases by."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reconciler.db.schema import (
    AuditEntry,
    Connection,
    Credential,
    Health,
    Instance,
    LockHolder,
    Resource,
)
from tests.conftest import REPO, Env
from tests.faults import BOOTSTRAP

FLEET_SECRETS = {"FLEET_STRIPE_KEY": "sk_test_fleet_0001", "FLEET_POSTMARK_KEY": "pm-fleet-0002"}


def is_postgresql(env: Env) -> bool:
    return env.vars["RECONCILER_DATABASE_URL"].startswith("postgresql")


def spawn(env: Env, *args: str, **extra_env: str) -> subprocess.Popen[str]:
    """`reconciler ARGS` as a real process, in the env's folder, with its variables, and the
    faults of ``tests.faults`` that the variables ask for (RECONCILER_TEST_KILL_POINT...)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    variables = {**base, **env.vars, **extra_env, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", BOOTSTRAP, *args],
        cwd=env.cwd,
        env=variables,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def spawn_at_barrier(
    env: Env, folder: Path, *args: str, point: str = "commit", count: int = 2
) -> tuple[subprocess.Popen[str], Path]:
    """`reconciler ARGS` stopped at the ``count``-th ``point`` (``tests.faults``' barrier in
    ``folder``), once it has arrived there; touch the returned path to let it go on."""
    gate = folder / "barrier"
    gate.mkdir()
    trace = folder / "trace"
    proc = spawn(
        env,
        *args,
        RECONCILER_TEST_BARRIER=f"{point}:{gate}:{count}",
        RECONCILER_TEST_TRACE=str(trace),
    )
    deadline = time.monotonic() + 30
    while "barrier-arrived" not in (trace.read_text() if trace.exists() else ""):
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return proc, gate / "release"


class HoldFirstWrite:
    """A simulator's access log that keeps the answer to the first write (any request but a
    GET) from its client until ``release()``, or ``limit`` seconds: once ``held`` is set,
    that client is inside a provider call, for as long as the test needs."""

    def __init__(self, limit: float = 8.0) -> None:
        self.held = threading.Event()
        self.limit = limit
        self._go = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        if line.startswith("GET "):
            return
        with self._lock:
            first = not self.held.is_set()
            self.held.set()
        if first:
            self._go.wait(self.limit)

    def release(self) -> None:
        self._go.set()


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def organization(name: str, *, postmark: bool = True) -> dict[str, Any]:
    """A small organization: Stripe with a webhook, Postmark with one default sender."""
    owner = f"ops@{name}.example"
    org: dict[str, Any] = {
        "apiVersion": "reconciler/v1",
        "kind": "Organization",
        "metadata": {"name": name},
        "spec": {
            "members": [{"user": owner, "permissions": ["settings.edit"]}],
            "connections": [
                {
                    "provider": "stripe",
                    "owner": owner,
                    "credentials": {"api_key": "${FLEET_STRIPE_KEY}"},
                    "resources": {
                        "webhook_endpoints": [
                            {"url": f"https://{name}.example/hooks", "events": ["invoice.paid"]}
                        ]
                    },
                },
                {
                    "provider": "postmark",
                    "owner": owner,
                    "credentials": {"api_key": "${FLEET_POSTMARK_KEY}"},
                    "resources": {
                        "sender_emails": [
                            {"email": f"billing@{name}.example", "name": name, "default": True}
                        ]
                    },
                },
            ],
        },
    }
    if not postmark:
        org["spec"]["connections"].pop()
    return org


def write_fleet(folder: Path, names: list[str], *, postmark: bool = True) -> Path:
    """One manifest file per organization in a fresh folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in folder.glob("*.yaml"):
        f.unlink()
    for name in names:
        (folder / f"{name}.yaml").write_text(
            yaml.safe_dump(organization(name, postmark=postmark), sort_keys=False)
        )
    return folder


def snapshot(s: Session) -> dict[str, Any]:
    """The state as the SaaS sees it, without ids, timestamps, ciphertexts or nonces."""
    instances = {i.id: (i.organization, i.provider) for i in s.scalars(select(Instance))}
    connections = {c.id: c for c in s.scalars(select(Connection))}
    return {
        "instances": sorted(
            (i.organization, i.provider, i.status, i.managed_by)
            for i in s.scalars(select(Instance))
        ),
        "connections": sorted(
            (*instances[c.instance_id], c.user_email, c.status) for c in connections.values()
        ),
        "credentials": sorted(
            (*instances[connections[c.connection_id].instance_id], c.field, c.key_id)
            for c in s.scalars(select(Credential))
        ),
        "resources": sorted(
            (*instances[r.instance_id], r.kind, r.identity, r.spec, r.is_default)
            for r in s.scalars(select(Resource))
        ),
        "health": sorted(
            (*instances[h.instance_id], h.status, h.message) for h in s.scalars(select(Health))
        ),
        "audit": sorted(
            (a.organization, a.action, a.target) for a in s.scalars(select(AuditEntry))
        ),
    }


def invariants(s: Session) -> None:
    """No duplicates, no credential without a connection, no half-written connection."""
    dupes = [
        select(Instance.organization, Instance.provider)
        .group_by(Instance.organization, Instance.provider)
        .having(func.count() > 1),
        select(Connection.instance_id, Connection.user_email)
        .group_by(Connection.instance_id, Connection.user_email)
        .having(func.count() > 1),
        select(Credential.connection_id, Credential.field)
        .group_by(Credential.connection_id, Credential.field)
        .having(func.count() > 1),
        select(Resource.instance_id, Resource.kind, Resource.identity)
        .group_by(Resource.instance_id, Resource.kind, Resource.identity)
        .having(func.count() > 1),
    ]
    for q in dupes:
        assert s.execute(q).all() == [], q
    orphans = s.scalars(
        select(Credential.id)
        .outerjoin(Connection, Connection.id == Credential.connection_id)
        .where(Connection.id.is_(None))
    ).all()
    assert orphans == []
    for c in s.scalars(select(Connection)):
        has_credentials = s.scalar(
            select(func.count()).select_from(Credential).where(Credential.connection_id == c.id)
        )
        assert c.status != "connected" or has_credentials, f"connection {c.id} has no credential"


def holder_rows(s: Session) -> list[LockHolder]:
    return list(s.scalars(select(LockHolder)))
