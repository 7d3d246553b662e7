"""Apply's provider side (SPEC section 8): carrying out a resource change's ``remote`` steps
while the organization is held, and what the rows remember of them.

The provider is called first, outside any write transaction (the organization's lock is held
across the calls and the transaction that records them, so the database's write lock is not
held while a provider answers); only when it answered does the resource row change, in the same
transaction as the signing secret it returned (an ``integration_credentials`` row of the
connection, encrypted, whose ``field`` names the resource). A failure leaves the row as it
was, so the next plan proposes the same step again. Stripe creates carry the deterministic
Idempotency-Key (``reconciler.core.remote.idempotency_key``): a re-run after a crash between
Stripe's answer and the commit gets the same endpoint and secret back.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete
from sqlalchemy.orm import Session

from reconciler.apply.sends import Send, credentials_for
from reconciler.core.catalog import Catalog
from reconciler.core.changes import Change, ConnectionSpec
from reconciler.core.remote import (
    RemoteAction,
    RemoteChange,
    RemoteObject,
    signing_secret_field,
)
from reconciler.core.secret import Secret
from reconciler.crypto import CredentialAddress, KeyRing
from reconciler.db.bulk import insert_rows, table_of
from reconciler.db.records import OrgRows
from reconciler.db.schema import Connection, Credential, PendingCreate
from reconciler.health import RetryPolicy
from reconciler.health.limits import RateLimits

if TYPE_CHECKING:  # the provider clients load the HTTP stack when the first call is made
    import httpx

    from reconciler.providers.effects import Effect

PAST = {
    RemoteAction.CREATE: "created",
    RemoteAction.UPDATE: "updated in place",
    RemoteAction.REPLACE: "deleted and re-created",
    RemoteAction.DELETE: "deleted",
    RemoteAction.ADOPT: "adopted",
}


@dataclass(frozen=True)
class Outcome:
    """What the provider did for one resource change: its effects in order, or the error
    (a secret-free message) that stopped them."""

    effects: tuple[Effect, ...]
    error: str | None = None

    @property
    def secret(self) -> Secret | None:
        return next((e.secret for e in reversed(self.effects) if e.secret is not None), None)

    @property
    def object(self) -> RemoteObject | None:
        kept = [e for e in self.effects if e.change.action is not RemoteAction.DELETE]
        return kept[-1].object if kept else None


def say(outcome: Outcome, display: str) -> str:
    """Apply's result words: "created at Stripe (we_…)", "updated in place at Postmark"."""
    parts = []
    for e in outcome.effects:
        rid = e.object.remote_id if e.object is not None else e.change.remote_id
        if e.change.action is RemoteAction.DELETE and not e.called:
            parts.append(f"already gone at {display}: forgotten")
            continue
        if e.change.action is RemoteAction.ADOPT and not e.called:
            parts.append(f"adopted at {display} ({rid}) as it is")
            continue
        parts.append(f"{PAST[e.change.action]} at {display}" + (f" ({rid})" if rid else ""))
    if outcome.secret is not None:
        parts.append("its new signing secret is stored encrypted")
    return "; ".join(parts)


