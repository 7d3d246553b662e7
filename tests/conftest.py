"""Shared fixtures: a real simulator on 127.0.0.1, a real database (SQLite always; PostgreSQL
too when RECONCILER_TEST_DATABASE_URL is set, as .ci/run does), and a CLI runner.

Every test that uses ``db_url`` runs once per database.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from reconciler.cli import cli
from reconciler.crypto import generate_entry
from reconciler.simulator import Simulator
from tests import schema_witness

# every manifest the validator accepts in any test must match `reconciler schema` as well
schema_witness.install()

REPO = Path(__file__).resolve().parents[1]
MANIFESTS = REPO / "manifests"
CATALOG = REPO / "catalog"

# Canary secrets: distinctive values that must never appear in any output, file or row. The
# Stripe and Quo keys name their account (`acct_<ID>_`), so a test that rotates one to another
# key of that account sees the same objects at the simulated provider, as after a real rotation.
CANARIES = {
    "ACME_STRIPE_SECRET_KEY": "sk_test_acct_1AcmeCo_CANARYstripe7f3a9",
    "ACME_POSTMARK_TOKEN": "pm-CANARYpostmark-5d2e1",
    "ACME_POSTMARK_ACCOUNT_TOKEN": "pm-account-CANARYpostmark-a61f",
    "ACME_QUO_KEY": "acct_1AcmeQuo_quoCANARYkey8b4c2",
    "ACME_MAPBOX_TOKEN": "pk.CANARYmapbox.c91d",
    "ACME_GOOGLE_MAPS_KEY": "AIzaCANARYgoogle_6e0f",
    "ACME_GEOAPIFY_KEY": "geoCANARYapify-2a7b",
    "ACME_ANTHROPIC_KEY": "sk-ant-CANARYanthropic-4c8d",
    "GLOBEX_STRIPE_SECRET_KEY": "sk_test_acct_1GlobexCo_CANARYglobex-1e5f",
    "GLOBEX_POSTMARK_TOKEN": "pm-CANARYglobex-postmark-93",
}


@pytest.fixture(scope="session")
def sim() -> Iterator[Simulator]:
    with Simulator() as s:
        yield s


@pytest.fixture(autouse=True)
def _reset_sim_state(request: pytest.FixtureRequest) -> None:
    if "sim" in request.fixturenames:
        request.getfixturevalue("sim").reset()


def _pg_admin_url() -> str | None:
    return os.environ.get("RECONCILER_TEST_DATABASE_URL")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str | None]:
    """One PostgreSQL database for the whole run, created here and dropped at the end."""
    base = _pg_admin_url()
    if not base:
        yield None
        return
    name = f"reconciler_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(
        base.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with admin.connect() as c:
            c.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE datname = '{name}'"
                )
            )
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def _database_params() -> list[str]:
    return ["sqlite", "postgresql"] if _pg_admin_url() else ["sqlite"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "databases(*names): run this test only on these databases (sqlite, postgresql)",
    )


# Files of long tests (real processes, pip, waits on a provider), in this order before all
# others: `pytest -n 4 --dist worksteal` deals the first tests out to its workers in turn, so
# they start on these together, instead of one worker running a 40 s test alone at the end.
RUN_FIRST = (
    "tests/test_precommit_hook.py",
    "tests/db/test_crash.py",
    "tests/commands/test_worker_processes.py",
    "tests/db/",
    "tests/bench/test_bench_smoke.py",
    "tests/test_packaging.py",
    "tests/report/test_browser.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.path.as_posix().removeprefix(REPO.as_posix() + "/")
        return next((i for i, p in enumerate(RUN_FIRST) if path.startswith(p)), len(RUN_FIRST))

    items.sort(key=rank)  # stable: within a file (and the rest of the suite) nothing moves


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses ``db_url`` runs on each configured database, or on those its
    ``databases`` marker names (e.g. a PostgreSQL trigger, a SQLite lock)."""
    if "db_url" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("databases")
    wanted = marker.args if marker else ("sqlite", "postgresql")
    metafunc.parametrize("db_url", [d for d in _database_params() if d in wanted], indirect=True)


