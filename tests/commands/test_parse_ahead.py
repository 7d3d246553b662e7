"""Manifests parsed by a forked child while the command starts up (``commands.parse_ahead``):
what a user sees is the same with the child and without it (output, messages, exit code), when
the child dies, and when the command stops before it reads a manifest; no child outlives the
command, and no secret goes through the pipe."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reconciler.commands import parse_ahead as ahead
from tests.conftest import CANARIES, CATALOG, REPO, Env, assert_no_canary
from tests.db import FLEET_SECRETS, write_fleet

# runs the CLI with parse_ahead's threshold from TEST_MIN_BYTES; writes to TEST_MARK what the
# child did (JSON: started, files, leftover children at exit, the bytes received and their kind:
# D for documents, C for a checked desired state)
RUN = """
import json, os, sys, time
from reconciler.commands import parse_ahead as ahead

ahead.MIN_BYTES = int(os.environ["TEST_MIN_BYTES"])
mark = {"started": False, "leftover": None, "received": "", "kind": ""}
start, received = ahead.Ahead.start, ahead.Ahead._received

def started(files, check=None):
    child = start(files, check)
    mark.update(started=True, files=len(files))
    if os.environ.get("TEST_CHILD_STDOUT"):  # where the child's output goes, once it is set
        for _ in range(200):
            mark["child_stdout"] = os.readlink(f"/proc/{child._pid}/fd/1")
            if mark["child_stdout"] == "/dev/null":
                break
            time.sleep(0.01)
    if os.environ.get("TEST_KILL_CHILD"):
        os.kill(child._pid, 9)
    return child

def receiving(self):
    data = received(self)
    mark.update(received=data.decode("latin-1"), kind=data[:1].decode())
    return data

ahead.Ahead.start = staticmethod(started)
ahead.Ahead._received = receiving
from reconciler.cli import main
try:
    code = main(sys.argv[1:])
finally:
    try:
        os.waitpid(-1, os.WNOHANG)
        mark["leftover"] = True
    except ChildProcessError:
        mark["leftover"] = False
    with open(os.environ["TEST_MARK"], "w") as f:
        json.dump(mark, f)
sys.exit(code)
"""

FORK, NO_FORK = 0, 1 << 40  # TEST_MIN_BYTES: every set of manifests is big enough, or none


def run(
    cwd: Path,
    variables: dict[str, str],
    min_bytes: int,
    *args: str,
    kill: bool = False,
    child_stdout: bool = False,
) -> tuple[int, str, str, dict[str, object]]:
    mark = cwd / f"mark-{min_bytes}-{kill}.json"
    base = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    done = subprocess.run(
        [sys.executable, "-c", RUN, *args],
        cwd=cwd,
        env={
            **base,
            **variables,
            "PYTHONPATH": str(REPO),
            "TEST_MIN_BYTES": str(min_bytes),
            "TEST_MARK": str(mark),
            **({"TEST_KILL_CHILD": "1"} if kill else {}),
            **({"TEST_CHILD_STDOUT": "1"} if child_stdout else {}),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr, json.loads(mark.read_text())


def fleet(folder: Path) -> Path:
    """Manifests of every shape the readers take: one file per organization, two documents
    in one file, an empty file, and a file with a ``&`` (read by the careful reader)."""
    write_fleet(folder, [f"org-{i:02d}" for i in range(12)])
    one, two = (folder / "org-00.yaml").read_text(), (folder / "org-01.yaml").read_text()
    (folder / "org-01.yaml").unlink()
    (folder / "org-00.yaml").write_text(one + "---\n" + two)
    (folder / "empty.yaml").write_text("")
    text = (folder / "org-02.yaml").read_text()
    (folder / "org-02.yaml").write_text("# billing & support\n" + text)
    return folder


def same_either_way(
    cwd: Path, variables: dict[str, str], *args: str
) -> tuple[int, str, str, dict[str, object]]:
    """The command with a child and without; asserts they agree, returns the child's run."""
    code, out, err, mark = run(cwd, variables, FORK, *args)
    assert mark["started"] is True and mark["leftover"] is False
    plain = run(cwd, variables, NO_FORK, *args)
    assert plain[3]["started"] is False and plain[3]["leftover"] is False
    assert (code, out, err) == plain[:3]
    return code, out, err, mark