class ProviderCalls:
    """Sends a change's remote steps with one connection's credentials; one per apply run (the
    rate limits are shared by every organization of the run). Each writer thread has one event
    loop and one connection pool for all of its calls (``close`` ends them all, once the
    writers have finished): a loop and a pool per change cost more CPU than the change's
    requests, and a new TCP connection each."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        policy: RetryPolicy,
        environ: Mapping[str, str],
        limits: RateLimits | None = None,
    ) -> None:
        self.catalog, self.policy, self.environ = catalog, policy, environ
        self.limits = limits or RateLimits()
        # thread id -> that thread's loop and pool
        self._opened: dict[int, tuple[asyncio.AbstractEventLoop, httpx.AsyncClient]] = {}
        self._lock = threading.Lock()

    def run(self, organization: str, change: Change, credentials: Mapping[str, Secret]) -> Outcome:
        """Carry out the change's steps, on the calling thread's loop and pool."""
        loop, client = self._loop_and_pool()
        return loop.run_until_complete(self._run(organization, change, credentials, client))

    def _loop_and_pool(self) -> tuple[asyncio.AbstractEventLoop, httpx.AsyncClient]:
        me = threading.get_ident()
        with self._lock:
            opened = self._opened.get(me)
        if opened is None:
            from reconciler.providers import provider_client

            opened = (asyncio.new_event_loop(), provider_client(self.policy))
            with self._lock:
                self._opened[me] = opened
        return opened

    def run_all(self, organization: str, sends: list[Send]) -> dict[str, Outcome]:
        """Carry out several changes of one organization (address -> outcome): the changes of
        different providers side by side, those of one provider one after another, in order."""
        if not sends:
            return {}
        loop, client = self._loop_and_pool()
        return loop.run_until_complete(self._run_all(organization, sends, client))

    async def _run_all(
        self, organization: str, sends: list[Send], client: httpx.AsyncClient
    ) -> dict[str, Outcome]:
        by_provider: dict[str, list[Send]] = {}
        for send in sends:
            by_provider.setdefault(send.change.provider, []).append(send)
        out: dict[str, Outcome] = {}

        async def one_provider(batch: list[Send]) -> None:
            for send in batch:
                out[send.change.address] = await self._run(
                    organization, send.change, send.credentials, client
                )

        await asyncio.gather(*(one_provider(b) for b in by_provider.values()))
        return out

    def close(self) -> None:
        """End every thread's connection pool and event loop (once no call runs)."""
        with self._lock:
            opened, self._opened = list(self._opened.values()), {}
        for loop, client in opened:
            try:
                loop.run_until_complete(client.aclose())
            finally:
                loop.close()

    async def _run(
        self,
        organization: str,
        change: Change,
        credentials: Mapping[str, Secret],
        client: httpx.AsyncClient,
    ) -> Outcome:
        from reconciler.providers import ProviderError, open_writes
        from reconciler.providers.effects import carry_out

        provider = self.catalog.providers[change.provider]
        done: list[Effect] = []
        writes = open_writes(
            provider,
            credentials,
            client=client,
            limits=self.limits,
            policy=self.policy,
            environ=self.environ,
        )
        for rc in change.remote:
            kind = provider.resource_kind(rc.kind)
            assert kind is not None
            try:
                done.append(await carry_out(writes, rc, organization=organization, kind=kind))
            except ProviderError as e:
                return Outcome(tuple(done), str(e))
            except ValueError as e:
                return Outcome(tuple(done), str(e))
        return Outcome(tuple(done))


# a resource row's provider-side columns before any provider call: a new row carries them all,
# so an organization's new resources are one INSERT whether their providers were called or not
NOT_AT_PROVIDER: Mapping[str, Any] = {
    "remote_id": None,
    "remote_generation": 0,
    "remote_replaces": None,
    "remote_adopted": False,
}


def remembered(outcome: Outcome) -> dict[str, Any]:
    """The resource row's provider-side columns after ``outcome`` (empty: unchanged)."""
    out: dict[str, Any] = {}
    for e in outcome.effects:
        rc: RemoteChange = e.change
        if rc.action in (RemoteAction.CREATE, RemoteAction.REPLACE) and e.object is not None:
            out.update(
                remote_id=e.object.remote_id,
                remote_generation=rc.generation,
                remote_replaces=rc.replaces,
                remote_adopted=False,
            )
        elif rc.action is RemoteAction.ADOPT and e.object is not None:
            out.update(remote_id=e.object.remote_id, remote_adopted=True)
    return out


def secret_row(
    keyring: KeyRing,
    *,
    connection_id: int,
    organization: str,
    provider: str,
    owner: str,
    kind: str,
    identity: str,
    secret: Secret,
    now: datetime,
) -> dict[str, Any]:
    """The ``integration_credentials`` row that holds a resource's signing secret, encrypted
    for its address like any credential (rotated by ``keys rotate`` with the others)."""
    name = signing_secret_field(kind, identity)
    addr = CredentialAddress(organization, provider, owner, name)
    value = secret.reveal()
    envelope = keyring.encrypt(value, addr)
    return {
        "connection_id": connection_id,
        "field": name,
        "ciphertext": envelope,
        "key_id": keyring.key_id_of(envelope),
        "fingerprint": keyring.fingerprint(value, addr),
        "fingerprint_key_id": keyring.primary_id,
        "expires_at": None,
        "created_at": now,
    }


