"""Resources of a connection, checked against the kinds the catalog declares.

Nothing here knows Postmark or Stripe: each kind's shape, fields, identity and default rule come
from the provider's catalog entry, so a new kind is YAML only. Error messages name the field and
what is expected, never the value itself (a URL may carry a token in its query string).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from reconciler.core.catalog import FieldType, Provider, ResourceField, ResourceKind
from reconciler.core.credential_refs import REFERENCE, RESERVED_PREFIX, VARIABLE
from reconciler.core.desired import DesiredResource
from reconciler.core.manifest_source import SourceDocument
from reconciler.core.yamlsafe import Loc

EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
# Query parameter names that carry credentials; a webhook URL is stored and shown in plans.
SECRET_QUERY = re.compile(r"key|token|secret|passw|pwd|auth|sig|credential|session", re.I)


def read_resources(
    src: SourceDocument, path: Loc, provider: Provider, value: Any
) -> tuple[DesiredResource, ...]:
    """Every resource under a connection's ``resources:``; problems reported to ``src``."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        src.error(
            path, f"resources of {provider.name} must be a mapping of resource kind to its settings"
        )
        return ()
    found: list[DesiredResource] = []
    for kind_name, kind_value in value.items():
        kind = provider.resource_kind(kind_name)
        kind_path = (*path, kind_name)
        if kind is None:
            kinds = ", ".join(k.name for k in provider.resources)
            has = f"it has: {kinds}" if kinds else "it has no resources"
            src.error(
                kind_path, f"provider {provider.name} has no resource kind {kind_name!r}; {has}"
            )
        elif kind.shape == "list":
            found.extend(_list_kind(src, kind_path, provider, kind, kind_value))
        elif kind.shape == "object":
            found.extend(_object_kind(src, kind_path, provider, kind, kind_value))
        else:
            found.extend(_value_kind(src, kind_path, provider, kind, kind_value))
    return tuple(found)


def _list_kind(
    src: SourceDocument, path: Loc, provider: Provider, kind: ResourceKind, value: Any
) -> list[DesiredResource]:
    """A list of items keyed by the identity field; duplicates and default rule checked."""
    if not isinstance(value, list):
        src.error(path, f"{kind.name} of {provider.name} must be a list")
        return []
    found: list[DesiredResource] = []
    seen: dict[str, int | None] = {}
    defaults: list[int | None] = []
    unreadable = False  # an item whose default cannot be read: "none has it" would mislead
    for index, item in enumerate(value):
        item_path = (*path, index)
        label = f"{kind.name}[{index}]"
        is_default = isinstance(item, dict) and item.get("default") is True
        unreadable |= not isinstance(item, dict) or not isinstance(item.get("default", False), bool)
        if is_default:
            defaults.append(src.line(item_path))  # counted even when the item has problems
        spec = _fields(src, item_path, provider, kind, item, label)
        if spec is None:
            continue
        identity = item_identity(kind, spec)
        if identity is None:
            continue
        key = _identity_key(kind, identity)
        if key in seen:
            what = (
                kind.identity
                if kind.identity_prefix is None
                else (f"{kind.identity_prefix} and {kind.identity}")
            )
            src.error(
                item_path,
                f"{label} of {provider.name} repeats the {what} of the "
                f"item at line {seen[key]}; each {what} appears once",
            )
            continue
        seen[key] = src.line(item_path)
        found.append(DesiredResource(kind.name, identity, spec, is_default, src.line(item_path)))
    if kind.default == "exactly_one" and value and (defaults or not unreadable):
        _exactly_one_default(src, path, provider, kind, defaults)
    return found


def item_identity(kind: ResourceKind, spec: Mapping[str, Any]) -> str | None:
    """A list item's identity: its identity field, after ``<prefix>:`` when the kind has an
    ``identity_prefix`` (``outbound:https://acme.example/hooks``)."""
    value = spec.get(kind.identity or "")
    if value is None:
        return None
    if kind.identity_prefix is None:
        return str(value)
    prefix = spec.get(kind.identity_prefix)
    return None if prefix is None else f"{prefix}:{value}"


def _exactly_one_default(
    src: SourceDocument,
    path: Loc,
    provider: Provider,
    kind: ResourceKind,
    defaults: list[int | None],
) -> None:
    if not defaults:
        src.error(
            path,
            f"{kind.name} of {provider.name} needs exactly one item with "
            "default: true; none has it",
        )
    elif len(defaults) > 1:
        lines = ", ".join(str(n) for n in defaults)
        src.diags.add(
            src.file,
            defaults[1],
            f"{kind.name} of {provider.name} has {len(defaults)} items with "
            f"default: true (lines {lines}); exactly one may be the default",
        )


