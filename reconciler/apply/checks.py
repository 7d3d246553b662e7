"""Phase 1 of apply: prepare every new credential and check it with its provider.

Credentials are encrypted and decrypted again before the check, so the check uses exactly
what will be stored. Dependencies are checked first (waves); a dependent whose dependency
failed is blocked. Resource values the catalog does not list (catalog ``verify``, e.g. a model
id) are asked about in the same wave as their connection. ``on_done`` is told each address
whose verdict is final, so its organization can be written while other checks go on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from reconciler.apply.results import ApplyOptions
from reconciler.apply.rows import token_envelopes
from reconciler.core.catalog import Catalog, Provider, ResourceField
from reconciler.core.changes import Action, Attr, Change, ConnectionSpec, Kind, Plan, ResourceSpec
from reconciler.core.endpoints import base_url_for
from reconciler.core.secret import Secret
from reconciler.crypto import CredentialAddress, KeyRing
from reconciler.db.credentials import decrypt, managed_credentials
from reconciler.health import (
    Breakers,
    CheckRequest,
    CheckResult,
)

VERIFY = "verify:"  # prefix of the keys of value probes, beside connection addresses


def needs_check(change: Change) -> bool:
    """A connection is checked when it is new, taken over, reactivated, or gets a new owner
    or credential, and is active."""
    conn = change.connection
    if change.kind is not Kind.CONNECTION or conn is None or not conn.active:
        return False
    if change.action is Action.ADOPT and conn.keep_credentials:
        # credentials: keep: adopting checks nothing new (the stored credentials stay; they
        # may not even be ours to decrypt). See reconciler/core/kept_credentials.py.
        return False
    if change.action in (Action.CREATE, Action.ADOPT):
        return True
    return change.action is Action.UPDATE and bool(
        change.changed & {Attr.OWNER, Attr.ACTIVE, Attr.CREDENTIALS}
    )


def uses_new_credentials(change: Change) -> bool:
    conn = change.connection
    if conn is not None and conn.keep_credentials:
        return False  # credentials: keep: the stored ones stay, whatever else changes
    return change.action in (Action.CREATE, Action.ADOPT) or bool(
        change.changed & {Attr.OWNER, Attr.CREDENTIALS}
    )


@dataclass
class CheckPhase:
    """Verdicts by address, filled as checks come back."""

    results: dict[str, CheckResult] = field(default_factory=dict)  # connection address
    blocked: dict[str, str] = field(default_factory=dict)  # address -> failed dependency
    envelopes: dict[str, dict[str, str]] = field(default_factory=dict)  # to store
    expiry: dict[str, datetime | None] = field(default_factory=dict)  # OAuth2 access token
    rejected: dict[str, str] = field(default_factory=dict)  # resource address -> why


class Checker:
    def __init__(
        self,
        engine: Engine,
        catalog: Catalog,
        secrets: Mapping[str, Secret],
        keyring: KeyRing,
        options: ApplyOptions,
        on_done: Callable[[str], None],
    ) -> None:
        self.engine = engine
        self.catalog = catalog
        self.secrets = secrets  # environment variable -> value, for the plan's credentials
        self.keyring = keyring
        self.options = options
        self.on_done = on_done
        self.phase = CheckPhase()
        self._values: dict[str, dict[str, Secret]] = {}
        self._labels: dict[str, tuple[str, str]] = {}

    # -- what has to be asked ----------------------------------------------------------------

    def connection_work(self, plan: Plan) -> dict[str, tuple[Change, ConnectionSpec]]:
        """Connections the plan creates, updates or adopts, with what the manifest wants."""
        todo = {}
        for ch in plan.changes:
            conn = ch.connection
            if ch.kind is Kind.CONNECTION and conn is not None:
                todo[ch.address] = (ch, conn)
        return todo

    def probe_work(self, plan: Plan) -> dict[str, tuple[Change, ResourceField, str]]:
        """Resource changes whose value the provider must confirm, by resource address."""
        out = {}
        for ch in plan.changes:
            after = ch.after
            if not isinstance(after, ResourceSpec) or ch.action not in (
                Action.CREATE,
                Action.UPDATE,
            ):
                continue
            kind = self.catalog.providers[ch.provider].resource_kind(after.kind)
            if kind is None:
                continue
            fields = [kind.value] if kind.value is not None else list(kind.fields)
            for f in fields:
                if f is None or f.verify is None:
                    continue
                value = after.spec.get("value" if kind.value is not None else f.name)
                if isinstance(value, str) and value not in (f.values or []):
                    out[ch.address] = (ch, f, value)
        return out

    def pending(self, plan: Plan) -> dict[str, set[str]]:
        """Per organization, the addresses whose verdict is still to come."""
        out: dict[str, set[str]] = defaultdict(set)
        for address, (ch, _) in self.connection_work(plan).items():
            out[ch.organization].add(address)
        for address, (ch, _, _) in self.probe_work(plan).items():
            out[ch.organization].add(address)
        return out

    # -- running -------------------------------------------------------------------------------

    def run(self, plan: Plan) -> CheckPhase:
        todo = self.connection_work(plan)
        probes = self.probe_work(plan)
        if self.options.on_start is not None:
            self.options.on_start(sum(1 for ch, _ in todo.values() if needs_check(ch)))
        by_parent: dict[str, list[str]] = defaultdict(list)
        for address, (ch, _, _) in probes.items():
            by_parent[f"{ch.organization}/{ch.provider}"].append(address)
        waves = self._waves(todo)
        orphans = [a for p, addrs in by_parent.items() if p not in todo for a in addrs]
        # one breaker per provider for every wave; open already for a provider the plan's
        # reads found down
        breakers = Breakers.for_run(self.options.parallelism)
        for provider in sorted(self.options.down):
            breakers.trip(provider)
        for i, wave in enumerate(waves or [[]]):
            requests = []
            answered = []
            for address in wave:
                request = self._connection_request(address, *todo[address])
                if request is None:
                    continue
                early = self.options.checked.get(address)
                if early is not None:
                    answered.append(early)  # sent while the plan read the provider side
                else:
                    requests.append(request)
            for result in answered:
                self._on_result(result)
            asked = [a for parent in wave for a in by_parent.get(parent, [])]
            if i == 0:
                asked += orphans
            for address in asked:
                probe = self._probe_request(address, *probes[address])
                if probe is not None:
                    requests.append(probe)
            from reconciler.health import run_checks  # the HTTP stack, once there is a check

            run_checks(
                requests,
                parallelism=self.options.parallelism,
                policy=self.options.policy,
                on_result=self._on_result,
                breakers=breakers,
            )
        return self.phase

    def _on_result(self, r: CheckResult) -> None:
        key = str(r.key)
        if key.startswith(VERIFY):
            address = key[len(VERIFY) :]
            self._judge_probe(address, r)
            self.on_done(address)
            return
        self.phase.results[key] = r
        if self.options.on_check is not None:
            self.options.on_check(r)
        self.on_done(key)

    def _failed_dependency(self, ch: Change) -> str | None:
        for d in self.catalog.providers[ch.provider].depends_on:
            dep = f"{ch.organization}/{d}"
            if dep in self.phase.blocked:
                return d
            if dep in self.phase.results and not self.phase.results[dep].healthy:
                return d
        return None

    def _connection_request(
        self, address: str, ch: Change, conn: ConnectionSpec
    ) -> CheckRequest | None:
        failed = self._failed_dependency(ch)
        if failed is not None:
            self.phase.blocked[address] = failed
            self.on_done(address)
            return None
        envelopes, values = self._prepare(ch, conn)
        self.phase.envelopes[address] = envelopes
        self._values[address] = values
        if not needs_check(ch):
            self.on_done(address)
            return None
        provider = self.catalog.providers[ch.provider]
        base, _ = base_url_for(provider, self.options.environ)
        if provider.auth == "oauth2":
            denied = self._exchange_tokens(address, ch, conn, provider, base, values, envelopes)
            if denied is not None:
                self._on_result(denied)
                return None
        return CheckRequest(address, provider, values, base)

    def _prepare(
        self, change: Change, conn: ConnectionSpec
    ) -> tuple[dict[str, str], dict[str, Secret]]:
        if not uses_new_credentials(change):
            return {}, self.stored_credentials(change)
        envelopes: dict[str, str] = {}
        values: dict[str, Secret] = {}
        for ref in conn.credentials:
            secret = self.secrets[ref.variable]
            addr = CredentialAddress(change.organization, change.provider, conn.owner, ref.field)
            env = self.keyring.encrypt(secret.reveal(), addr)
            envelopes[ref.field] = env
            values[ref.field] = Secret(self.keyring.decrypt(env, addr), secret.source)
        return envelopes, values

    def stored_credentials(self, change: Change) -> dict[str, Secret]:
        """Decrypt a connection's stored credentials (reactivation, value probes)."""
        with Session(self.engine) as s:
            stored = managed_credentials(s, change.organization, change.provider)
        return decrypt(self.keyring, stored)

    def _exchange_tokens(
        self,
        address: str,
        ch: Change,
        conn: ConnectionSpec,
        provider: Provider,
        base: str,
        values: dict[str, Secret],
        envelopes: dict[str, str],
    ) -> CheckResult | None:
        """OAuth2: trade the refresh token for an access token, which the check then uses;
        a refused grant is the check's result (``oauth_denied``)."""
        from reconciler.health import exchange_refresh_token  # the HTTP stack

        got = exchange_refresh_token(
            provider,
            base,
            values["client_id"],
            values["client_secret"],
            values["refresh_token"],
            key=address,
            policy=self.options.policy,
        )
        if isinstance(got, CheckResult):
            return got
        envelopes.update(
            token_envelopes(self.keyring, ch.organization, ch.provider, conn.owner, got)
        )
        values.update(access_token=got.access_token, refresh_token=got.refresh_token)
        self.phase.expiry[address] = got.expires_at
        return None

    def _probe_request(
        self, address: str, ch: Change, f: ResourceField, value: str
    ) -> CheckRequest | None:
        parent = f"{ch.organization}/{ch.provider}"
        if parent in self.phase.blocked:
            self.on_done(address)
            return None
        values = self._values.get(parent) or self.stored_credentials(ch)
        if not values or f.verify is None:
            self.on_done(address)
            return None
        provider = self.catalog.providers[ch.provider]
        base, _ = base_url_for(provider, self.options.environ)
        check = provider.health_check
        request = check.request.model_copy(
            update={"path": f.verify.path.format(value=quote(value, safe="")), "query": {}}
        )
        probe = provider.model_copy(
            update={
                "health_check": check.model_copy(
                    update={
                        "request": request,
                        "rules": [],
                        "identity": {},
                        "identity_from_key": {},
                    }
                )
            }
        )
        self._labels[address] = (ch.resource.kind if ch.resource else f.name, value)
        return CheckRequest(VERIFY + address, probe, values, base)

    def _judge_probe(self, address: str, r: CheckResult) -> None:
        kind, value = self._labels[address]
        if r.healthy:
            return
        if r.http_status == 404:
            self.phase.rejected[address] = (
                f"{kind} {value!r} is not in the catalog's list and the provider does not "
                "list it for this key; use one of the catalog's values or one the key can use"
            )
        else:
            self.phase.rejected[address] = f"could not verify {kind} {value!r}: {r.message}"

    def _waves(self, todo: Mapping[str, tuple[Change, ConnectionSpec]]) -> list[list[str]]:
        depth: dict[str, int] = {}

        def d(address: str) -> int:
            if address not in depth:
                ch, _ = todo[address]
                deps = [
                    f"{ch.organization}/{x}" for x in self.catalog.providers[ch.provider].depends_on
                ]
                depth[address] = 1 + max((d(x) for x in deps if x in todo), default=-1)
            return depth[address]

        waves: dict[int, list[str]] = defaultdict(list)
        for a in sorted(todo):
            waves[d(a)].append(a)
        return [waves[k] for k in sorted(waves)]
