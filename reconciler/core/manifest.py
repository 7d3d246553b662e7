"""Manifests (SPEC section 6): files and folders of ``kind: Organization`` documents -> Desired.

Every problem of a run is collected, across all files, each with file, line and a plain
sentence; the caller decides to stop (``diags.raise_if_errors()``). Reading the files is the
only I/O here: the environment comes in as a mapping, the database's knowledge as ``existing``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.core.catalog import Catalog, Provider
from reconciler.core.credential_refs import read_credentials
from reconciler.core.desired import Desired, DesiredConnection, DesiredOrganization
from reconciler.core.errors import Diagnostics
from reconciler.core.manifest_files import (
    ManifestReader,
    collect_manifest_files,
    read_manifest_file,
)
from reconciler.core.manifest_source import SourceDocument, dotted
from reconciler.core.resource_validation import EMAIL, read_resources
from reconciler.core.yamlsafe import Loc, YamlError

API_VERSION = "reconciler/v1"
KIND = "Organization"
ORG_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")
EDIT = "settings.edit"
PERMISSIONS = (EDIT, "settings.view")

TOP_FIELDS = ("apiVersion", "kind", "metadata", "spec")
SPEC_FIELDS = ("members", "connections", "allowEmpty")
MEMBER_FIELDS = ("user", "permissions")
CONNECTION_FIELDS = (
    "provider",
    "owner",
    "credentials",
    "resources",
    "active",
    "adopt",
    "deletionPolicy",
    "preventDestroy",
)
DELETION_POLICIES = ("delete", "orphan")


@dataclass(frozen=True)
class _Run:
    """What every document of a run is checked against."""

    catalog: Catalog
    environ: Mapping[str, str]
    existing: frozenset[tuple[str, str]]
    resolve_secrets: bool


def load_manifests(
    paths: Sequence[str | Path],
    catalog: Catalog,
    environ: Mapping[str, str],
    *,
    existing: Collection[tuple[str, str]] = (),
    resolve_secrets: bool = True,
    on_organization: Callable[[DesiredOrganization], None] | None = None,
    read: ManifestReader = read_manifest_file,
) -> tuple[Desired, Diagnostics]:
    """Read and check every manifest; the desired state and all the problems found.

    ``existing``: (organization, provider) pairs already connected in the database; they
    satisfy dependencies and may stay connected when the catalog has since made the provider
    inactive. Without ``resolve_secrets`` no variable is read and connections carry no
    credential values (``credential_vars`` is still filled). ``on_organization`` is called
    with each organization as soon as its document is read without an error (plan starts
    reading its provider side then). ``read``: how a file becomes documents (a command may
    have parsed them already, ``commands.parse_ahead``).
    """
    diags = Diagnostics()
    pairs = existing if isinstance(existing, frozenset) else frozenset(existing)
    run = _Run(catalog, environ, pairs, resolve_secrets)
    organizations: dict[str, DesiredOrganization] = {}
    for path in collect_manifest_files(paths, diags):
        for src in _documents(path, diags, read):
            known = len(diags.items)
            org = _organization(src, run)
            if org is None:
                continue
            first = organizations.get(org.name)
            if first is not None:
                src.error(
                    ("metadata", "name"),
                    f"organization {org.name} is already defined at "
                    f"{first.file}:{first.line}; each organization has one manifest "
                    "document",
                )
                continue
            organizations[org.name] = org
            if on_organization is not None and not any(
                d.severity == "error" for d in diags.items[known:]
            ):
                on_organization(org)
    return Desired(organizations=organizations), diags


def _documents(path: Path, diags: Diagnostics, read: ManifestReader) -> list[SourceDocument]:
    try:
        docs = read(path)
    except OSError as e:
        diags.add(str(path), None, f"cannot read the file ({e.strerror}); check its permissions")
        return []
    except YamlError as e:
        diags.items.extend(e.diagnostics)
        return []
    return [SourceDocument(str(path), doc, diags) for doc in docs if doc.value is not None]


def _organization(src: SourceDocument, run: _Run) -> DesiredOrganization | None:
    """One ``kind: Organization`` document; None when it cannot be used at all."""
    top = src.fields(
        (), src.doc.value, allowed=TOP_FIELDS, required=TOP_FIELDS, what="a manifest document"
    )
    if top is None:
        return None
    if "apiVersion" in top and top["apiVersion"] != API_VERSION:
        src.error(("apiVersion",), f"apiVersion must be {API_VERSION}")
    if "kind" in top and top["kind"] != KIND:
        src.error(("kind",), f"kind must be {KIND}")
    name = _org_name(src, top.get("metadata"))
    spec = src.fields(("spec",), top.get("spec", {}), allowed=SPEC_FIELDS, what="spec") or {}
    label = name or "this organization"
    members = _members(src, spec.get("members"))
    allow_empty = src.boolean(("spec", "allowEmpty"), spec.get("allowEmpty"), False)
    connections = _connections(src, run, label, members, spec.get("connections"))
    if name is None:
        return None
    return DesiredOrganization(name, members, connections, allow_empty, src.file, src.line(()))


def _org_name(src: SourceDocument, metadata: Any) -> str | None:
    path: Loc = ("metadata",)
    if metadata is None:
        return None  # reported as a missing required field
    meta = src.fields(path, metadata, allowed=("name",), required=("name",), what="metadata")
    if meta is None or "name" not in meta:
        return None
    name = meta["name"]
    if not isinstance(name, str) or not ORG_SLUG.match(name):
        src.error(
            (*path, "name"),
            "metadata.name must be an organization slug: lower-case "
            "letters, digits and '-', starting with a letter or digit",
        )
        return None
    return name


def _members(src: SourceDocument, value: Any) -> dict[str, frozenset[str]]:
    """Members by email; an entry with problems still counts, to avoid follow-on errors."""
    path: Loc = ("spec", "members")
    members: dict[str, frozenset[str]] = {}
    lines: dict[str, int | None] = {}
    for index, item in enumerate(src.items(path, value)):
        where = (*path, index)
        entry = src.fields(where, item, allowed=MEMBER_FIELDS, required=MEMBER_FIELDS)
        if entry is None:
            continue
        user = entry.get("user")
        if "user" in entry and not (isinstance(user, str) and EMAIL.match(user)):
            src.error((*where, "user"), f"{dotted(where)}.user must be the member's email address")
            user = None
        permissions = _permissions(src, (*where, "permissions"), entry.get("permissions"))
        if user is None:
            continue
        if user in members:
            src.error(
                where,
                f"{user} is listed twice in spec.members (first at line "
                f"{lines[user]}); list each member once",
            )
            continue
        members[user] = permissions
        lines[user] = src.line(where)
    return members


def _permissions(src: SourceDocument, path: Loc, value: Any) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not value:
        src.error(path, f"{dotted(path)} must be a non-empty list, e.g. [{EDIT}]")
        return frozenset()
    granted: set[str] = set()
    for index, permission in enumerate(value):
        if permission not in PERMISSIONS:
            src.error(
                (*path, index),
                f"{dotted(path)}[{index}] is not a permission; use one "
                f"of: {', '.join(PERMISSIONS)}",
            )
        else:
            granted.add(permission)
    return frozenset(granted)


def _connections(
    src: SourceDocument, run: _Run, org: str, members: Mapping[str, frozenset[str]], value: Any
) -> tuple[DesiredConnection, ...]:
    path: Loc = ("spec", "connections")
    items = src.items(path, value)
    listed: dict[str, int | None] = {}
    for index, item in enumerate(items):
        provider = item.get("provider") if isinstance(item, dict) else None
        if isinstance(provider, str):
            if provider in listed:
                src.error(
                    (*path, index, "provider"),
                    f"provider {provider} is listed twice for {org} (first at line "
                    f"{listed[provider]}); an organization connects a provider once",
                )
            else:
                listed[provider] = src.line((*path, index))
    found: list[DesiredConnection] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        conn = _connection(src, run, org, members, set(listed), (*path, index), item)
        if conn is not None and conn.provider not in seen:
            seen.add(conn.provider)
            found.append(conn)
    return tuple(found)


def _connection(
    src: SourceDocument,
    run: _Run,
    org: str,
    members: Mapping[str, frozenset[str]],
    listed: set[str],
    path: Loc,
    item: Any,
) -> DesiredConnection | None:
    """One entry of spec.connections, checked against the catalog, members and environment."""
    entry = src.fields(path, item, allowed=CONNECTION_FIELDS, required=("provider", "owner"))
    if entry is None:
        return None
    name = src.text((*path, "provider"), entry.get("provider"))
    label = name or dotted(path)
    provider = _provider(src, run, org, listed, path, name)
    owner = _owner(src, org, members, (*path, "owner"), entry.get("owner"))
    active = _active(src, label, provider, path, entry)
    creds = read_credentials(
        src,
        (*path, "credentials"),
        entry.get("credentials"),
        provider_name=label,
        provider=provider,
        address=f"{org}/{label}",
        environ=run.environ,
        resolve=run.resolve_secrets,
    )
    resources = (
        read_resources(src, (*path, "resources"), provider, entry.get("resources"))
        if provider is not None
        else ()
    )
    adopt = src.boolean((*path, "adopt"), entry.get("adopt"), False)
    prevent = src.boolean((*path, "preventDestroy"), entry.get("preventDestroy"), False)
    policy = entry.get("deletionPolicy", "delete")
    if policy not in DELETION_POLICIES:
        src.error(
            (*path, "deletionPolicy"),
            f"{dotted(path)}.deletionPolicy must be one of: {', '.join(DELETION_POLICIES)}",
        )
        policy = "delete"
    if name is None or owner is None:
        return None
    return DesiredConnection(
        organization=org,
        provider=name,
        owner=owner,
        credentials=creds.values,
        credential_vars=creds.variables,
        active=active,
        resources=resources,
        adopt=adopt,
        deletion_policy=policy,
        prevent_destroy=prevent,
        keep_credentials=creds.keep,
        file=src.file,
        line=src.line(path),
    )


def _provider(
    src: SourceDocument, run: _Run, org: str, listed: set[str], path: Loc, name: str | None
) -> Provider | None:
    """The catalog entry, after the unknown / inactive / dependency checks (None if unknown)."""
    if name is None:
        return None
    where = (*path, "provider")
    provider = run.catalog.get(name)
    if provider is None:
        known = ", ".join(sorted(run.catalog.providers)) or "none"
        src.error(where, f"unknown provider {name!r}; the catalog has: {known}")
        return None
    connected = run.existing
    if not provider.active and (org, name) not in connected:
        src.error(
            where,
            f"provider {name} is inactive in the catalog and cannot be newly "
            f"connected; remove it from {org}'s manifest",
        )
    missing = [d for d in provider.depends_on if d not in listed and (org, d) not in connected]
    if missing:
        names = ", ".join(missing)
        src.error(
            where,
            f"provider {name} depends on {names}, which {org} has neither "
            f"connected nor in its manifest; add {names} to spec.connections",
        )
    return provider


def _owner(
    src: SourceDocument, org: str, members: Mapping[str, frozenset[str]], path: Loc, value: Any
) -> str | None:
    owner = src.text(path, value)
    if owner is None:
        return None
    if owner not in members:
        src.error(
            path, f"owner {owner} is not a member of {org}; add them to spec.members with {EDIT}"
        )
    elif EDIT not in members[owner]:
        src.error(
            path, f"owner {owner} does not hold {EDIT} in {org}; a connection's owner needs {EDIT}"
        )
    return owner


def _active(
    src: SourceDocument, label: str, provider: Provider | None, path: Loc, entry: Mapping[str, Any]
) -> bool:
    """The mapping providers' on/off switch; only providers with ``toggle: true`` have it."""
    if "active" not in entry:
        return True
    if provider is not None and not provider.toggle:
        src.error((*path, "active"), f"provider {label} has no active toggle; remove 'active'")
        return True
    return src.boolean((*path, "active"), entry["active"], True)