def _object_kind(
    src: SourceDocument, path: Loc, provider: Provider, kind: ResourceKind, value: Any
) -> list[DesiredResource]:
    spec = _fields(src, path, provider, kind, value, kind.name)
    if spec is None:
        return []
    return [DesiredResource(kind.name, kind.name, spec, False, src.line(path))]


def _value_kind(
    src: SourceDocument, path: Loc, provider: Provider, kind: ResourceKind, value: Any
) -> list[DesiredResource]:
    assert kind.value is not None  # guaranteed by ResourceKind's own validation
    label = f"{kind.name} of {provider.name}"
    if value is None:
        src.error(path, f"{label} needs a value")
        return []
    if not _check(src, path, kind.value, value, label):
        return []
    return [DesiredResource(kind.name, kind.name, {"value": value}, False, src.line(path))]


@dataclass(frozen=True)
class _Shape:
    """What checking an item of a kind needs, worked out once per kind, not once per item."""

    by_name: dict[str, ResourceField]
    allowed: tuple[str, ...]
    required: tuple[str, ...]
    has_default: bool
    email_identity: bool
    dependent: tuple[ResourceField, ...]  # fields whose values depend on another (values_by)


_SHAPES: dict[int, tuple[ResourceKind, _Shape]] = {}  # id(kind) -> (kind, shape); kind kept
_MAX_SHAPES = 256  # alive so its id is not reused; cleared when many catalogs came and went


def _shape(kind: ResourceKind) -> _Shape:
    hit = _SHAPES.get(id(kind))
    if hit is not None and hit[0] is kind:
        return hit[1]
    by_name = {f.name: f for f in kind.fields}
    has_default = kind.default == "exactly_one"
    identity = by_name.get(kind.identity or "")
    shape = _Shape(
        by_name=by_name,
        allowed=(*by_name, *(("default",) if has_default and "default" not in by_name else ())),
        required=tuple(f.name for f in kind.fields if f.required or f.name == kind.identity),
        has_default=has_default,
        email_identity=identity is not None and identity.type == "email",
        dependent=tuple(f for f in kind.fields if f.values_by is not None),
    )
    if len(_SHAPES) >= _MAX_SHAPES:
        _SHAPES.clear()
    _SHAPES[id(kind)] = (kind, shape)
    return shape


def _fields(
    src: SourceDocument, path: Loc, provider: Provider, kind: ResourceKind, item: Any, label: str
) -> dict[str, Any] | None:
    """Check one mapping of a kind's fields; its spec (sorted keys) when all is well."""
    shape = _shape(kind)
    allowed = shape.allowed
    what = f"{label} of {provider.name}"
    if src.fields(path, item, allowed=allowed, what=what) is None:
        return None
    ok = all(key in allowed for key in item)
    for name in shape.required:
        if name not in item:
            src.error(path, f"{what} is missing the required field {name!r}")
            ok = False
    by_name = shape.by_name
    for key, v in item.items():
        field = by_name.get(key)
        if field is not None:
            ok &= _check(src, (*path, key), field, v, f"{label}.{key} of {provider.name}")
        elif key == "default" and shape.has_default and not isinstance(v, bool):
            src.error((*path, key), f"{label}.default of {provider.name} must be true or false")
            ok = False
    for field in shape.dependent:
        if ok and field.name in item:
            ok = _check_values_by(
                src, path, field, item, f"{label}.{field.name} of {provider.name}"
            )
    if not ok:
        return None
    spec = dict(item)
    for field in kind.fields:
        if field.default_value is not None and field.name not in spec:
            spec[field.name] = field.default_value
    if shape.has_default:
        spec["default"] = item.get("default") is True
    return dict(sorted(spec.items()))


def _identity_key(kind: ResourceKind, identity: Any) -> str:
    return str(identity).casefold() if _shape(kind).email_identity else str(identity)


def _check_values_by(
    src: SourceDocument, path: Loc, field: ResourceField, item: Mapping[str, Any], label: str
) -> bool:
    """The values of ``field`` against what the item's other field allows (catalog
    ``values_by``, e.g. a Quo webhook's events against its type); each value is already one of
    the catalog's, so naming it shows no secret."""
    by = field.values_by
    assert by is not None
    chosen = item.get(by.field)
    allowed = by.values.get(chosen) if isinstance(chosen, str) else None
    if allowed is None:
        return True
    value = item[field.name]
    listed = isinstance(value, list)
    ok = True
    for index, v in enumerate(value if listed else [value]):
        if v not in allowed:
            where = (*path, field.name, index) if listed else (*path, field.name)
            which = f" item {index + 1}" if listed else ""
            src.error(
                where,
                f"{label}{which} ({v}) does not go with {by.field}: {chosen}; "
                f"with {by.field}: {chosen} it must be one of: {', '.join(allowed)}",
            )
            ok = False
    return ok


