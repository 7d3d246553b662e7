"""A command imports only what it uses (issue 16): a no-op ``plan``, ``validate`` and
``status --format json`` load no HTTP stack, no Alembic, no Jinja2 and no rich. Each command runs
in its own Python process, as a user runs it, and reports the modules it ended with."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, Env
from tests.e2e import manifests as m

# what a command that reads manifests and the database has no use for
UNUSED = ("httpx", "httpcore", "aiohttp", "httpx_aiohttp", "alembic", "jinja2", "rich")

RUN_AND_LIST = """
import json, sys
from reconciler.cli import main
code = main(sys.argv[2:])
# a None entry marks a module as absent (httpx._main): it was not imported
loaded = sorted({name.split(".")[0] for name, mod in sys.modules.items() if mod is not None})
with open(sys.argv[1], "w") as f:
    json.dump({"code": code, "loaded": loaded}, f)
"""


def run_alone(env: Env, tmp_path: Path, *args: str) -> tuple[int, set[str], str]:
    """Run ``reconciler ARGS`` in a fresh interpreter: exit code, top-level modules, stdout."""
    report = tmp_path / "modules.json"
    proc = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST, str(report), *args],
        cwd=env.cwd,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **env.vars},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert report.exists(), proc.stderr
    doc = json.loads(report.read_text())
    return doc["code"], set(doc["loaded"]), proc.stdout


def unused_loaded(loaded: set[str]) -> list[str]:
    return sorted(loaded & set(UNUSED))


def test_noop_plan_without_refresh_imports_no_http_stack(env: Env, tmp_path: Path) -> None:
    # the shipped manifests have provider-side resources (a Stripe webhook...): with
    # --refresh=false the plan compares with the database only
    assert env.run("apply").exit_code == 0
    code, loaded, out = run_alone(env, tmp_path, "plan", "--refresh=false")
    assert code == 0 and out.endswith("No changes. The database matches the manifests.\n")
    assert unused_loaded(loaded) == []
    assert "sqlalchemy" in loaded  # it did read the database


def test_noop_plan_of_connections_without_provider_resources_imports_no_http_stack(
    env: Env, tmp_path: Path
) -> None:
    m.write(
        env.cwd / "manifests",
        m.organization(
            "acme",
            [
                m.connection("google_maps", "ACME_GOOGLE_MAPS_KEY"),
                m.connection("geoapify", "ACME_GEOAPIFY_KEY"),
            ],
        ),
    )
    assert env.run("apply").exit_code == 0
    code, loaded, out = run_alone(env, tmp_path, "plan")
    assert code == 0 and out.endswith("No changes. The database matches the manifests.\n")
    assert unused_loaded(loaded) == []


def test_noop_apply_of_connections_without_provider_resources_imports_no_http_stack(
    env: Env, tmp_path: Path
) -> None:
    """Nothing to check and nothing to call: apply loads neither the checks' nor the
    provider clients' HTTP stack (nor Alembic: the schema is there)."""
    m.write(
        env.cwd / "manifests",
        m.organization("acme", [m.connection("geoapify", "ACME_GEOAPIFY_KEY")]),
    )
    assert env.run("apply").exit_code == 0
    code, loaded, out = run_alone(env, tmp_path, "apply")
    assert code == 0 and out.endswith("No changes. The database matches the manifests.\n")
    assert unused_loaded(loaded) == []


def test_plan_that_refreshes_provider_resources_does_load_the_http_stack(
    env: Env, tmp_path: Path
) -> None:
    """The other side of the two tests above: the probe sees an import when there is one."""
    assert env.run("apply").exit_code == 0
    code, loaded, _ = run_alone(env, tmp_path, "plan")
    assert code == 0
    assert "httpx" in loaded


def test_validate_and_status_json_import_no_http_stack(env: Env, tmp_path: Path) -> None:
    code, loaded, out = run_alone(env, tmp_path, "validate")
    assert code == 0 and out.startswith("Valid:")
    assert unused_loaded(loaded) == []
    assert "sqlalchemy" not in loaded  # validate reads no database
    # status reads Postmark's senders and Anthropic's cost where the connection holds the
    # account token or admin key (the demo's acme does): without them it sends nothing
    m.write(
        env.cwd / "manifests",
        m.organization(
            "acme",
            [
                m.connection("stripe", "ACME_STRIPE_SECRET_KEY"),
                m.connection("google_maps", "ACME_GOOGLE_MAPS_KEY"),
            ],
        ),
    )
    assert env.run("apply").exit_code == 0
    code, loaded, out = run_alone(env, tmp_path, "status", "--format", "json")
    assert code == 0 and {r["organization"] for r in json.loads(out)} == {"acme"}
    assert unused_loaded(loaded) == []


@pytest.mark.parametrize("args", [("status",), ("catalog",)])
def test_text_views_render_with_rich(env: Env, tmp_path: Path, args: tuple[str, ...]) -> None:
    code, loaded, out = run_alone(env, tmp_path, *args)
    assert code == 0 and out
    assert "rich" in loaded
    assert unused_loaded(loaded - {"rich"}) == []


def test_a_worker_process_imports_no_command_line_libraries(tmp_path: Path) -> None:
    """An ``--workers`` worker imports what its apply or health checks use (the HTTP stack,
    the database); not httpx's own command-line client (click, rich, pygments)."""
    probe = (
        "import sys\n"
        "from reconciler.commands.worker import main\n"
        "import reconciler.apply, reconciler.commands.healthcmd, reconciler.commands.run\n"
        "print(' '.join(sorted({n.split('.')[0] for n, m in sys.modules.items() if m})))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = set(proc.stdout.split())
    assert {"httpx", "aiohttp", "sqlalchemy"} <= loaded
    assert loaded & {"click", "rich", "pygments", "alembic", "jinja2"} == set()
