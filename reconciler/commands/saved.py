"""Saved plans: ``plan --out FILE`` and ``apply --plan FILE``.

A saved plan holds the changes, the desired state they were computed from (catalog digest and
manifests as resolved, with credentials as variable names only), the keyed fingerprints of the
secrets it saw, and the state it was computed from (lineage and serial). Apply refuses it as
stale when any of those moved on, before writing anything.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reconciler.commands.inputs import Inputs, keyring, open_database
from reconciler.commands.run import Planned
from reconciler.core.catalog import load_catalog
from reconciler.core.desired import Desired, DesiredConnection, DesiredOrganization, DesiredResource
from reconciler.core.errors import InputError, StalePlanError
from reconciler.core.plan import Action, Change, Note, Plan
from reconciler.core.render import FORMAT_VERSION, plan_to_json
from reconciler.core.secret import Secret

STALE = "Saved plan is stale"


def _desired_to_json(desired: Desired) -> dict[str, Any]:
    orgs = {}
    for name, o in sorted(desired.organizations.items()):
        orgs[name] = {
            "members": {u: sorted(p) for u, p in sorted(o.members.items())},
            "allow_empty": o.allow_empty,
            "file": o.file,
            "line": o.line,
            "connections": [
                {
                    "provider": c.provider,
                    "owner": c.owner,
                    "credential_vars": dict(sorted(c.credential_vars.items())),
                    "active": c.active,
                    "adopt": c.adopt,
                    "deletion_policy": c.deletion_policy,
                    "prevent_destroy": c.prevent_destroy,
                    "keep_credentials": c.keep_credentials,
                    "file": c.file,
                    "line": c.line,
                    "resources": [
                        {
                            "kind": r.kind,
                            "identity": r.identity,
                            "spec": dict(r.spec),
                            "is_default": r.is_default,
                            "line": r.line,
                        }
                        for r in c.resources
                    ],
                }
                for c in o.connections
            ],
        }
    return {"organizations": orgs, "git_commit": desired.git_commit}


def _desired_from_json(data: Mapping[str, Any], environ: Mapping[str, str]) -> Desired:
    orgs = {}
    missing = []
    for name, o in data["organizations"].items():
        conns = []
        for c in o["connections"]:
            creds = {}
            for f, var in c["credential_vars"].items():
                if not environ.get(var):
                    missing.append(var)
                    continue
                creds[f] = Secret(environ[var], var)
            conns.append(
                DesiredConnection(
                    organization=name,
                    provider=c["provider"],
                    owner=c["owner"],
                    credentials=creds,
                    credential_vars=c["credential_vars"],
                    active=c["active"],
                    adopt=c["adopt"],
                    deletion_policy=c["deletion_policy"],
                    prevent_destroy=c["prevent_destroy"],
                    keep_credentials=c.get("keep_credentials", False),
                    file=c["file"],
                    line=c["line"],
                    resources=tuple(
                        DesiredResource(
                            r["kind"], r["identity"], r["spec"], r["is_default"], r["line"]
                        )
                        for r in c["resources"]
                    ),
                )
            )
        orgs[name] = DesiredOrganization(
            name=name,
            members={u: frozenset(p) for u, p in o["members"].items()},
            connections=tuple(conns),
            allow_empty=o["allow_empty"],
            file=o["file"],
            line=o["line"],
        )
    if missing:
        raise InputError(
            "the saved plan needs these environment variables, which are not set: "
            + ", ".join(sorted(set(missing)))
        )
    return Desired(organizations=orgs, git_commit=data.get("git_commit"))


def save_plan(planned: Planned, path: Path) -> None:
    fps = {"|".join(k): dict(sorted(v.items())) for k, v in sorted(planned.fingerprints.items())}
    doc = plan_to_json(
        planned.plan,
        overrides=planned.overrides,
        saved={
            "catalog_digest": planned.inputs.catalog.digest,
            "catalog_dir": planned.inputs.catalog.source,
            "desired": _desired_to_json(planned.inputs.desired),
            "fingerprints": fps,
            "database_existed": planned.observed.exists,
        },
    )
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, sort_keys=True, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _change_from_json(c: Mapping[str, Any]) -> Change:
    return Change(
        address=c["address"],
        action=Action(c["action"]),
        kind=c["kind"],
        organization=c["organization"],
        provider=c["provider"],
        reason=c["reason"],
        reason_code=c["reason_code"],
        before=c["before"],
        after=c["after"],
        changed=tuple(c["changed"]),
        resource_kind=c.get("resource_kind"),
        identity=c.get("identity"),
    )


def load_saved_plan(path: Path, catalog_dir: str | None, environ: Mapping[str, str]) -> Planned:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        saved = doc["saved"]
        version = str(doc["format_version"])
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(
            f"{path}: not a saved plan (made by `reconciler plan --out FILE`)"
        ) from None
    if version.split(".")[0] != FORMAT_VERSION.split(".")[0] or version != FORMAT_VERSION:
        raise StalePlanError(
            f"{STALE}: it has format version {version}, this reconciler "
            f"writes {FORMAT_VERSION}; run `reconciler plan --out` again"
        )
    catalog = load_catalog(catalog_dir if catalog_dir is not None else saved.get("catalog_dir"))
    if catalog.digest != saved["catalog_digest"]:
        raise StalePlanError(
            f"{STALE}: the catalog changed since the plan was made; "
            "run `reconciler plan --out` again"
        )
    ring = keyring(environ)
    _, observed = open_database(environ)
    state = doc["state"]
    if (observed.lineage, observed.serial) != (state["lineage"], state["serial"]) and (
        observed.exists or saved["database_existed"]
    ):
        raise StalePlanError(
            f"{STALE}: the database changed since the plan was made "
            f"(serial {state['serial']} -> {observed.serial}); "
            "run `reconciler plan --out` again"
        )
    desired = _desired_from_json(saved["desired"], environ)
    from reconciler.crypto import CredentialAddress

    fps: dict[tuple[str, str, str, str], dict[str, str]] = {}
    for key, by_id in saved["fingerprints"].items():
        org, provider, user, field = key.split("|")
        conn = desired.organizations[org].connection(provider)
        assert conn is not None
        addr = CredentialAddress(org, provider, user, field)
        for kid, fp in by_id.items():
            if (
                kid not in ring.key_ids
                or ring.fingerprint(conn.credentials[field].reveal(), addr, key_id=kid) != fp
            ):
                raise StalePlanError(
                    f"{STALE}: the secret behind {org}/{provider} {field} "
                    f"(${conn.credential_vars[field]}) changed since the plan "
                    "was made; run `reconciler plan --out` again"
                )
        fps[(org, provider, user, field)] = dict(by_id)
    plan = Plan(
        changes=tuple(_change_from_json(c) for c in doc["changes"]),
        notes=tuple(
            Note(n["address"], n["kind"], n["message"], n.get("since")) for n in doc["notes"]
        ),
        organizations=tuple(doc["organizations"]),
        lineage=state["lineage"],
        serial=state["serial"],
    )
    return Planned(
        plan,
        Inputs(catalog, desired, [], environ),
        observed,
        ring,
        fps,
        dict(doc.get("overrides", {})),
    )