def _check(src: SourceDocument, path: Loc, field: ResourceField, value: Any, label: str) -> bool:
    """Report what is wrong with ``value`` for ``field``; True when nothing is."""
    if field.type == "list":
        return _check_list(src, path, field, value, label)
    problem = _problem(field.type, field, value)
    if problem:
        src.error(path, f"{label} {problem}")
    return problem is None


def _check_list(
    src: SourceDocument, path: Loc, field: ResourceField, value: Any, label: str
) -> bool:
    if not isinstance(value, list):
        src.error(path, f"{label} must be a list")
        return False
    ok = True
    if field.min_items is not None and len(value) < field.min_items:
        src.error(
            path,
            f"{label} needs at least {field.min_items} item{'s' if field.min_items != 1 else ''}",
        )
        ok = False
    for index, item in enumerate(value):
        problem = _problem(field.items or "string", field, item)
        if problem:
            src.error((*path, index), f"{label} item {index + 1} {problem}")
            ok = False
    return ok


def _problem(kind: FieldType, field: ResourceField, value: Any) -> str | None:
    """What is wrong with a scalar ``value`` of type ``kind`` (None: nothing)."""
    problem = _TYPES[kind](field, value) if kind in _TYPES else "has a type this tool cannot check"
    pattern = field.pattern
    if problem is None and pattern and isinstance(value, str) and not re.fullmatch(pattern, value):
        about = f" ({field.description})" if field.description else ""
        problem = f"does not match the pattern {pattern}{about}"
    return problem


def _text(field: ResourceField, value: Any) -> str | None:
    return None if isinstance(value, str) else "must be text"


def _email(field: ResourceField, value: Any) -> str | None:
    if isinstance(value, str) and EMAIL.match(value):
        return None
    return "is not an email address (name@domain.example)"


def _phone(field: ResourceField, value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return 'was read as a number: write the E.164 phone number in quotes, e.g. "+15555550100"'
    if isinstance(value, str) and E164.match(value):
        return None
    return (
        "is not an E.164 phone number ('+', country code and number, digits only, "
        "e.g. +15555550100)"
    )


def _https_url(field: ResourceField, value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be an https:// URL"
    try:
        parts = urlsplit(value)
        _ = parts.port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme != "https":
        return "must be an https:// URL"
    if not parts.hostname:
        return "has no host name"
    if parts.username is not None or parts.password is not None:
        return "must not carry a user name or password; the URL is stored and shown in plans"
    for name, _value in parse_qsl(parts.query, keep_blank_values=True):
        if SECRET_QUERY.search(name):
            return (
                f"carries a credential in its query string (parameter {name!r}); the URL is "
                "stored and shown in plans: authenticate the endpoint another way"
            )
    return None


def _enum(field: ResourceField, value: Any) -> str | None:
    values = field.values or []
    if value in values:
        return None
    if field.open_pattern and isinstance(value, str) and re.fullmatch(field.open_pattern, value):
        return None  # apply verifies it with the provider (catalog ``verify``)
    more = " (or another id the provider lists for the key)" if field.open_pattern else ""
    return f"must be one of: {', '.join(values)}{more}"


def _boolean(field: ResourceField, value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _integer(field: ResourceField, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return "must be a whole number"
    return _bounds(field, value)


def _number(field: ResourceField, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "must be a number"
    if not math.isfinite(value):
        return "must be a finite number"
    return _bounds(field, value)


def _bounds(field: ResourceField, value: float) -> str | None:
    if field.min is not None and value < field.min:
        return f"must be at least {_num(field.min)}"
    if field.max is not None and value > field.max:
        return f"must be at most {_num(field.max)}"
    return None


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _secret_ref(field: ResourceField, value: Any) -> str | None:
    match = REFERENCE.match(value) if isinstance(value, str) else None
    if match is None:
        return (
            "must be a whole ${VAR} reference (e.g. ${ACME_STRIPE_WEBHOOK_SECRET}); "
            "plaintext secrets do not go into git"
        )
    name = match.group(1)
    if not VARIABLE.match(name):
        return "refers to an invalid variable name (upper-case letters, digits and '_')"
    if name.startswith(RESERVED_PREFIX):
        return f"refers to a {RESERVED_PREFIX} variable, the reconciler's own settings"
    return None


def _nested_list(field: ResourceField, value: Any) -> str | None:
    return "must not be a list inside a list"


_TYPES: dict[str, Callable[[ResourceField, Any], str | None]] = {
    "string": _text,
    "email": _email,
    "phone_e164": _phone,
    "https_url": _https_url,
    "enum": _enum,
    "boolean": _boolean,
    "integer": _integer,
    "number": _number,
    "list": _nested_list,
    "secret_ref": _secret_ref,
}
