"""The canary suite: no secret, in any of its encodings, anywhere a user or an attacker can look.

Every command's full output with ``--verbose``, the log file, plan files, the report, a dump of
every table, the SQLite file's bytes and forced tracebacks are searched for each canary value
and its base64, hex and percent-encoded forms (``tests.conftest.all_forms``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import create_engine, inspect, text

from reconciler.crypto import generate_entry
from tests.conftest import CANARIES, Env, all_forms, assert_no_canary
from tests.incidents.receiver import Receiver

# Values used on some runs only: a replaced secret, keys the simulator rejects (one of them goes
# in a query string) and a key with a trailing space (not a valid HTTP header value).
EXTRA = {
    "ACME_STRIPE_SECRET_KEY": "sk_test_CANARYreplaced-77aa",
    "GLOBEX_STRIPE_SECRET_KEY": "sk_test_invalid_CANARYrejected-31",
    "ACME_GOOGLE_MAPS_KEY": "AIzaInvalid_CANARYgmaps-5151",
}
# The notification receiver's secrets: the signing key, and a token in its URL (a Slack
# webhook URL is a credential); neither may show up anywhere, events and headers included.
NOTIFY = {
    "RECONCILER_NOTIFY_SECRET": "nsec_CANARYsigning-8f21",
    "NOTIFY_URL_TOKEN": "T0CANARYurltoken-b7c3",
}
HAS_REPORT = importlib.util.find_spec("reconciler.report") is not None


def assert_clean(data: str | bytes, where: str) -> None:
    """No canary (fixed or extra) in ``data``, in any of its encoded forms."""
    assert_no_canary(data, where)
    blob = data.encode() if isinstance(data, str) else data
    for name, value in {**EXTRA, **NOTIFY}.items():
        for form in all_forms(value):
            if form.encode() in blob or form.encode().lower() in blob.lower():
                raise AssertionError(f"secret {name} (as {form[:4]}...) found in {where}")


class Runner:
    """Runs commands with --verbose and a log file, and checks every output at once."""

    def __init__(self, env: Env, log: Path) -> None:
        self.env, self.log, self.seen = env, log, 0

    def __call__(self, *args: str, ok: bool = True, **extra: str) -> Result:
        r = self.env.run("--verbose", "--log-file", str(self.log), *args, **extra)
        if ok:
            assert r.exit_code == 0, f"{args}: {r.output}"
        assert_clean(r.output, f"output of {' '.join(args)}")
        self.seen += 1
        return r


def dump_database(env: Env) -> str:
    """Every row of every table, whatever tables exist (ours, Alembic's, locks...)."""
    url = env.vars["RECONCILER_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url)
    try:
        tables = inspect(engine).get_table_names()
        assert "integration_credentials" in tables and "integration_audit_log" in tables
        rows = []
        with engine.connect() as c:
            for t in tables:
                rows += [f"{t}: {tuple(row)!r}" for row in c.execute(text(f'SELECT * FROM "{t}"'))]
        return "\n".join(rows)
    finally:
        engine.dispose()


def sqlite_files(env: Env) -> list[Path]:
    url = env.vars["RECONCILER_DATABASE_URL"]
    if not url.startswith("sqlite"):
        return []
    db = Path(url.split("///", 1)[1])
    return [p for p in db.parent.glob(db.name + "*") if p.is_file()]


def check_stores(env: Env, log: Path, *files: Path) -> None:
    assert_clean(dump_database(env), "database rows")
    for f in sqlite_files(env):
        assert_clean(f.read_bytes(), f"database file {f.name}")
    assert log.exists() and " DEBUG " in log.read_text(), "--verbose logged nothing"
    assert_clean(log.read_bytes(), "log file")
    for f in files:
        assert_clean(f.read_bytes(), str(f))


def test_every_command_output_and_every_store_is_clean(env: Env, tmp_path: Path) -> None:
    log = tmp_path / "reconciler.log"
    run = Runner(env, log)
    receiver = Receiver().start()
    env.vars["RECONCILER_NOTIFY_URL"] = f"{receiver.url}/{NOTIFY['NOTIFY_URL_TOKEN']}"
    env.vars["RECONCILER_NOTIFY_SECRET"] = NOTIFY["RECONCILER_NOTIFY_SECRET"]
    plan_file = tmp_path / "plan.json"
    run("validate")
    run("catalog")
    run("catalog", "--format", "json")
    run("plan")
    run("plan", "--format", "json")
    run("plan", "--format", "markdown")
    run("plan", "--out", str(plan_file))
    run("plan", "--format", "json", "--out", str(plan_file))
    assert "rcv1:" not in plan_file.read_text()
    r = run("apply", "--plan", str(plan_file))
    assert "Apply complete" in r.stdout
    run("apply")
    run("health")
    run("health", "--format", "json")
    run("status")
    run("status", "--format", "json")
    run("audit")
    run("audit", "--format", "json")
    run("audit", "verify")
    run("audit", "head")
    run("keys", "status")
    ring = f"{generate_entry('k2')},{env.vars['RECONCILER_ENCRYPTION_KEYS']}"
    run("keys", "rotate", RECONCILER_ENCRYPTION_KEYS=ring)
    env.vars["RECONCILER_ENCRYPTION_KEYS"] = ring
    run("keys", "status")
    # an update, two rejected keys (one sent in a query string) and the failure paths
    env.vars.update(EXTRA)
    run("plan")
    run("plan", "--format", "json")
    r = run("apply", ok=False)
    assert r.exit_code == 1 and "The API key you entered is invalid" in r.output
    run("health", ok=False)
    run("status")
    run("status", "--format", "json")
    run("audit", "--format", "json")
    run("audit", "verify")
    receiver.stop()  # the receiver is down: events wait in the outbox
    run("health", ok=False)
    run("notify", ok=False)
    receiver.start()
    run("notify")
    run("metrics")
    metrics_file = tmp_path / "reconciler.prom"
    run("metrics", "--out", str(metrics_file))
    env.vars.update(CANARIES)
    run("apply")
    run("health")
    run("health")
    receiver.stop()
    assert {r.json["type"] for r in receiver.received} == {"incident.opened", "incident.resolved"}
    for r in receiver.received:
        assert_clean(r.body + repr(r.headers).encode(), "a notification")
    # the adoption commands: schema, import (its files too), and the imported manifests with
    # credentials: keep planned and applied with no secret in the environment
    run("schema")
    imported = tmp_path / "imported"
    run("import", "--out", str(imported))
    run("import", "--out", str(imported), "--org", "acme", ok=False)  # refuses to overwrite
    run("import", "--out", str(imported), "--force")
    for f in imported.iterdir():
        assert_clean(f.read_bytes(), f"imported {f.name}")
        assert "rcv1:" not in f.read_text()
    secretless = {k: "" for k in CANARIES}
    run("validate", str(imported), **secretless)
    run("plan", str(imported), **secretless)
    run("plan", str(imported), "--format", "json", **secretless)
    run("plan", str(imported), "--format", "markdown", **secretless)
    run("apply", str(imported), **secretless)
    if HAS_REPORT:  # reconciler.report imports: its pages are checked too
        out = tmp_path / "report"
        run("report", "--out", str(out), "--plan", str(plan_file))
        pages = [p for p in out.rglob("*") if p.is_file()]
        assert pages
        for p in pages:
            assert_clean(p.read_bytes(), f"report {p.name}")
    assert run.seen >= 47
    check_stores(env, log, plan_file, metrics_file)


def test_a_plan_file_for_a_changed_secret_holds_no_secret(env: Env, tmp_path: Path) -> None:
    assert env.run("apply").exit_code == 0
    env.vars.update(EXTRA)
    plan_file = tmp_path / "update.json"
    r = env.run("--verbose", "plan", "--out", str(plan_file))
    assert r.exit_code == 0
    assert "~ acme/stripe" in r.stdout
    assert_clean(r.output, "plan output")
    assert_clean(plan_file.read_bytes(), "plan file")


# -- forced tracebacks -------------------------------------------------------------------------


def test_unexpected_error_while_holding_a_plaintext(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception raised in the middle of encryption, with the plaintext a local variable of
    the frames it passes through: the user sees a short notice; --verbose logs a traceback
    (exception types, code lines) and no secret."""
    from reconciler.crypto.ring import KeyRing

    original = KeyRing.encrypt

    def exploding(self: KeyRing, plaintext: str, address: object) -> str:
        stored = original(self, plaintext, address)  # type: ignore[arg-type]
        try:
            {}[stored]
        except KeyError as e:
            raise RuntimeError("the credential store refused the write") from e
        return stored

    monkeypatch.setattr(KeyRing, "encrypt", exploding)
    log = tmp_path / "crash.log"
    r = env.run("--verbose", "--log-file", str(log), "apply")
    assert r.exit_code == 3  # unexpected: its own exit code
    assert "An unexpected error has occurred: RuntimeError" in r.stderr
    assert "Run with --verbose for details." in r.stderr
    assert "Traceback" in log.read_text()
    assert "RuntimeError: the credential store refused the write" in log.read_text()
    assert_clean(r.output, "output of a crashed apply")
    assert_clean(log.read_bytes(), "log of a crashed apply")
    r = env.run("apply")  # without --verbose: no traceback at all
    assert r.exit_code == 3 and "Traceback" not in r.output


def test_unexpected_error_that_formats_the_credentials(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even a careless message that formats the credentials themselves shows no secret: they
    are ``Secret`` values until the request is built."""
    import reconciler.health.runner as runner

    def careless(provider: object, base_url: str, credentials: object) -> object:
        raise ValueError(f"cannot build the request for {base_url} with {credentials!r}")

    monkeypatch.setattr(runner, "prepare_request", careless)
    log = tmp_path / "crash.log"
    r = env.run("--verbose", "--log-file", str(log), "apply")
    assert r.exit_code == 3
    assert "unexpected error" in r.output
    logged = log.read_text()
    assert "ValueError: cannot build the request" in logged
    assert "api_key" in logged  # the mapping was formatted, its values redacted
    assert_clean(r.output, "output")
    assert_clean(logged, "log")
    assert_clean(dump_database(env) if sqlite_files(env) else "", "database rows")


def test_database_error_during_apply_hides_parameters(env: Env, tmp_path: Path) -> None:
    """SQLAlchemy's error text would show the bound values (ciphertexts, fingerprints); the
    engine runs with hide_parameters=True."""
    assert env.run("db", "upgrade").exit_code == 0
    with env.session() as s, s.begin():
        if s.get_bind().dialect.name == "postgresql":
            s.execute(
                text(
                    "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"
                )
            )
            s.execute(
                text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON integration_credentials "
                    "FOR EACH ROW EXECUTE FUNCTION refuse()"
                )
            )
        else:
            s.execute(
                text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON integration_credentials "
                    "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                )
            )
    log = tmp_path / "db.log"
    r = env.run("--verbose", "--log-file", str(log), "apply")
    assert r.exit_code == 1
    everything = r.output + log.read_text()
    assert "refused by the test" in everything
    assert "INSERT INTO integration_credentials" in everything
    assert "hidden due to hide_parameters=True" in everything
    assert "rcv1:" not in everything
    assert_clean(everything, "database error")
    with env.session() as s:
        n = s.execute(text("SELECT count(*) FROM integration_credentials")).scalar_one()
        assert n == 0


def test_override_that_makes_the_product_raise_is_a_plain_error(env: Env) -> None:
    r = env.run("--verbose", "apply", RECONCILER_BASE_URL_STRIPE="ftp://127.0.0.1/x")
    assert r.exit_code == 1
    assert "RECONCILER_BASE_URL_STRIPE" in r.output and "Traceback" not in r.output
    assert_clean(r.output, "output")


@pytest.mark.parametrize("form", all_forms(EXTRA["ACME_GOOGLE_MAPS_KEY"]))
def test_the_search_finds_every_form(form: str) -> None:
    """The suite would see a leak: each encoded form of a canary is found."""
    with pytest.raises(AssertionError, match="ACME_GOOGLE_MAPS_KEY"):
        assert_clean(f"before {form} after", "probe")