def test_validate_is_the_same_with_the_child(tmp_path: Path) -> None:
    fleet(tmp_path / "fleet")
    code, out, err, mark = same_either_way(tmp_path, FLEET_SECRETS, "validate", "fleet")
    assert code == 0, out + err
    assert "Valid: 12 manifest file(s), 12 organization(s), 24 connection(s)" in out
    assert mark["files"] == 12 and mark["kind"] == "D"  # validate gets the documents


def test_a_broken_file_is_worded_the_same_with_the_child(tmp_path: Path) -> None:
    folder = fleet(tmp_path / "fleet")
    (folder / "org-05.yaml").write_text("apiVersion: reconciler/v1\nkind: [Organization\n")
    (folder / "org-06.yaml").write_text("a: &x 1\nb: *x\n")  # an alias: refused
    (folder / "org-07.yaml").write_text("kind: Organization\nkind: Organization\n")
    code, _, err, _ = same_either_way(tmp_path, FLEET_SECRETS, "validate", "fleet")
    assert code == 1
    assert "org-05.yaml:3: this is not valid YAML" in err
    assert "org-06.yaml:" in err and "org-07.yaml:2:" in err


def canary_fleet(folder: Path) -> None:
    """The fleet, its secrets named by canaries' variables."""
    fleet(folder)
    canaries = {
        "FLEET_STRIPE_KEY": "ACME_STRIPE_SECRET_KEY",
        "FLEET_POSTMARK_KEY": "ACME_POSTMARK_TOKEN",
    }
    for f in folder.glob("*.yaml"):
        text = f.read_text()
        for ours, canary in canaries.items():
            text = text.replace(ours, canary)
        f.write_text(text)


def test_plan_is_the_same_with_the_child_and_sends_no_secret(env: Env) -> None:
    canary_fleet(env.cwd / "fleet")
    variables = {**env.vars, **CANARIES}
    code, out, err, mark = same_either_way(env.cwd, variables, "plan", "--refresh=false", "fleet")
    assert code == 0, out + err
    assert "Plan: 48 to create, 0 to update, 0 to delete." in out  # 24 connections, 24 resources
    assert mark["kind"] == "C"  # the child checked the manifests: the desired state came
    assert "ACME_STRIPE_SECRET_KEY" in str(mark["received"])  # secrets by name, never by value
    assert_no_canary(str(mark["received"]), "the pipe from the child")


def test_a_plans_problems_are_worded_the_same_by_the_child(env: Env) -> None:
    folder = fleet(env.cwd / "fleet")
    text = (folder / "org-04.yaml").read_text()
    (folder / "org-04.yaml").write_text(text.replace("owner: ops@org-04", "owner: nobody@org-04"))
    (folder / "org-09.yaml").write_text(
        (folder / "org-09.yaml").read_text().replace("${FLEET_POSTMARK_KEY}", "${UNSET_KEY}")
    )
    args = ("plan", "--refresh=false", "fleet")
    code, _, err, mark = same_either_way(env.cwd, env.vars | FLEET_SECRETS, *args)
    assert code == 1 and mark["kind"] == "C"
    assert "owner nobody@org-04.example is not a member of org-04" in err
    assert "environment variable UNSET_KEY is not set" in err


def without_resources(folder: Path) -> None:
    for f in folder.glob("*.yaml"):
        docs = [d for d in yaml.safe_load_all(f.read_text()) if d]
        for doc in docs:
            for conn in doc["spec"]["connections"]:
                conn.pop("resources", None)
        f.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def test_apply_takes_the_childs_check_when_there_is_nothing_to_read(env: Env) -> None:
    # connections only: the child checks; with resources, whose reads start as each
    # organization is checked, the command gets the documents and checks them itself
    folder = fleet(env.cwd / "fleet")
    without_resources(folder)
    code, out, err, mark = run(env.cwd, env.vars | FLEET_SECRETS, FORK, "apply", "fleet")
    assert code == 0, out + err
    assert "Apply complete: 24 created." in out
    assert mark["kind"] == "C" and mark["leftover"] is False
    fleet(folder)
    code, out, err, mark = run(env.cwd, env.vars | FLEET_SECRETS, FORK, "apply", "fleet")
    assert code == 0, out + err
    assert "Apply complete: 24 created." in out  # the resources
    assert mark["kind"] == "D" and mark["leftover"] is False
    again = same_either_way(env.cwd, env.vars | FLEET_SECRETS, "apply", "fleet")
    assert again[0] == 0 and "No changes." in again[1]


