"""The provider catalog: one YAML file per provider, loaded into strict pydantic models.

Adding a provider is adding a file: the health check (request and how to read the answer) and
the resource kinds are data, interpreted generically by ``reconciler.health`` and the planner.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from reconciler.core.errors import Diagnostics, InputError
from reconciler.core.yamlsafe import YamlError, load_yaml_documents

Outcome = Literal["healthy", "invalid_credentials", "rate_limited", "unreachable", "oauth_denied"]
SLUG = re.compile(r"^[a-z][a-z0-9_]*$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CredentialField(Strict):
    name: str
    label: str
    required: bool = True
    sensitive: bool = True


class AuthPlacement(Strict):
    """Where a credential goes in the request: a header or a query parameter.

    ``format`` is filled with the credential fields, e.g. ``"Bearer {api_key}"``; Quo takes the
    raw key (``"{api_key}"``), Stripe and Anthropic differ in header name and prefix.
    """

    location: Literal["header", "query"]
    name: str
    format: str = "{api_key}"


class HealthRequest(Strict):
    method: Literal["GET", "POST"] = "GET"
    path: str
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str] = Field(default_factory=dict)
    auth: list[AuthPlacement]

    @field_validator("path")
    @classmethod
    def _path_is_absolute(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError("the health check path must start with '/'")
        return v


class Match(Strict):
    """A condition on an answer. Every given part must hold.

    ``status``: the HTTP status is one of these. ``json``: each dotted path in the JSON body has
    one of the listed values. ``json_present``: each dotted path exists. ``json_absent``: each
    dotted path is missing (or the body is not JSON).
    """

    status: list[int] | None = None
    json_values: dict[str, list[str | int | bool]] | None = Field(default=None, alias="json")
    json_present: list[str] | None = None
    json_absent: list[str] | None = None


class Rule(Strict):
    match: Match
    outcome: Outcome
    note: str = ""


class HealthCheck(Strict):
    """The cheapest authenticated read-only call of the real API, and how to read its answer.

    Rules are tried in order; the first match decides. When none matches, the generic reading
    applies: 2xx healthy, 401/403 invalid_credentials, 429 rate_limited, anything else
    unreachable.
    """

    request: HealthRequest
    rules: list[Rule] = Field(default_factory=list)
    error_code: list[str] = Field(default_factory=list)  # dotted JSON paths, first found wins
    identity: dict[str, str] = Field(default_factory=dict)  # name -> dotted JSON path
    retry_after_headers: list[str] = Field(default_factory=lambda: ["Retry-After"])
    reset_headers: list[str] = Field(default_factory=list)  # epoch seconds, e.g. X-Rate-Limit-Reset
    identity_from_key: dict[str, list[list[str]]] = Field(default_factory=dict)
    # name -> [[key prefix, value], ...], e.g. mode: [["sk_live_", "live"], ["sk_test_", "test"]]


class RateLimit(Strict):
    """A provider's documented request rate per key, shared by every request of ours that
    carries the key in one run (health checks, refresh reads, writes)::

        rate_limit:
          per_second: 25              # Stripe in test mode
          key_prefixes: {sk_live_: 100, rk_live_: 100}
    """

    per_second: float = Field(gt=0)
    key_prefixes: dict[str, float] = Field(default_factory=dict)  # first matching prefix wins
    credential: str = "api_key"  # the credential field whose value is the key

    @field_validator("key_prefixes")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        if any(rate <= 0 for rate in v.values()):
            raise ValueError("a rate limit must be positive")
        return v

    def for_key(self, key: str) -> float:
        return next((r for p, r in self.key_prefixes.items() if key.startswith(p)), self.per_second)


class OAuth2(Strict):
    token_path: str
    scopes: list[str] = Field(default_factory=list)


FieldType = Literal[
    "string",
    "email",
    "phone_e164",
    "https_url",
    "enum",
    "boolean",
    "integer",
    "number",
    "list",
    "secret_ref",  # a whole ${VAR} reference, kept as written; resolved where it is used
]


class VerifyValue(Strict):
    """How apply asks the provider whether a value outside the catalog's list exists for the
    key: a GET of ``path`` (``{value}`` is filled in, URL-quoted) with the health check's
    auth and headers. 2xx: it does; 404: it does not."""

    path: str


class ValuesBy(Strict):
    """The values an enum field (or each item of a list of enums) may take depend on another
    field of the same item, e.g. the events a Quo webhook of each ``type`` accepts::

        values_by:
          field: type
          values: {messages: [message.received, message.delivered], ...}

    A value of ``field`` not listed leaves the field's own ``values`` in force."""

    field: str
    values: dict[str, list[str]]


