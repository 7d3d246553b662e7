"""The manifests checked in the child that parsed them (``commands.parse_ahead``), for plan and
apply: the command then receives its desired state instead of the documents (issue 16).

The child loads the catalog and runs ``load_manifests`` itself, exactly as the command would,
with two differences the command makes up for:

- The child does not know the database. ``load_manifests`` asks the database's connected pairs
  only about an inactive provider or a dependency the manifest does not list; the child gives
  it a set that answers "not connected" and notes the question. A check that asked is not used:
  the command checks the documents itself, against the real pairs.
- Secrets do not cross the pipe. Each ``Secret`` in the desired state is pickled as the name of
  its environment variable (pickle's persistent ids), and the command makes it again from its
  own environment, which the child inherited: the same value. ``Secret`` refuses to be pickled
  any other way, so a secret anywhere else would fail the child's pickling, not leak.

What crosses is what ``load_manifests`` returns: the organizations, the problems found (each
with file, line and message, never a value) and the organizations found valid, in order.
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.core.desired import Desired
from reconciler.core.errors import Diagnostics
from reconciler.core.manifest_files import ManifestReader
from reconciler.core.secret import Secret

TAG = b"C"  # the first byte of a checked state on the pipe (``parse_ahead``'s documents: b"D")


@dataclass(frozen=True)
class CheckAhead:
    """What the child checks the manifests against: the catalog in ``catalog_dir`` and, with
    ``resolve_secrets``, the variables the manifests name (plan and apply always read them).
    ``provider_side``: the command reads the providers' side of declared resources (a plan
    without ``--refresh=false``, an apply)."""

    catalog_dir: str | None
    resolve_secrets: bool = True
    provider_side: bool = False


def worth_checking(check: CheckAhead, documents: Iterable[Any]) -> bool:
    """Whether the command gains by receiving the checked state rather than the documents.

    A command that reads the provider side starts each organization's reads as soon as it has
    checked that organization's manifest (``Prefetch``); a checked state arrives whole, once
    the child has checked the last one, and holds those reads back (a no-op plan of 1,000
    organizations with resources: 3.01 s against 2.88 s). So where any connection declares
    resources and the provider side is read, the command is sent the documents."""
    if not check.provider_side:
        return True
    for value in documents:
        spec = value.get("spec") if isinstance(value, dict) else None
        connections = spec.get("connections") if isinstance(spec, dict) else None
        if isinstance(connections, list) and any(
            isinstance(c, dict) and c.get("resources") for c in connections
        ):
            return False
    return True


@dataclass(frozen=True)
class Checked:
    """``load_manifests``' answer, made in the child; ``valid``: the organizations it would
    have passed to ``on_organization``, in that order."""

    files: tuple[str, ...]
    desired: Desired
    diags: Diagnostics
    valid: tuple[str, ...]
    catalog_dir: str | None
    resolve_secrets: bool


class _Asked(frozenset[tuple[str, str]]):
    """The database's connected pairs as the child sees them: none, with a note of any question."""

    asked = False

    def __contains__(self, pair: object) -> bool:
        self.asked = True
        return False


def check_in_child(files: list[Path], read: ManifestReader, check: CheckAhead) -> bytes | None:
    """In the child: the checked state, tagged, to write to the pipe; None when the command
    must check the documents itself (the check asked about the database, or failed)."""
    from reconciler.core.catalog import load_catalog  # the child's own; the command has its own
    from reconciler.core.manifest import load_manifests

    try:
        catalog = load_catalog(check.catalog_dir)
    except Exception:  # the command loads it too, and words the problem
        return None
    valid: list[str] = []
    asked = _Asked()
    desired, diags = load_manifests(
        files,
        catalog,
        os.environ,
        existing=asked,
        resolve_secrets=check.resolve_secrets,
        on_organization=lambda org: valid.append(org.name),
        read=read,
    )
    if asked.asked:
        return None
    out = io.BytesIO()
    out.write(TAG)
    checked = Checked(
        tuple(str(f) for f in files),
        desired,
        diags,
        tuple(valid),
        check.catalog_dir,
        check.resolve_secrets,
    )
    _SecretsByName(out, protocol=pickle.HIGHEST_PROTOCOL).dump(checked)
    return out.getvalue()


def receive_checked(
    data: bytes,
    environ: Mapping[str, str],
    files: Iterable[Path],
    catalog_dir: str | None,
    resolve_secrets: bool,
) -> Checked | None:
    """In the command: the checked state the child sent, with its secrets made again from
    ``environ``; None when it is not the check the command would make (other files, another
    catalog, secrets read or not) or cannot be read."""
    try:
        checked = _SecretsFrom(io.BytesIO(memoryview(data)[len(TAG) :]), environ).load()
    except (pickle.UnpicklingError, KeyError, EOFError, AttributeError, TypeError):
        return None
    if not isinstance(checked, Checked):
        return None
    if (checked.catalog_dir, checked.resolve_secrets) != (catalog_dir, resolve_secrets):
        return None
    if checked.files != tuple(str(f) for f in files):
        return None
    return checked


class _SecretsByName(pickle.Pickler):
    def persistent_id(self, obj: Any) -> str | None:
        if type(obj) is Secret:
            if not obj.source:
                raise pickle.PicklingError("a secret without its variable's name")
            return obj.source
        return None


class _SecretsFrom(pickle.Unpickler):
    def __init__(self, data: io.BytesIO, environ: Mapping[str, str]) -> None:
        super().__init__(data)
        self.environ = environ

    def persistent_load(self, pid: Any) -> Secret:
        value = self.environ.get(pid) if isinstance(pid, str) else None
        if not value:  # the child read it, so it is there: else this is not the same run
            raise pickle.UnpicklingError("a secret's variable is not set here")
        return Secret(value, source=pid)
