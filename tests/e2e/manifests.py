"""Small manifest builders for tests."""

from __future__ import annotations

from pathlib import Path

import yaml


def organization(
    name: str,
    connections: list[dict],
    *,
    allow_empty: bool | None = None,
    owner: str = "ops@example.com",
) -> dict:
    spec: dict = {
        "members": [{"user": owner, "permissions": ["settings.edit"]}],
        "connections": connections,
    }
    if allow_empty is not None:
        spec["allowEmpty"] = allow_empty
    return {
        "apiVersion": "reconciler/v1",
        "kind": "Organization",
        "metadata": {"name": name},
        "spec": spec,
    }


def connection(provider: str, var: str, *, owner: str = "ops@example.com", **extra: object) -> dict:
    return {
        "provider": provider,
        "owner": owner,
        "credentials": {"api_key": "${" + var + "}"},
        **extra,
    }


def write(folder: Path, *orgs: dict) -> None:
    """Replace the manifests in ``folder`` with one file per organization."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in folder.glob("*.y*ml"):
        f.unlink()
    for org in orgs:
        (folder / f"{org['metadata']['name']}.yaml").write_text(
            yaml.safe_dump(org, sort_keys=False)
        )


STRIPE_HOOK = {
    "webhook_endpoints": [{"url": "https://example.com/hooks", "events": ["charge.failed"]}]
}


def stripe_fleet(folder: Path, orgs: list[str]) -> None:
    """One manifest per organization: Stripe with a webhook endpoint (key ``<ORG>_STRIPE``)
    and Geoapify (``GEOAPIFY_KEY``)."""
    write(
        folder,
        *(
            organization(
                org,
                [
                    connection("stripe", f"{org.upper()}_STRIPE", resources=STRIPE_HOOK),
                    connection("geoapify", "GEOAPIFY_KEY"),
                ],
            )
            for org in orgs
        ),
    )
