"""`reconciler import` (SPEC section 9), as a new user tries it: a fleet made partly by apply and
partly in the SaaS's screens is imported, validated, planned (only adopt), applied, and then
plans "No changes.", all with no secret in the environment."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from sqlalchemy import text

from reconciler.crypto import CredentialAddress, KeyRing
from tests.conftest import CANARIES, Env, assert_no_canary
from tests.security.test_canaries import dump_database

UI_SECRET = "sk_live_CANARYmade-in-the-ui-88"


def ui_instance(env: Env, org: str, provider: str, status: str = "active") -> int:
    """Rows as the SaaS's own screens write them: plain SQL, only SPEC section 3's columns."""
    with env.session() as s, s.begin():
        s.execute(
            text(
                "INSERT INTO integration_instances (organization, provider, status) "
                "VALUES (:o, :p, :s)"
            ),
            {"o": org, "p": provider, "s": status},
        )
        return s.scalar(
            text("SELECT id FROM integration_instances WHERE organization = :o AND provider = :p"),
            {"o": org, "p": provider},
        )


def ui_connection(env: Env, instance: int, user: str, status: str = "connected") -> int:
    with env.session() as s, s.begin():
        s.execute(
            text(
                "INSERT INTO integration_connections (instance_id, user_email, status) "
                "VALUES (:i, :u, :s)"
            ),
            {"i": instance, "u": user, "s": status},
        )
        return s.scalar(
            text(
                "SELECT id FROM integration_connections WHERE instance_id = :i AND user_email = :u"
            ),
            {"i": instance, "u": user},
        )


def ui_credential(env: Env, connection: int, address: CredentialAddress) -> None:
    ring = KeyRing.from_env(env.vars)
    with env.session() as s, s.begin():
        s.execute(
            text(
                "INSERT INTO integration_credentials (connection_id, field, ciphertext, key_id) "
                "VALUES (:c, :f, :t, :k)"
            ),
            {
                "c": connection,
                "f": address.field,
                "t": ring.encrypt(UI_SECRET, address),
                "k": ring.primary_id,
            },
        )


def ui_resource(env: Env, instance: int, kind: str, **columns: object) -> None:
    names = ", ".join(["instance_id", "kind", *columns])
    values = ", ".join([":instance_id", ":kind", *(f":{c}" for c in columns)])
    with env.session() as s, s.begin():
        s.execute(
            text(f"INSERT INTO integration_resources ({names}) VALUES ({values})"),
            {"instance_id": instance, "kind": kind, **columns},
        )


def build_fleet(env: Env) -> None:
    """acme and globex by apply; initech only in the SaaS's screens; a UI connection in globex."""
    r = env.run("apply")
    assert r.exit_code == 0, r.output
    stripe = ui_instance(env, "initech", "stripe")
    conn = ui_connection(env, stripe, "ops@initech.example")
    ui_credential(
        env, conn, CredentialAddress("initech", "stripe", "ops@initech.example", "api_key")
    )
    mapbox = ui_instance(env, "initech", "mapbox", status="inactive")
    ui_connection(env, mapbox, "b@initech.example")
    ui_connection(env, mapbox, "a@initech.example", status="error")
    postmark = ui_instance(env, "initech", "postmark")
    ui_connection(env, postmark, "ops@initech.example")
    # one sender with only the SaaS's columns, one with the details this tool reads
    ui_resource(env, postmark, "sender_emails", is_default=True)
    ui_resource(
        env,
        postmark,
        "sender_emails",
        identity="hello@initech.example",
        spec=json.dumps({"default": True, "email": "hello@initech.example", "name": "Initech"}),
        is_default=True,
    )
    ui_instance(env, "initech", "google_maps")  # no connection: nothing to keep
    ui_instance(env, "initech", "fax_machine")  # not in the catalog
    quo = ui_instance(env, "globex", "quo")
    ui_connection(env, quo, "admin@globex.example")


def no_secrets(env: Env) -> None:
    for name in CANARIES:
        env.vars.pop(name)
    assert not any(k for k in env.vars if k.endswith(("_KEY", "_TOKEN")))


def read_all(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_import_validate_plan_adopt_apply_no_changes(env: Env) -> None:
    build_fleet(env)
    shutil.rmtree(env.cwd / "manifests")
    no_secrets(env)
    before = dump_database(env)

    r = env.run("import", "--out", "imported")
    assert r.exit_code == 0, r.output
    assert "Imported 3 organization(s)" in r.stdout
    out = env.cwd / "imported"
    files = read_all(out)
    assert sorted(files) == ["acme.yaml", "credentials.env.example", "globex.yaml", "initech.yaml"]
    assert dump_database(env) == before  # nothing written to the database
    for name, data in files.items():
        assert_no_canary(data, name)
        assert b"rcv1:" not in data and UI_SECRET.encode() not in data
    initech = files["initech.yaml"].decode()
    assert initech.startswith("# Imported by `reconciler import` from ")
    assert "credentials: keep" in initech and "adopt: true" in initech
    assert "other connections, left unmanaged: a@initech.example" in initech
    assert "1 sender_emails row(s) without their fields were not imported" in initech
    assert "initech/google_maps: an instance with no connection" in initech
    assert "initech/fax_machine: provider 'fax_machine' is not in the catalog" in initech
    env_file = files["credentials.env.example"].decode()
    assert "INITECH_STRIPE_API_KEY=\n" in env_file
    assert all(
        line.endswith("=") for line in env_file.splitlines() if "=" in line and line[0] != "#"
    )

    # never overwritten without --force; byte-identical when it is
    r = env.run("import", "--out", "imported")
    assert r.exit_code == 1
    assert "acme.yaml" in r.output and "--force" in r.output
    r = env.run("import", "--out", "imported", "--force")
    assert r.exit_code == 0, r.output
    assert read_all(out) == files
    assert dump_database(env) == before

    r = env.run("validate", "imported")
    assert r.exit_code == 0, r.output
    assert "Warning" not in r.output

    r = env.run("plan", "imported", "--format", "json")
    assert r.exit_code == 0, r.output
    changes = json.loads(r.stdout)["changes"]
    assert {c["action"] for c in changes} == {"adopt"}
    assert sorted(c["address"] for c in changes) == [
        "globex/quo",
        "initech/mapbox",
        "initech/postmark",
        "initech/postmark/sender_emails/hello@initech.example",
        "initech/stripe",
    ]
    for fmt in ("text", "markdown"):
        r = env.run("plan", "imported", "--format", fmt)
        assert r.exit_code == 0 and "to adopt" in r.stdout

    r = env.run("apply", "imported")
    assert r.exit_code == 0, r.output
    assert "Apply complete" in r.stdout
    r = env.run("plan", "imported")
    assert r.exit_code == 0, r.output
    assert "No changes." in r.stdout
    for data in read_all(out).values():
        assert_no_canary(data)


def test_import_selects_organizations_and_needs_a_database(env: Env) -> None:
    r = env.run("import", "--out", "none")
    assert r.exit_code == 1 and "nothing to import" in r.output
    assert not (env.cwd / "none").exists()
    build_fleet(env)
    no_secrets(env)
    r = env.run("import", "--out", "one", "--org", "initech")
    assert r.exit_code == 0, r.output
    assert sorted(read_all(env.cwd / "one")) == ["credentials.env.example", "initech.yaml"]
    r = env.run("import", "--out", "two", "--exclude-org", "initech")
    assert r.exit_code == 0, r.output
    assert sorted(read_all(env.cwd / "two")) == [
        "acme.yaml",
        "credentials.env.example",
        "globex.yaml",
    ]
