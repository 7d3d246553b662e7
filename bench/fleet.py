"""A synthetic fleet for the benchmarks: N organizations, each with all seven providers.

Every organization gets one manifest file (how fleets keep them in git), two members, the seven
connections (all active, so every one is health-checked) and the resources its providers have:
a Stripe webhook, two Postmark sender emails, a Quo phone number and Anthropic's model and usage
settings. Secrets are references to per-organization environment variables whose values the
simulator answers as good keys; none contains a word the simulator reads as a failure
(``invalid``, ``ratelimit`` ...), so no check is retried or refused.

Usage::

    fleet = generate_fleet(Path("/tmp/fleet"), 1000)
    env = {**os.environ, **fleet.secrets}
    rotated = fleet.rotate(0.1)          # 10% of the secrets with new values
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROVIDERS = ("stripe", "postmark", "quo", "mapbox", "google_maps", "geoapify", "anthropic")

# Key shapes the real providers use; the simulator accepts any value without a failure word.
KEY_PREFIX = {
    "stripe": "sk_test_",
    "postmark": "pm-",
    "quo": "quo",
    "mapbox": "pk.",
    "google_maps": "AIza",
    "geoapify": "geo",
    "anthropic": "sk-ant-",
}


@dataclass
class Fleet:
    """A generated fleet: its manifest folder and the environment its secrets live in."""

    folder: Path
    organizations: list[str]
    secrets: dict[str, str] = field(default_factory=dict)
    resources: bool = True  # each organization's 6 resources (False: connections only)

    @property
    def connections(self) -> int:
        return len(self.organizations) * len(PROVIDERS)

    @property
    def objects(self) -> int:
        """What a first plan creates: the connections, and the resources when declared."""
        return self.connections + (6 * len(self.organizations) if self.resources else 0)

    def rotate(self, fraction: float, *, generation: int = 1) -> dict[str, str]:
        """A copy of the secrets where every ``1/fraction``-th variable has a new value.

        Deterministic, so two runs of the benchmark rotate the same secrets.
        """
        step = max(1, round(1 / fraction)) if fraction > 0 else 0
        out = dict(self.secrets)
        if step == 0:
            return out
        for i, name in enumerate(sorted(out)):
            if i % step == 0:
                out[name] = secret_value(name, generation)
        return out


def org_name(i: int) -> str:
    return f"org{i:05d}"


def variable(org: str, provider: str) -> str:
    return f"{org.upper()}_{provider.upper()}_KEY"


def secret_value(var: str, generation: int = 0) -> str:
    """A stable, unique, simulator-good key for an environment variable (hex only: no words)."""
    provider = next(p for p in PROVIDERS if var.endswith(f"_{p.upper()}_KEY"))
    digest = hashlib.sha256(f"{var}:{generation}".encode()).hexdigest()[:32]
    return KEY_PREFIX[provider] + digest


def phone_number(org: str) -> str:
    """The Quo number an organization declares (it must exist in its workspace: SPEC 8)."""
    return f"+1555555{int(org[3:]) % 10000:04d}"


def workspace_numbers(fleet: Fleet, sim: Any, generations: int = 2) -> None:
    """Give each organization's Quo workspace (one per key, rotated ones too) its number."""
    for org in fleet.organizations:
        var = variable(org, "quo")
        for g in range(generations):
            sim.set_phone_numbers(secret_value(var, g), [(phone_number(org), "Support")])


def manifest(org: str, *, resources: bool = True) -> str:
    """The manifest of one organization: seven connections and (``resources``) theirs."""
    domain = f"{org}.example"
    owner = f"ops@{domain}"

    def cred(provider: str) -> str:
        return f'{{api_key: "${{{variable(org, provider)}}}"}}'

    text = f"""\
apiVersion: reconciler/v1
kind: Organization
metadata:
  name: {org}
spec:
  members:
    - user: {owner}
      permissions: [settings.edit]
    - user: viewer@{domain}
      permissions: [settings.view]
  connections:
    - provider: stripe
      owner: {owner}
      credentials: {cred("stripe")}
      resources:
        webhook_endpoints:
          - url: https://{domain}/hooks/stripe
            events: [invoice.paid, customer.subscription.deleted]
    - provider: postmark
      owner: {owner}
      credentials: {cred("postmark")}
      resources:
        sender_emails:
          - {{email: billing@{domain}, name: Billing, default: true}}
          - {{email: support@{domain}, name: Support}}
    - provider: quo
      owner: {owner}
      credentials: {cred("quo")}
      resources:
        phone_numbers:
          - {{number: "{phone_number(org)}", label: Support, default: true}}
    - provider: mapbox
      owner: {owner}
      credentials: {cred("mapbox")}
    - provider: google_maps
      owner: {owner}
      credentials: {cred("google_maps")}
    - provider: geoapify
      owner: {owner}
      credentials: {cred("geoapify")}
    - provider: anthropic
      owner: {owner}
      credentials: {cred("anthropic")}
      resources:
        model: claude-sonnet-4-5
        usage_monitoring: {{monthly_budget_usd: 500, alert_at_percent: 80}}
"""
    if resources:
        return text
    # the same connections without their resources blocks
    out, skipping = [], False
    for line in text.splitlines(keepends=True):
        if line.strip() == "resources:":
            skipping = True
            continue
        if skipping and line.startswith("        "):
            continue
        skipping = False
        out.append(line)
    return "".join(out)


def commit_to_git(folder: Path) -> bool:
    """Make the folder a git repository with the manifests committed, as a fleet's are (the
    product reads the commit for its audit entries). False when git is not available."""
    ident = ["-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    steps = (["init", "-q"], ["add", "-A"], [*ident, "commit", "-q", "-m", "fleet"])
    try:
        for args in steps:
            subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return False
    return True


def generate_fleet(folder: Path, n: int, *, git: bool = False, resources: bool = True) -> Fleet:
    """Write N manifests into ``folder`` (created) and return the fleet with its secrets;
    with ``git``, commit them in a new repository there; without ``resources``, the
    connections only (no provider-side objects, no resource rows)."""
    folder.mkdir(parents=True, exist_ok=True)
    orgs = [org_name(i) for i in range(1, n + 1)]
    secrets: dict[str, str] = {}
    for org in orgs:
        (folder / f"{org}.yaml").write_text(manifest(org, resources=resources), encoding="utf-8")
        for provider in PROVIDERS:
            var = variable(org, provider)
            secrets[var] = secret_value(var)
    if git:
        commit_to_git(folder)
    return Fleet(folder, orgs, secrets, resources)
