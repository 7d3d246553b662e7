"""Which files a run reads, and reading one: the manifests' paths -> YAML documents.

Kept apart from ``manifest`` (which checks the documents against the catalog) so a command can
find and parse the files before it has imported the catalog's models (``commands.parse_ahead``).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

from reconciler.core.errors import Diagnostics
from reconciler.core.yamlsafe import YamlDocument, load_yaml_documents

SUFFIXES = (".yaml", ".yml")

# reads one manifest file: its documents; raises OSError (unreadable) or YamlError (refused)
ManifestReader = Callable[[Path], list[YamlDocument]]


def read_manifest_file(path: Path) -> list[YamlDocument]:
    """The documents of one file, read and parsed here (``yamlsafe``)."""
    return load_yaml_documents(path.read_bytes(), str(path))


def collect_manifest_files(
    paths: Sequence[str | Path], diags: Diagnostics | None = None
) -> list[Path]:
    """Files named, plus each named folder's ``*.yaml``/``*.yml`` (not recursive), sorted.

    A missing path is a problem: added to ``diags`` when given, else raised as ``InputError``.
    A file named twice (or reached twice through links) is read once: files are told apart by
    device and inode, one ``stat`` each, rather than by resolving every path.
    """
    own = Diagnostics() if diags is None else diags
    unique: dict[tuple[int, int], Path] = {}
    for raw in paths:
        path = Path(raw)
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            own.add(str(path), None, "no such file or folder; check the manifest path")
            continue
        if stat.S_ISDIR(st.st_mode):
            inside = _folder_manifests(path)
            if not inside:
                own.warn(str(path), None, "this folder holds no manifest (*.yaml or *.yml)")
            for file_id, file in inside:
                unique.setdefault(file_id, file)
        elif stat.S_ISREG(st.st_mode):
            unique.setdefault((st.st_dev, st.st_ino), path)
        else:
            own.add(str(path), None, "no such file or folder; check the manifest path")
    if diags is None:
        own.raise_if_errors()
    return list(unique.values())


def _folder_manifests(folder: Path) -> list[tuple[tuple[int, int], Path]]:
    """The folder's regular ``*.yaml``/``*.yml`` files (links followed), by name, with the
    (device, inode) that identifies each."""
    found: list[tuple[str, tuple[int, int]]] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(".") or not entry.name.endswith(SUFFIXES):
                continue
            try:
                if not entry.is_file():
                    continue
                st = entry.stat()  # follows a link: its target is the file read
            except OSError:
                continue  # vanished, or a broken link: not a file
            found.append((entry.name, (st.st_dev, st.st_ino)))
    found.sort()
    return [(file_id, folder / name) for name, file_id in found]
