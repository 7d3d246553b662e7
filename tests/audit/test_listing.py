"""`reconciler audit`: who did what, filtered by organization, action and time, text or JSON."""

from __future__ import annotations

import json

from tests.conftest import Env, assert_no_canary


def listing(env: Env, *args: str) -> list[dict[str, object]]:
    r = env.run("audit", "--format", "json", *args)
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert isinstance(rows, list)
    return rows


def test_list_and_filters(env: Env) -> None:
    assert env.run("apply").exit_code == 0
    everything = listing(env)
    assert [r["seq"] for r in everything] == list(range(1, len(everything) + 1))
    first = everything[0]
    assert {"seq", "organization", "actor", "action", "target", "method", "created_at"} <= set(
        first
    )
    assert {r["actor"] for r in everything} == {"ci-bot"}
    globex = listing(env, "--org", "globex")
    assert globex and {r["organization"] for r in globex} == {"globex"}
    assert len(listing(env, "--org", "globex", "--org", "acme")) == len(everything)
    creates = listing(env, "--action", "connection.create")
    assert creates and {r["action"] for r in creates} == {"connection.create"}
    assert listing(env, "--org", "globex", "--action", "connection.create") == [
        r for r in creates if r["organization"] == "globex"
    ]
    assert listing(env, "--since", "2000-01-01") == everything
    assert listing(env, "--since", "2999-01-01T00:00:00+00:00") == []
    text = env.run("audit", "--org", "globex")
    assert text.exit_code == 0
    assert "globex" in text.stdout and "acme/" not in text.stdout
    assert "by ci-bot via apply" in text.stdout
    assert env.run("audit", "--since", "2999-01-01").stdout == "No audit entries.\n"
    for r in (text, env.run("audit"), env.run("audit", "--format", "json")):
        assert_no_canary(r.output)


def test_bad_since_is_a_plain_error(env: Env) -> None:
    assert env.run("apply", "manifests/globex.yaml").exit_code == 0
    r = env.run("audit", "--since", "last tuesday")
    assert r.exit_code == 1
    assert "--since" in r.output and "Traceback" not in r.output


def test_audit_before_any_apply_says_so(env: Env) -> None:
    r = env.run("audit")
    if env.vars["RECONCILER_DATABASE_URL"].startswith("sqlite"):
        assert r.exit_code == 1 and "does not exist yet" in r.output
        assert not list(env.cwd.parent.glob("*.db"))
