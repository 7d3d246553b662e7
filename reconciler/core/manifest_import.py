"""``reconciler import``: manifests that reproduce what the database holds (SPEC section 9).

Pure: (catalog, observed state) -> the text of one manifest per organization and of an example
env file. Nothing here reads a secret (credentials are written as ``credentials: keep``) and
nothing varies between runs (no time stamps, everything sorted), so the same database gives
byte-identical files.

What is imported, per organization:

- each instance with a connection: the managed connection, or else the one of a user whose
  status is ``connected`` (then any), first by email; ``adopt: true`` when no manifest manages
  it. Other connections of the instance stay unmanaged and are named in a comment;
- its owner as a member with ``settings.edit``;
- ``active: false`` for an inactive instance of a provider that has the toggle;
- ``deletionPolicy`` / ``preventDestroy`` when they are not the defaults;
- resources: a managed connection's managed ones; an adopted connection's rows that carry
  their fields (rows the SaaS wrote with only its columns have none and are named in a
  comment). Unmanaged rows of the same identity then plan as ``adopt``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from reconciler.core.catalog import Catalog, Provider, ResourceKind
from reconciler.core.credential_refs import KEEP, RESERVED_PREFIX
from reconciler.core.manifest import API_VERSION, EDIT, KIND, ORG_SLUG
from reconciler.core.state import Observed, ObservedConnection, ObservedInstance
from reconciler.core.yamlsafe import load_yaml_documents

ENV_EXAMPLE = "credentials.env.example"
_PLAIN = re.compile(r"[A-Za-z0-9_./+][A-Za-z0-9_./+@:=?&%~ -]*")
_YAML11_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}


@dataclass
class ImportedOrganization:
    name: str
    text: str  # the manifest
    connections: int = 0
    adopted: int = 0
    # (address, owner, field, suggested variable, required) for the example env file
    credentials: list[tuple[str, str, str, str, bool]] = field(default_factory=list)


def import_organizations(
    catalog: Catalog, observed: Observed, organizations: Iterable[str], *, source: str
) -> list[ImportedOrganization]:
    """One manifest per organization (sorted); ``source`` names the database in the header."""
    out = []
    for org in sorted(set(organizations)):
        out.append(_organization(catalog, org, observed.of(org), observed, source))
    return out


def importable_organizations(observed: Observed) -> list[str]:
    """Organizations of the database whose slug a manifest can name."""
    return sorted({org for org, _ in observed.instances if ORG_SLUG.match(org)})


def _owner_connection(inst: ObservedInstance) -> ObservedConnection | None:
    if inst.managed_connection is not None:
        return inst.managed_connection
    ranked = sorted(inst.connections, key=lambda c: (c.status != "connected", c.user_email))
    return ranked[0] if ranked else None


def _organization(
    catalog: Catalog, org: str, instances: list[ObservedInstance], observed: Observed, source: str
) -> ImportedOrganization:
    result = ImportedOrganization(org, "")
    members: set[str] = set()
    connections: list[dict[str, Any]] = []
    comments: dict[str, list[str]] = {}  # provider -> lines written above its entry
    skipped: list[str] = []
    for inst in instances:
        provider = catalog.get(inst.provider)
        conn = _owner_connection(inst)
        if provider is None:
            skipped.append(f"{inst.address}: provider {inst.provider!r} is not in the catalog")
            continue
        if conn is None:
            skipped.append(f"{inst.address}: an instance with no connection (nothing to keep)")
            continue
        entry, notes = _connection(provider, inst, conn)
        connections.append(entry)
        comments[inst.provider] = notes
        members.add(conn.user_email)
        result.connections += 1
        result.adopted += conn.managed_by != "manifest"
        for f in provider.credentials:
            result.credentials.append(
                (
                    inst.address,
                    conn.user_email,
                    f.name,
                    suggested_variable(org, provider.name, f.name),
                    f.required,
                )
            )
    doc = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": org},
        "spec": {
            "members": [{"user": u, "permissions": [EDIT]} for u in sorted(members)],
            "connections": connections,
        },
    }
    header = [
        f"# Imported by `reconciler import` from {source}",
        f"# (state {observed.lineage or 'unknown'}): organization {org},",
        f"# {result.connections} connection(s), {result.adopted} of them made outside the "
        "manifests (adopt: true).",
        "# Credentials stay as they are stored (credentials: keep); to manage one from now on,",
        f"# replace keep with ${{VAR}} references (suggested names in {ENV_EXAMPLE}).",
        *(f"# Not imported: {s}." for s in skipped),
    ]
    result.text = "\n".join(header) + "\n" + _render(doc, comments)
    _check_round_trip(result.text, doc)
    return result


def _connection(
    provider: Provider, inst: ObservedInstance, conn: ObservedConnection
) -> tuple[dict[str, Any], list[str]]:
    notes: list[str] = []
    entry: dict[str, Any] = {"provider": provider.name, "owner": conn.user_email}
    if conn.managed_by != "manifest":
        entry["adopt"] = True
        notes.append(f"made outside the manifests (managed_by: {conn.managed_by}); adopt: true")
    if inst.status == "inactive":
        if provider.toggle:
            entry["active"] = False
        else:
            notes.append("inactive in the database, but this provider has no active toggle")
    if conn.deletion_policy != "delete":
        entry["deletionPolicy"] = conn.deletion_policy
    if conn.prevent_destroy:
        entry["preventDestroy"] = True
    entry["credentials"] = KEEP
    others = sorted(c.user_email for c in inst.connections if c is not conn)
    if others:
        notes.append(f"other connections, left unmanaged: {', '.join(others)}")
    adopting = conn.managed_by != "manifest"
    resources: dict[str, Any] = {}
    bare: dict[str, int] = {}
    for kind in provider.resources:
        rows = [
            r
            for r in inst.resources
            if r.kind == kind.name and (adopting or r.managed_by == "manifest")
        ]
        with_fields = [r for r in rows if r.spec and r.identity]
        if len(rows) > len(with_fields):
            bare[kind.name] = len(rows) - len(with_fields)
        if not with_fields:
            continue
        resources[kind.name] = _resource_value(kind, with_fields)
    for kind_name, n in sorted(bare.items()):
        notes.append(f"{n} {kind_name} row(s) without their fields were not imported")
    if resources:
        entry["resources"] = resources
    return entry, notes


def _resource_value(kind: ResourceKind, rows: list[Any]) -> Any:
    if kind.shape == "value":
        return rows[0].spec.get("value")
    if kind.shape == "object":
        return dict(sorted(rows[0].spec.items()))
    items = []
    for r in sorted(rows, key=lambda r: r.identity):
        item = {k: v for k, v in sorted(r.spec.items()) if k != "default"}
        ordered = {kind.identity: item.pop(kind.identity)} if kind.identity in item else {}
        ordered.update(item)
        if r.is_default:
            ordered["default"] = True
        items.append(ordered)
    return items


def suggested_variable(org: str, provider: str, field_name: str) -> str:
    """ORG_PROVIDER_FIELD in upper case, never a reserved RECONCILER_* name."""
    name = re.sub(r"[^A-Z0-9]+", "_", f"{org}_{provider}_{field_name}".upper()).strip("_")
    if not name[:1].isalpha() or name.startswith(RESERVED_PREFIX):
        name = f"ORG_{name}"
    return name


def env_example(organizations: list[ImportedOrganization]) -> str:
    """An env file naming a suggested variable per credential, with no values."""
    lines = [
        "# Suggested variables for moving connections from `credentials: keep` to managed",
        "# credentials, one organization at a time: put the value in your secret store (never",
        "# in git), then replace `credentials: keep` in the manifest with the mapping shown.",
        "# `reconciler plan` then shows one credential update per connection. No values here.",
    ]
    for org in organizations:
        by_conn: dict[tuple[str, str], list[tuple[str, str, bool]]] = {}
        for address, owner, fname, var, required in org.credentials:
            by_conn.setdefault((address, owner), []).append((fname, var, required))
        for (address, owner), fields in by_conn.items():
            mapping = ", ".join(f'{f}: "${{{v}}}"' for f, v, req in fields if req)
            lines += ["", f"# {address} (owner {owner}): credentials: {{{mapping}}}"]
            for fname, var, required in fields:
                lines.append(f"{var}=" if required else f"# optional ({fname}): {var}=")
    return "\n".join(lines) + "\n"


# -- YAML out ------------------------------------------------------------------------------------


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    text = str(value)
    if (
        _PLAIN.fullmatch(text)
        and not text.endswith((" ", ":"))
        and ": " not in text
        and " #" not in text
        and text.lower() not in _YAML11_WORDS
        and yaml.safe_load(text) == text
    ):
        return text
    return json.dumps(text, ensure_ascii=False)


def _render(doc: Mapping[str, Any], comments: Mapping[str, list[str]]) -> str:
    lines = [
        f"apiVersion: {_scalar(doc['apiVersion'])}",
        f"kind: {_scalar(doc['kind'])}",
        "metadata:",
        f"  name: {_scalar(doc['metadata']['name'])}",
        "spec:",
    ]
    spec = doc["spec"]
    lines += _block("members", spec["members"], 2)
    if not spec["connections"]:
        lines.append("  connections: []")
    else:
        lines.append("  connections:")
        for entry in spec["connections"]:
            lines += [f"    # {c}" for c in comments.get(entry["provider"], [])]
            lines += _list_item(entry, 4)
    return "\n".join(lines) + "\n"


def _block(key: str, value: Any, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return [f"{pad}{key}: {{}}"]
        out = [f"{pad}{key}:"]
        for k, v in value.items():
            out += _block(k, v, indent + 2)
        return out
    if isinstance(value, list):
        if not value:
            return [f"{pad}{key}: []"]
        if all(not isinstance(v, dict | list) for v in value):
            return [f"{pad}{key}: [{', '.join(_flow(v) for v in value)}]"]
        out = [f"{pad}{key}:"]
        for v in value:
            out += _list_item(v, indent + 2)
        return out
    return [f"{pad}{key}: {_scalar(value)}"]


def _flow(value: Any) -> str:
    """A scalar inside ``[...]``: quoted when it holds a flow indicator."""
    text = _scalar(value)
    return json.dumps(value) if isinstance(value, str) and re.search(r"[,\[\]{}:#]", text) else text


def _list_item(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    if not isinstance(value, dict) or not value:
        return [f"{pad}- {_scalar(value) if not isinstance(value, dict) else '{}'}"]
    body: list[str] = []
    for k, v in value.items():
        body += _block(k, v, indent + 2)
    return [f"{pad}- {body[0].lstrip()}", *body[1:]]


def _check_round_trip(text: str, doc: Mapping[str, Any]) -> None:
    """The text reads back as ``doc`` with the validator's own YAML reader."""
    (read,) = load_yaml_documents(text.encode(), "imported manifest")
    if read.plain() != json.loads(json.dumps(doc)):
        raise AssertionError("an imported manifest does not read back as written")
