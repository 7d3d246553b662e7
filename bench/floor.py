"""The floor: only the work no plan can avoid, for the same fleet and the same database.

1. parse every manifest file (PyYAML's C loader, ``CSafeLoader``);
2. read every row of the six tables the SaaS reads (the plain DB-API driver: ``sqlite3`` or
   ``psycopg``, no ORM);
3. compute the keyed HMAC-SHA256 fingerprint of every secret the manifests name, bound to its
   address the way the product binds it (length-prefixed organization, provider, user, field).

It imports nothing of ``reconciler`` and nothing it does not need, so its process start-up is
the floor's too. ``bench/run.py`` runs it as a subprocess beside each measured command, on the
same state, and divides. Run alone::

    python bench/floor.py --manifests DIR --db-url sqlite:///x.db --json out.json

Secrets come from the environment (the manifests' ``${VAR}`` references) and the key from
``RECONCILER_ENCRYPTION_KEYS``; neither is ever printed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import struct
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

TABLES = (
    "integration_instances",
    "integration_connections",
    "integration_credentials",
    "integration_resources",
    "integration_health",
    "integration_audit_log",
)
FINGERPRINT_LABEL = b"reconciler/credential-fingerprint/v1"
REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
PARTS = ("parse", "read", "hmac")


def parse_manifests(folder: Path) -> list[dict[str, Any]]:
    """Every YAML document of every ``*.yaml``/``*.yml`` file in the folder."""
    docs: list[dict[str, Any]] = []
    for path in sorted(folder.iterdir()):
        if path.suffix in (".yaml", ".yml"):
            docs.extend(d for d in yaml.load_all(path.read_bytes(), Loader=yaml.CSafeLoader) if d)
    return docs


def read_tables(db_url: str) -> int:
    """Fetch every row of the six tables; the number of rows. 0 when nothing exists yet."""
    if db_url.startswith("sqlite"):
        return _read_sqlite(db_url)
    return _read_postgresql(db_url)


def _read_sqlite(db_url: str) -> int:
    import sqlite3

    path = db_url.split(":///", 1)[1]
    if not Path(path).exists():
        return 0
    con = sqlite3.connect(path)
    try:
        present = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        return sum(_count_rows(con, t) for t in TABLES if t in present)
    finally:
        con.close()


def _read_postgresql(db_url: str) -> int:
    import psycopg

    url = re.sub(r"^postgres(ql)?(\+psycopg)?://", "postgresql://", db_url)
    with psycopg.connect(url) as con:
        present = {
            r[0]
            for r in con.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
        }
        return sum(_count_rows(con, t) for t in TABLES if t in present)


def _count_rows(con: Any, table: str) -> int:
    """Fetch every row (into Python objects, as any reader must) and count them."""
    return len(con.execute(f"SELECT * FROM {table}").fetchall())


def fingerprint_key(keys_value: str) -> bytes:
    """The fingerprint subkey of the primary key: HKDF-SHA256 (no salt, info = label)."""
    master = base64.b64decode(keys_value.split(",", 1)[0].split(":", 1)[1])
    prk = hmac.new(b"\0" * 32, master, hashlib.sha256).digest()
    return hmac.new(prk, FINGERPRINT_LABEL + b"\x01", hashlib.sha256).digest()


def _prefixed(*items: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(item)) + item for item in items)


def secrets_of(docs: Iterable[dict[str, Any]]) -> Iterable[tuple[str, str, str, str, str]]:
    """(organization, provider, owner, field, variable) for every credential reference."""
    for doc in docs:
        org = doc["metadata"]["name"]
        for conn in doc["spec"].get("connections") or ():
            for field, ref in (conn.get("credentials") or {}).items():
                m = REFERENCE.match(str(ref))
                if m:
                    yield org, conn["provider"], conn["owner"], field, m.group(1)


def fingerprints(docs: list[dict[str, Any]], environ: Mapping[str, str]) -> int:
    """HMAC every secret the manifests name; the number made."""
    key = fingerprint_key(environ["RECONCILER_ENCRYPTION_KEYS"])
    n = 0
    for org, provider, owner, field, var in secrets_of(docs):
        message = _prefixed(
            org.encode(), provider.encode(), owner.encode(), field.encode(), environ[var].encode()
        )
        hmac.new(key, message, hashlib.sha256).hexdigest()
        n += 1
    return n


def measure(
    folder: Path, db_url: str | None, environ: Mapping[str, str], parts: Iterable[str] = PARTS
) -> dict[str, Any]:
    """Time each part of the floor in this process; counts say the work was really done."""
    wanted = set(parts)
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    docs = parse_manifests(folder)
    out["parse_s"], out["documents"] = time.perf_counter() - t0, len(docs)
    if "read" in wanted and db_url:
        t0 = time.perf_counter()
        out["rows"] = read_tables(db_url)
        out["read_s"] = time.perf_counter() - t0
    if "hmac" in wanted:
        t0 = time.perf_counter()
        out["fingerprints"] = fingerprints(docs, environ)
        out["hmac_s"] = time.perf_counter() - t0
    return out


def peak_rss_kb() -> int | None:
    """Peak resident memory since exec (``VmHWM``), which ``ru_maxrss`` overstates for a child
    forked from a larger parent; None where /proc is missing."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            return next((int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:")), None)
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--manifests", type=Path, required=True)
    ap.add_argument("--db-url", default=None, help="Omit for the parse-only floor (validate).")
    ap.add_argument("--parts", default=",".join(PARTS), help="Comma list of parse,read,hmac.")
    ap.add_argument("--json", type=Path, default=None, help="Write the timings here.")
    args = ap.parse_args(argv)
    result = measure(args.manifests, args.db_url, os.environ, args.parts.split(","))
    result["peak_rss_kb"] = peak_rss_kb()
    text = json.dumps(result, sort_keys=True)
    if args.json:
        args.json.write_text(text, encoding="utf-8")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
