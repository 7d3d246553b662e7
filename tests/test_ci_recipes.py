"""The CI recipes of docs/ci/: each file parses, runs the commands it is for, and every
`reconciler` command line in it is accepted by this version's command line."""

from __future__ import annotations

import shlex

import click
import pytest
import yaml

from reconciler.cli import cli
from tests.conftest import REPO

CI = REPO / "docs" / "ci"
NOT_HERE_YET = {"drift"}  # SPEC section 8, built on another branch
SHELL_STOPS = {">", ">>", "|", "||", "&&", ";", "2>&1"}


def reconciler_commands(script: str) -> list[list[str]]:
    """The argument lists of the `reconciler ...` commands of a shell script."""
    out = []
    for line in script.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        while "reconciler" in words:
            words = words[words.index("reconciler") + 1 :]
            args = []
            for w in words:
                if w in SHELL_STOPS:
                    break
                args.append(w)
            out.append(args)
    return out


def check_command_line(args: list[str]) -> None:
    """Parse ``args`` with the real command line (options, choices, arguments) without running."""
    group: click.Group = cli
    name, rest = args[0], args[1:]
    command = group.commands.get(name)
    if command is None:
        assert name in NOT_HERE_YET, f"reconciler has no command {name!r}"
        return
    if isinstance(command, click.Group) and rest and rest[0] in command.commands:
        command, rest = command.commands[rest[0]], rest[1:]
    command.make_context(name, list(rest))


def load(name: str) -> dict:
    return yaml.safe_load((CI / name).read_text())


def test_github_actions_workflow() -> None:
    wf = load("github-actions.yml")
    triggers = wf.get("on", wf.get(True))  # YAML 1.1 reads the key `on` as true
    assert {"push", "pull_request", "schedule"} <= set(triggers)
    assert triggers["schedule"][0]["cron"]
    jobs = wf["jobs"]

    def runs(job: str) -> list[list[str]]:
        return [
            c
            for step in jobs[job]["steps"]
            if "run" in step
            for c in reconciler_commands(step["run"])
        ]

    assert ["validate", "manifests/"] in runs("validate")
    assert "pull_request" in jobs["plan"]["if"]
    assert ["plan", "manifests/", "--format", "markdown"] in runs("plan")
    assert any("gh pr comment" in s.get("run", "") for s in jobs["plan"]["steps"])
    assert "refs/heads/main" in jobs["apply"]["if"] and "push" in jobs["apply"]["if"]
    assert any(c[0] == "apply" for c in runs("apply"))
    assert "schedule" in jobs["drift"]["if"]
    assert any(c[0] == "drift" for c in runs("drift"))
    for job in jobs:
        for args in runs(job):
            check_command_line(args)


def test_gitlab_ci_pipeline() -> None:
    pipeline = load("gitlab-ci.yml")

    def runs(job: str) -> list[list[str]]:
        return [c for line in pipeline[job]["script"] for c in reconciler_commands(line)]

    assert ["validate", "manifests/"] in runs("validate")
    assert "merge_request_event" in pipeline["plan"]["rules"][0]["if"]
    assert ["plan", "manifests/", "--format", "markdown"] in runs("plan")
    assert any("merge_requests" in line for line in pipeline["plan"]["script"])
    assert "CI_DEFAULT_BRANCH" in pipeline["apply"]["rules"][0]["if"]
    assert pipeline["apply"]["parallel"] == 4
    apply = next(c for c in runs("apply") if c[0] == "apply")
    assert apply[apply.index("--shard") + 1] == "auto"
    assert "schedule" in pipeline["drift"]["rules"][0]["if"]
    assert any(c[0] == "drift" for c in runs("drift"))
    for job in ("validate", "plan", "apply", "drift"):
        for args in runs(job):
            check_command_line(args)


def test_kubernetes_indexed_job() -> None:
    job = load("kubernetes-indexed-job.yaml")
    assert job["spec"]["completionMode"] == "Indexed"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert command[:2] == ["reconciler", "apply"]
    assert command[command.index("--shard") + 1] == f"auto/{job['spec']['completions']}"
    check_command_line(command[1:])


def test_ci_md_links_every_recipe() -> None:
    text = (REPO / "docs" / "ci.md").read_text()
    for f in CI.iterdir():
        assert f"ci/{f.name}" in text


@pytest.mark.parametrize(
    "args", [["plan", "--format", "html"], ["apply", "--no-such-option"], ["nonsense"]]
)
def test_the_checker_refuses_what_reconciler_would(args: list[str]) -> None:
    with pytest.raises((click.UsageError, AssertionError)):
        check_command_line(args)