def test_a_check_that_needs_the_database_is_made_by_the_command(env: Env) -> None:
    # Postmark made inactive in the catalog after it was connected: allowed for those already
    # connected, which only the database knows; the child cannot say, so it sends the
    # documents and the command checks them
    fleet(env.cwd / "fleet")
    assert run(env.cwd, env.vars | FLEET_SECRETS, NO_FORK, "apply", "fleet")[0] == 0
    catalog = env.cwd / "catalog"
    shutil.copytree(CATALOG, catalog)
    postmark = catalog / "postmark.yaml"
    postmark.write_text(postmark.read_text().replace("active: true", "active: false", 1))
    args = ("plan", "--refresh=false", "--catalog", "catalog", "fleet")
    code, out, err, mark = same_either_way(env.cwd, env.vars | FLEET_SECRETS, *args)
    assert code == 0 and "No changes." in out, out + err
    assert mark["kind"] == "D"


def test_a_dead_child_changes_nothing(tmp_path: Path) -> None:
    fleet(tmp_path / "fleet")
    plain = run(tmp_path, FLEET_SECRETS, NO_FORK, "validate", "fleet")
    code, out, err, mark = run(tmp_path, FLEET_SECRETS, FORK, "validate", "fleet", kill=True)
    assert mark["started"] is True and mark["leftover"] is False
    assert (code, out, err) == plain[:3]
    assert code == 0


def test_the_child_lets_go_of_the_commands_output(tmp_path: Path) -> None:
    # a reader of the command's output (CI, a test) sees it end with the command, even when a
    # SIGKILL of the command left the child parsing; 80 organizations: the child waits on a
    # full pipe until the command reads, so it is there to look at
    write_fleet(tmp_path / "fleet", [f"org-{i:02d}" for i in range(80)])
    code, _, _, mark = run(tmp_path, FLEET_SECRETS, FORK, "validate", "fleet", child_stdout=True)
    assert code == 0 and mark["started"] is True
    assert mark["child_stdout"] == "/dev/null"


def test_a_command_that_stops_before_reading_leaves_no_child(env: Env) -> None:
    fleet(env.cwd / "fleet")
    variables = {k: v for k, v in env.vars.items() if k != "RECONCILER_ENCRYPTION_KEYS"}
    code, out, err, mark = same_either_way(env.cwd, variables, "plan", "fleet")
    assert code == 1 and "RECONCILER_ENCRYPTION_KEYS" in out + err
    assert mark["received"] == ""  # never read: the child was ended, and reaped


def test_no_process_to_be_had_reads_here(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def refused() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")  # ulimit -u reached

    fleet(tmp_path / "fleet")
    monkeypatch.setattr(ahead, "_worth_a_child", lambda files: True)
    monkeypatch.setattr(ahead.os, "fork", refused)
    with ahead.parse_ahead([str(tmp_path / "fleet")]) as child:
        assert child is None  # the command reads the files itself


def test_no_child_for_a_saved_plan(tmp_path: Path) -> None:
    with ahead.parse_ahead(["nowhere"], wanted=False) as child:
        assert child is None


@pytest.mark.parametrize(
    ("platform", "threads", "cores", "size", "forks"),
    [
        ("linux", 1, 2, ahead.MIN_BYTES, True),
        ("linux", 1, 2, ahead.MIN_BYTES - 1, False),  # too little to parse: not worth a fork
        ("linux", 2, 2, ahead.MIN_BYTES, False),  # another thread: fork is not safe
        ("linux", 1, 1, ahead.MIN_BYTES, False),  # one core: nothing to overlap with
        ("darwin", 1, 8, ahead.MIN_BYTES, False),  # fork without exec only on Linux
    ],
)
def test_when_a_child_is_worth_it(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    platform: str,
    threads: int,
    cores: int,
    size: int,
    forks: bool,
) -> None:
    monkeypatch.setattr(ahead.sys, "platform", platform)
    monkeypatch.setattr(ahead.threading, "active_count", lambda: threads)
    monkeypatch.setattr(ahead.os, "sched_getaffinity", lambda pid: set(range(cores)))
    files = [tmp_path / "a.yaml", tmp_path / "b.yaml"]
    files[0].write_bytes(b"#" * (size // 2))
    files[1].write_bytes(b"#" * (size - size // 2))
    assert ahead._worth_a_child(files) is forks