class ProviderSideWriter:
    """``OrgWriter``'s provider side: the credentials a change is sent with, and the signing
    secret rows. The attributes are ``OrgWriter``'s."""

    s: Session
    rows: OrgRows
    catalog: Catalog
    keyring: KeyRing
    secrets: Mapping[str, Secret]
    calls: ProviderCalls | None
    outcomes: Mapping[str, Outcome]
    connections: dict[str, ConnectionSpec]
    now: datetime
    _new: dict[type, list[dict[str, Any]]]
    _settled: list[dict[str, str]]  # pending creates the provider answered (SETTLE's keys)

    def _display(self, ch: Change) -> str:
        return self.catalog.providers[ch.provider].display_name

    def _at_provider(self, ch: Change) -> Outcome:
        """What the provider did for the change: sent before this transaction began
        (``outcomes``), or else now, with the connection's credentials."""
        done = self.outcomes.get(ch.address)
        if done is not None:
            return done
        if self.calls is None:
            return Outcome((), "the provider side is not written by this command")
        creds = credentials_for(ch, self.rows, self.connections, self.secrets, self.keyring)
        return self.calls.run(ch.organization, ch, creds)

    def _owner_row(self, ch: Change) -> Connection | None:
        inst = self.rows.instances.get(ch.provider)
        return self.rows.managed(inst) if inst is not None else None

    def _store_secret(self, ch: Change, secret: Secret) -> None:
        """The signing secret the provider returned, in this same transaction."""
        spec = ch.resource
        row = self._owner_row(ch)
        assert spec is not None and row is not None, "a secret is stored with its connection"
        self._forget_secret(ch)
        self._new[Credential].append(
            secret_row(
                self.keyring,
                connection_id=row.id,
                organization=ch.organization,
                provider=ch.provider,
                owner=row.user_email,
                kind=spec.kind,
                identity=spec.identity,
                secret=secret,
                now=self.now,
            )
        )

    def _secret_of(self, outcome: Outcome) -> Secret | None:
        """The signing secret to store: the one the provider issued, or for an adopted object
        the one its entry names (``signing_secret: ${VAR}``); adopting never rotates one."""
        if outcome.secret is not None:
            return outcome.secret
        environ = self.calls.environ if self.calls is not None else {}
        for e in outcome.effects:
            var = e.change.secret_variable
            if e.change.action is RemoteAction.ADOPT and var and environ.get(var):
                return Secret(environ[var], var)
        return None

    def _recorded(self, ch: Change, outcome: Outcome) -> None:
        """The provider's answer is in this transaction: its pending create goes with it
        (deleted at ``finish``, one statement for the organization)."""
        for provider, kind, identity in {
            (e.change.provider, e.change.kind, e.change.identity) for e in outcome.effects
        }:
            self._settled.append({"o": ch.organization, "p": provider, "k": kind, "i": identity})

    def _forget_secret(self, ch: Change) -> None:
        spec = ch.resource
        row = self._owner_row(ch)
        if spec is None or row is None:
            return
        name = signing_secret_field(spec.kind, spec.identity)
        held = self.rows.credentials.get(row.id, [])
        for cr in [c for c in held if c.field == name]:
            self.s.delete(cr)
            held.remove(cr)
        self._new[Credential] = [
            r
            for r in self._new[Credential]
            if not (r["connection_id"] == row.id and r["field"] == name)
        ]


def remote_details(outcome: Outcome | None) -> dict[str, Any]:
    """An audit entry's account of what the provider did (ids and actions; never a secret)."""
    if outcome is None:
        return {}
    return {
        "at_provider": [
            {
                "action": e.change.action.value,
                "remote_id": e.object.remote_id if e.object is not None else e.change.remote_id,
                "source": e.change.source.value,
                "called": e.called,
            }
            for e in outcome.effects
        ]
    }


def unsafe_creates(catalog: Catalog, changes: list[Change]) -> list[RemoteChange]:
    """Creates the provider cannot replay (no Idempotency-Key: Postmark, Quo): each is
    committed as pending before it is sent, so a crash after the provider answered leaves a
    trace and the next plan takes the object as ours instead of making a second one."""
    out = []
    for c in changes:
        provider = catalog.providers[c.provider]
        for rc in c.remote:
            kind = provider.resource_kind(rc.kind)
            idempotent = (
                kind is not None and kind.remote is not None and kind.remote.idempotency_key
            )
            if rc.action in (RemoteAction.CREATE, RemoteAction.REPLACE) and not idempotent:
                out.append(rc)
    return out


def write_pending(s: Session, organization: str, steps: list[RemoteChange], now: datetime) -> None:
    if steps:  # a pending create left by an earlier run is replaced
        s.execute(
            SETTLE,
            [{"o": organization, "p": rc.provider, "k": rc.kind, "i": rc.identity} for rc in steps],
        )
    insert_rows(
        s,
        _PENDING,
        [
            {
                "organization": organization,
                "provider": rc.provider,
                "kind": rc.kind,
                "identity": rc.identity,
                "generation": rc.generation,
                "replaces": rc.replaces,
                "created_at": now,
            }
            for rc in steps
        ],
    )


_PENDING = table_of(PendingCreate)
# the pending creates of answered steps, many at once (executemany; keys as ``_recorded``'s)
SETTLE = delete(_PENDING).where(
    _PENDING.c.organization == bindparam("o"),
    _PENDING.c.provider == bindparam("p"),
    _PENDING.c.kind == bindparam("k"),
    _PENDING.c.identity == bindparam("i"),
)
