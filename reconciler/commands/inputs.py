"""Loading what every command needs: catalog, manifests, environment, keys, database."""

from __future__ import annotations

import getpass
import hashlib
import os
import subprocess
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.commands.shard_env import auto_shard, is_auto
from reconciler.core.catalog import Catalog, load_catalog
from reconciler.core.desired import Desired, DesiredOrganization
from reconciler.core.errors import InputError
from reconciler.core.manifest import load_manifests
from reconciler.core.manifest_files import collect_manifest_files, read_manifest_file
from reconciler.core.state import Observed
from reconciler.crypto import KeyRing

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from reconciler.commands.parse_ahead import Ahead
    from reconciler.health import RetryPolicy


@dataclass
class Selection:
    """Which organizations a command acts on: --org, --exclude-org, --shard K/N."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    shard: tuple[int, int] | None = None
    providers: tuple[str, ...] = ()  # --provider: only these providers' connections
    # one worker's part of the selection (worker index from 0, number of workers): --workers
    part: tuple[int, int] | None = None

    @property
    def provider_filter(self) -> frozenset[str] | None:
        return frozenset(self.providers) if self.providers else None

    def admits(self, organization: str) -> bool:
        if self.include and organization not in self.include:
            return False
        if organization in self.exclude:
            return False
        if self.shard is not None:
            k, n = self.shard
            if shard_of(organization, n) != k:
                return False
        if self.part is not None:
            index, workers = self.part
            return worker_of(organization, workers, self.shard) == index
        return True


def shard_of(organization: str, n: int) -> int:
    """Stable shard (1..n) of an organization: the same on every machine and Python run."""
    return zlib.crc32(hashlib.sha256(organization.encode()).digest()) % n + 1


def worker_of(organization: str, workers: int, shard: tuple[int, int] | None = None) -> int:
    """Which of ``workers`` processes (0..workers-1) handles an organization: the shard
    machinery again, one level down. Within ``--shard K/N`` every organization has the same
    hash modulo N, so the workers split by the hash modulo N x workers instead."""
    n = shard[1] if shard is not None else 1
    return (shard_of(organization, n * workers) - 1) // n


def parse_shard(
    value: str | None, environ: Mapping[str, str] | None = None
) -> tuple[int, int] | None:
    """``K/N``, or ``auto`` / ``auto/N`` read from the environment (``shard_env``)."""
    if not value:
        return None
    if is_auto(value):
        return auto_shard(value, os.environ if environ is None else environ)
    try:
        k, n = (int(x) for x in value.split("/", 1))
    except ValueError:
        raise InputError(
            "--shard takes K/N with whole numbers, e.g. --shard 1/4, or auto"
        ) from None
    if not (n >= 1 and 1 <= k <= n):
        raise InputError(f"--shard {value}: K must be between 1 and N, e.g. --shard 1/{max(n, 1)}")
    return (k, n)


def actor_name(explicit: str | None, environ: Mapping[str, str]) -> str:
    if explicit:
        return explicit
    if environ.get("RECONCILER_ACTOR"):
        return environ["RECONCILER_ACTOR"]
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def git_commit(paths: Sequence[Path]) -> str | None:
    """The commit of the manifests' git repository, when they are in one (asked once per
    folder, not once per file)."""
    named = dict.fromkeys(p if p.is_dir() else p.parent for p in paths)  # resolved once each
    folders = list(dict.fromkeys(folder.resolve() for folder in named))
    for folder in folders:
        try:
            out = subprocess.run(
                ["git", "-C", str(folder), "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        if out.returncode == 0:
            return out.stdout.strip() or None
    return None


@dataclass
class Inputs:
    catalog: Catalog
    desired: Desired
    files: list[Path]
    environ: Mapping[str, str] = field(default_factory=dict)


def load_inputs(
    catalog_dir: str | None,
    paths: Sequence[str],
    environ: Mapping[str, str],
    *,
    existing: Observed | None = None,
    resolve_secrets: bool = True,
    selection: Selection | None = None,
    files: list[Path] | None = None,
    catalog: Catalog | None = None,
    on_organization: Callable[[DesiredOrganization], None] | None = None,
    ahead: Ahead | None = None,
) -> Inputs:
    """``files``: the manifest files, when the caller has collected them from ``paths``;
    ``catalog``: the catalog, when the caller has loaded it from ``catalog_dir``;
    ``on_organization``: called with each organization as soon as it is read
    (``load_manifests``); ``ahead``: a child parsing (and checking) the manifests already
    (``commands.parse_ahead``)."""
    if catalog is None:
        catalog = load_catalog(catalog_dir)
    if files is None:
        files = collect_manifest_files(list(paths) or ["manifests"])
    checked = (
        ahead.checked(files, environ, catalog_dir, resolve_secrets) if ahead is not None else None
    )
    if checked is not None:
        desired, diags = checked.desired, checked.diags
        if on_organization is not None:  # as load_manifests calls it, in the same order
            for name in checked.valid:
                on_organization(desired.organizations[name])
    else:  # the database's pairs matter to this check only (the child's asked nothing of them)
        pairs = existing.connected_pairs() if existing is not None else set()
        if existing is not None:
            pairs |= set(existing.instances)
        desired, diags = load_manifests(
            files,
            catalog,
            environ,
            existing=pairs,
            resolve_secrets=resolve_secrets,
            on_organization=on_organization,
            read=ahead.read if ahead is not None else read_manifest_file,
        )
    diags.raise_if_errors()
    if selection is not None:
        desired = Desired(
            organizations={k: v for k, v in desired.organizations.items() if selection.admits(k)},
            git_commit=desired.git_commit,
        )
    desired = Desired(organizations=desired.organizations, git_commit=git_commit(files))
    return Inputs(catalog, desired, files, environ)


def open_database(environ: Mapping[str, str] | None = None) -> tuple[Engine | None, Observed]:
    """The engine and observed state; (None, empty) when a SQLite file does not exist yet, so
    plan against a database that does not exist writes nothing."""
    from reconciler.db.engine import database_exists, database_url, make_engine
    from reconciler.db.observe import observe

    url = database_url(environ)
    if not database_exists(url):
        return None, Observed(exists=False)
    engine = make_engine(url)
    return engine, observe(engine)


def keyring(environ: Mapping[str, str] | None = None) -> KeyRing:
    return KeyRing.from_env(os.environ if environ is None else environ)


def policy_from_env(environ: Mapping[str, str]) -> RetryPolicy:
    from reconciler.health import RetryPolicy  # the HTTP stack: only for commands that check

    """Health-check time limits; ``RECONCILER_CHECK_DEADLINE`` (seconds per check, default 30)
    and ``RECONCILER_CHECK_MAX_RATE_LIMIT_WAIT`` (total wait on 429s, default 20)."""

    def number(name: str, default: float) -> float:
        raw = environ.get(name)
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise InputError(f"{name} must be a number of seconds, e.g. {default:g}") from None
        if value <= 0:
            raise InputError(f"{name} must be more than 0 seconds")
        return value

    deadline = number("RECONCILER_CHECK_DEADLINE", 30.0)
    total = number("RECONCILER_CHECK_MAX_RATE_LIMIT_WAIT", 20.0)
    return RetryPolicy(
        deadline=deadline,
        max_total_rate_limit_wait=min(total, deadline),
        max_rate_limit_wait=min(10.0, total),
        read_timeout=min(10.0, deadline),
        connect_timeout=min(5.0, deadline),
    )


def unset_variables(desired: Desired, environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """(variable, where) for each credential variable the manifests name that is not set."""
    out = []
    for org in sorted(desired.organizations.values(), key=lambda o: o.name):
        for conn in org.connections:
            for _, var in sorted(conn.credential_vars.items()):
                if not environ.get(var):
                    where = f"{conn.file}:{conn.line}" if conn.line else conn.file
                    out.append((var, where))
    return out