class ResourceField(Strict):
    name: str
    type: FieldType
    required: bool = False
    values: list[str] | None = None  # enum
    pattern: str | None = None  # string, or each item of a list
    items: FieldType | None = None  # list
    min: float | None = None
    max: float | None = None
    min_items: int | None = None
    description: str = ""
    # enum only: a value outside ``values`` matching ``open_pattern`` passes validation and is
    # verified against the provider by apply (e.g. a model the key's /v1/models lists)
    open_pattern: str | None = None
    verify: VerifyValue | None = None
    # filled in when the manifest leaves the field out (e.g. Postmark's message_stream: outbound)
    default_value: str | int | bool | None = None
    values_by: ValuesBy | None = None


class RemoteSpec(Strict):
    """How a resource kind exists at the provider, through its API (SPEC section 8).

    ``compare``: the fields compared with the provider's object (drift). ``update``: those the
    API changes in place; a change of another compared field replaces the object (delete and
    create, e.g. Quo webhooks, which have no update). ``signing_secret``: the create answer
    carries a secret shown only then, stored encrypted. ``credential``: the credential field
    the API needs; a connection without it keeps the kind in our tables only.
    ``existence_only``: the provider holds the objects and the tool only checks that each
    declared one exists (Quo phone numbers).
    """

    compare: list[str] = Field(default_factory=list)
    update: list[str] = Field(default_factory=list)
    signing_secret: bool = False
    idempotency_key: bool = False  # creates carry an Idempotency-Key the provider replays (Stripe)
    credential: str = "api_key"
    existence_only: bool = False


class ResourceKind(Strict):
    """A kind of resource a provider has, as a manifest writes it under ``resources:``.

    ``shape`` list: a list of objects keyed by ``identity``; object: one mapping; value: one
    scalar described by ``value``. ``default``: ``exactly_one`` means a non-empty list has
    exactly one item with ``default: true``.
    """

    name: str
    shape: Literal["list", "object", "value"]
    identity: str | None = None
    fields: list[ResourceField] = Field(default_factory=list)
    value: ResourceField | None = None
    default: Literal["none", "exactly_one"] = "none"
    description: str = ""
    # a second field that, with ``identity``, makes an item's identity: "<prefix>:<identity>"
    # (Postmark webhooks: "outbound:https://..."; Quo webhooks: "messages:https://...")
    identity_prefix: str | None = None
    remote: RemoteSpec | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ResourceKind:
        names = {f.name for f in self.fields}
        if self.shape == "list" and (self.identity is None or self.identity not in names):
            raise ValueError(f"list resource {self.name!r} needs an identity among its fields")
        if self.identity_prefix is not None and self.identity_prefix not in names:
            raise ValueError(f"the identity_prefix of {self.name!r} must be one of its fields")
        if self.remote is not None:
            unknown = sorted(set(self.remote.compare + self.remote.update) - names)
            if unknown:
                raise ValueError(
                    f"remote fields of {self.name!r} are not among its fields: {unknown}"
                )
        for f in self.fields:
            if f.values_by is not None:
                _check_values_by(self.name, f, names)
        if self.shape == "value" and self.value is None:
            raise ValueError(f"value resource {self.name!r} needs a 'value' field description")
        return self


def _check_values_by(kind: str, field: ResourceField, names: set[str]) -> None:
    by = field.values_by
    assert by is not None
    if field.type != "enum" and (field.type != "list" or field.items != "enum"):
        raise ValueError(f"values_by of {kind}.{field.name} needs an enum or a list of enums")
    if by.field not in names or by.field == field.name:
        raise ValueError(f"values_by of {kind}.{field.name} must name another field of {kind}")
    stray = sorted({v for vs in by.values.values() for v in vs} - set(field.values or []))
    if stray:
        raise ValueError(f"values_by of {kind}.{field.name} lists values it lacks: {stray}")


class Provider(Strict):
    name: str
    display_name: str
    category: str
    description: str
    logo: str
    active: bool = True
    auth: Literal["api_key", "oauth2"]
    credentials: list[CredentialField]
    depends_on: list[str] = Field(default_factory=list)
    base_url: str
    health_check: HealthCheck
    toggle: bool = False  # has the active/inactive toggle (mapping providers)
    resources: list[ResourceKind] = Field(default_factory=list)
    oauth2: OAuth2 | None = None
    rate_limit: RateLimit | None = None  # None: no documented per-key limit, nothing paced

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not SLUG.match(v):
            raise ValueError("a provider name is a lower-case slug: letters, digits, '_'")
        return v

    @field_validator("base_url")
    @classmethod
    def _https_origin(cls, v: str) -> str:
        if not re.match(r"^https://[A-Za-z0-9.-]+(:[0-9]+)?$", v):
            raise ValueError(
                "base_url must be an https origin with no path, e.g. https://api.x.com"
            )
        return v

    @model_validator(mode="after")
    def _oauth_consistent(self) -> Provider:
        if self.auth == "oauth2" and self.oauth2 is None:
            raise ValueError("auth oauth2 needs an 'oauth2' section with token_path")
        fields = {c.name for c in self.credentials}
        if self.rate_limit is not None and self.rate_limit.credential not in fields:
            raise ValueError(
                f"rate_limit counts the credential {self.rate_limit.credential!r}, "
                "which the provider does not declare"
            )
        for kind in self.resources:
            if kind.remote is not None and kind.remote.credential not in fields:
                raise ValueError(
                    f"resource {kind.name!r} needs the credential {kind.remote.credential!r}, "
                    "which the provider does not declare"
                )
        return self

    def resource_kind(self, name: str) -> ResourceKind | None:
        return next((k for k in self.resources if k.name == name), None)

    @property
    def env_name(self) -> str:
        return self.name.upper()