@pytest.fixture
def db_url(
    request: pytest.FixtureRequest, tmp_path: Path, pg_database: str | None
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'reconciler.db'}"
        return
    assert pg_database is not None
    engine = create_engine(pg_database.replace("postgresql://", "postgresql+psycopg://", 1))
    _drop_everything(engine)
    yield pg_database
    _drop_everything(engine)
    engine.dispose()


def _drop_everything(engine: object) -> None:
    with engine.begin() as c:  # type: ignore[attr-defined]
        c.execute(text("DROP SCHEMA public CASCADE"))
        c.execute(text("CREATE SCHEMA public"))


@dataclass
class Env:
    """The environment a command runs with; ``run`` invokes the CLI in-process."""

    vars: dict[str, str]
    cwd: Path
    _engines: list[Engine] = field(default_factory=list)

    def session(self) -> Session:
        """A session on the test database; one engine per database for the test (a test
        polling with sessions holds one pooled connection, not one per poll), disposed
        after it."""
        url = self.vars["RECONCILER_DATABASE_URL"].replace(
            "postgresql://", "postgresql+psycopg://", 1
        )
        engine = next((e for e in self._engines if e.url.render_as_string(False) == url), None)
        if engine is None:
            engine = create_engine(url)
            self._engines.append(engine)
        return Session(engine)

    def close(self) -> None:
        for e in self._engines:
            e.dispose()
        self._engines.clear()

    def run(self, *args: str, **extra_env: str) -> Result:
        runner = CliRunner()
        env = {**self.vars, **extra_env}
        old = Path.cwd()
        os.chdir(self.cwd)
        try:
            return runner.invoke(cli, list(args), env=env, catch_exceptions=False)
        finally:
            os.chdir(old)


@pytest.fixture
def env(
    tmp_path: Path, sim: Simulator, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Env]:
    """A working folder with a copy of the shipped manifests, keys, canary secrets, the
    simulator and a fresh database."""
    work = tmp_path / "work"
    shutil.copytree(MANIFESTS, work / "manifests")
    vars = {
        "RECONCILER_ENCRYPTION_KEYS": generate_entry("k1"),
        "RECONCILER_DATABASE_URL": db_url,
        "RECONCILER_ACTOR": "ci-bot",
        "RECONCILER_CHECK_DEADLINE": "5",
        "RECONCILER_CHECK_MAX_RATE_LIMIT_WAIT": "1.5",
        **sim.env(),
        **CANARIES,
    }
    for k in list(os.environ):
        if k.startswith("RECONCILER_") and k != "RECONCILER_TEST_DATABASE_URL":
            monkeypatch.delenv(k, raising=False)
    e = Env(vars, work)
    yield e
    e.close()


def all_forms(value: str) -> list[str]:
    """A secret and its base64, hex and percent-encoded forms, for canary searches."""
    import base64
    import urllib.parse

    b = value.encode()
    return [
        value,
        base64.b64encode(b).decode().rstrip("="),
        base64.urlsafe_b64encode(b).decode().rstrip("="),
        b.hex(),
        urllib.parse.quote(value, safe=""),
    ]


def assert_no_canary(text_or_bytes: str | bytes, where: str = "output") -> None:
    data = text_or_bytes.encode() if isinstance(text_or_bytes, str) else text_or_bytes
    lowered = data.lower()
    for name, value in CANARIES.items():
        for form in all_forms(value):
            probe = form.encode()
            if len(form) >= 8 and (
                probe in data or (form == value.encode().hex() and probe.lower() in lowered)
            ):
                raise AssertionError(f"secret {name} (as {form[:4]}...) found in {where}")


@pytest.fixture
def logged(env: Env) -> Iterator[tuple[Simulator, list[str]]]:
    """A simulator of our own whose access log we read (method, path, status)."""
    lines: list[str] = []
    with Simulator(access_log=lines.append) as sim:
        env.vars.update(sim.env())
        yield sim, lines
