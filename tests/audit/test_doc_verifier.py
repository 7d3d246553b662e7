"""A second implementation of the audit chain, written from docs/audit-log.md alone (its own
HKDF, its own JSON serializer), checked against what the reconciler wrote."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from reconciler.crypto import generate_entry
from tests.conftest import Env

GENESIS = "0" * 64
_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def audit_subkey(entry: str) -> tuple[str, bytes]:
    key_id, b64 = entry.split(":", 1)
    prk = hmac.new(b"\0" * 32, base64.b64decode(b64), hashlib.sha256).digest()
    return key_id, hmac.new(prk, b"reconciler/audit-log/v1\x01", hashlib.sha256).digest()


def string(s: str) -> str:
    out = []
    for ch in s:
        if ch in _SHORT:
            out.append(_SHORT[ch])
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def serialize(v: Any) -> str:
    """Section 3's rules, by hand."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return string(v)
    if isinstance(v, list):
        return "[" + ",".join(serialize(x) for x in v) + "]"
    assert isinstance(v, dict)
    return "{" + ",".join(f"{string(k)}:{serialize(v[k])}" for k in sorted(v)) + "}"


def utc_text(value: Any) -> str:
    ts = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "+00:00"


def canonical(row: Any, prev: str) -> bytes:
    return serialize(
        {
            "seq": row.seq,
            "organization": row.organization,
            "actor": row.actor,
            "action": row.action,
            "target": row.target,
            "method": row.method,
            "details": json.loads(row.details),
            "git_commit": row.git_commit,
            "created_at": utc_text(row.created_at),
            "key_id": row.key_id,
            "prev": prev,
        }
    ).encode("utf-8")


def test_the_document_is_enough_to_verify_the_chain(env: Env) -> None:
    k1 = env.vars["RECONCILER_ENCRYPTION_KEYS"]
    k2 = generate_entry("k2")
    env.vars["RECONCILER_ACTOR"] = 'ci "bot"\t\u00e9\u2603/\x01'  # escapes and non-ASCII
    assert env.run("apply").exit_code == 0
    assert env.run("keys", "rotate", RECONCILER_ENCRYPTION_KEYS=f"{k2},{k1}").exit_code == 0
    keys = dict(audit_subkey(e) for e in (k1, k2))
    with env.session() as s:
        rows = list(s.execute(text("SELECT * FROM integration_audit_log ORDER BY id")))
        head = s.execute(text("SELECT audit_head FROM reconciler_state WHERE id = 1")).scalar()
    prev = GENESIS
    digest = hashlib.sha256()
    for i, row in enumerate(rows, start=1):
        assert row.seq == i
        mac = hmac.new(keys[row.key_id], canonical(row, prev), hashlib.sha256).hexdigest()
        assert mac == row.hmac, f"entry #{row.seq}"
        if row.action == "keys.rotate":
            details = json.loads(row.details)
            assert details["attests_through"] == i - 1
            assert details["attests_digest"] == digest.hexdigest()
            assert details["to"] == "k2" and {"credentials", "from"} <= set(details)
        digest.update(canonical(row, "") + b"\0" + row.hmac.encode("ascii") + b"\0")
        prev = row.hmac
    assert rows[-1].action == "keys.rotate" and rows[-1].key_id == "k2"
    assert head == prev
    r = env.run("audit", "head", RECONCILER_ENCRYPTION_KEYS=k2)
    assert r.stdout.strip() == prev