class Catalog(BaseModel):
    model_config = ConfigDict(frozen=True)

    providers: dict[str, Provider]
    source: str = ""
    digest: str = ""  # sha256 over the files, so a saved plan can tell the catalog changed
    logos: dict[str, str] = Field(default_factory=dict)  # provider -> SVG text

    def get(self, name: str) -> Provider | None:
        return self.providers.get(name)

    def __iter__(self) -> Any:  # pragma: no cover - pydantic's own iteration is not wanted
        return iter(self.providers.values())

    def dependency_order(self, names: Iterable[str]) -> list[str]:
        """Names sorted so that every provider comes after what it depends on (stable by name)."""
        wanted = set(names)
        order: list[str] = []
        seen: set[str] = set()

        def visit(n: str) -> None:
            if n in seen:
                return
            seen.add(n)
            p = self.providers.get(n)
            for d in sorted(p.depends_on if p else []):
                if d in wanted:
                    visit(d)
            order.append(n)

        for n in sorted(wanted):
            visit(n)
        return order


def default_catalog_dir() -> Path:
    """The catalog shipped inside the package (``reconciler/catalog``), wherever it is installed.

    The repository's top-level ``catalog/`` is a link to the same folder, so a checkout, an
    editable install, a wheel and pipx all read the one catalog, and no path is guessed.
    """
    return Path(str(resources.files("reconciler") / "catalog"))


def load_catalog(directory: str | Path | None = None) -> Catalog:
    """Load every ``*.yaml`` of a catalog folder; report every problem at once."""
    folder = Path(directory) if directory is not None else default_catalog_dir()
    diags = Diagnostics()
    if not folder.is_dir():
        diags.add(str(folder), None, "catalog folder not found; pass --catalog DIR")
        raise InputError(diags)
    providers: dict[str, Provider] = {}
    logos: dict[str, str] = {}
    h = hashlib.sha256()
    files = sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml"))
    if not files:
        diags.add(str(folder), None, "the catalog folder holds no provider files (*.yaml)")
    for path in files:
        raw = path.read_bytes()
        h.update(path.name.encode() + b"\0" + raw + b"\0")
        try:
            docs = load_yaml_documents(raw, str(path))
        except YamlError as e:
            diags.items.extend(e.diagnostics)
            continue
        if len(docs) != 1 or not isinstance(docs[0].value, Mapping):
            diags.add(str(path), 1, "a catalog file holds exactly one provider mapping")
            continue
        doc = docs[0]
        try:
            provider = Provider.model_validate(doc.plain())
        except ValidationError as e:
            for err in e.errors():
                loc = ".".join(str(x) for x in err["loc"])
                diags.add(str(path), doc.line_of(err["loc"]), f"{loc}: {err['msg']}")
            continue
        if provider.name in providers:
            diags.add(
                str(path), doc.line_of(("name",)), f"provider {provider.name!r} is defined twice"
            )
            continue
        if path.stem != provider.name:
            diags.add(
                str(path),
                doc.line_of(("name",)),
                f"the file name must be the provider name: rename it to {provider.name}.yaml",
            )
        providers[provider.name] = provider
        logo_path = (folder / provider.logo).resolve()
        if logo_path.is_file() and logo_path.is_relative_to(folder.resolve()):
            logos[provider.name] = logo_path.read_text(encoding="utf-8")
            h.update(logo_path.read_bytes())
    for p in providers.values():
        for dep in p.depends_on:
            if dep not in providers:
                diags.add(
                    str(folder / f"{p.name}.yaml"),
                    None,
                    f"provider {p.name!r} depends on {dep!r}, which is not in the catalog",
                )
    cycle = _find_cycle(providers)
    if cycle:
        diags.add(str(folder), None, "the catalog's depends_on has a cycle: " + " -> ".join(cycle))
    diags.raise_if_errors()
    return Catalog(providers=providers, source=str(folder), digest=h.hexdigest(), logos=logos)


def _find_cycle(providers: Mapping[str, Provider]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for d in sorted(providers[n].depends_on if n in providers else []):
            if d not in providers:
                continue
            if state.get(d) == 1:
                return [*stack[stack.index(d) :], d]
            if d not in state and (found := visit(d)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(providers):
        if n not in state and (found := visit(n)):
            return found
    return None
