"""`--shard auto`: the shard from GitLab's parallel: or a Kubernetes Indexed Job."""

from __future__ import annotations

import json

import pytest

from reconciler.commands.inputs import parse_shard
from reconciler.core.errors import InputError
from tests.conftest import Env


@pytest.mark.parametrize(
    ("value", "environ", "shard"),
    [
        ("auto", {"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "4"}, (1, 4)),
        ("auto", {"CI_NODE_INDEX": "4", "CI_NODE_TOTAL": "4"}, (4, 4)),
        ("auto/4", {"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "4"}, (2, 4)),
        ("auto/3", {"JOB_COMPLETION_INDEX": "0"}, (1, 3)),
        ("auto/3", {"JOB_COMPLETION_INDEX": "2"}, (3, 3)),
        ("auto", {"JOB_COMPLETION_INDEX": "1", "RECONCILER_SHARD_TOTAL": "2"}, (2, 2)),
        ("2/5", {"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "4"}, (2, 5)),  # explicit wins
    ],
)
def test_auto_reads_the_shard(value: str, environ: dict[str, str], shard: tuple[int, int]):
    assert parse_shard(value, environ) == shard


@pytest.mark.parametrize(
    ("value", "environ", "message"),
    [
        ("auto", {}, "no shard in the environment"),
        ("auto", {"JOB_COMPLETION_INDEX": "0"}, "use --shard auto/N or set RECONCILER_SHARD"),
        ("auto/3", {"JOB_COMPLETION_INDEX": "3"}, "JOB_COMPLETION_INDEX=3 is outside 3"),
        ("auto/2", {"JOB_COMPLETION_INDEX": "-1"}, "JOB_COMPLETION_INDEX must be a whole"),
        ("auto", {"CI_NODE_INDEX": "5", "CI_NODE_TOTAL": "4"}, "CI_NODE_INDEX=5 is outside 4"),
        ("auto", {"CI_NODE_INDEX": "1"}, "CI_NODE_TOTAL must be a whole number"),
        ("auto/3", {"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "4"}, "CI_NODE_TOTAL is 4"),
        ("auto/x", {"JOB_COMPLETION_INDEX": "0"}, "--shard auto/x must be a whole"),
    ],
)
def test_auto_without_a_usable_shard_is_a_clear_error(
    value: str, environ: dict[str, str], message: str
):
    with pytest.raises(InputError, match=message.replace("/", ".")):
        parse_shard(value, environ)


@pytest.mark.databases("sqlite")
def test_auto_plans_the_same_organizations_as_k_of_n(env: Env):
    def planned(*args: str, **extra: str) -> list[str]:
        r = env.run("plan", "--format", "json", *args, **extra)
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout)["organizations"]

    seen: list[str] = []
    for k in (1, 2, 3):
        explicit = planned("--shard", f"{k}/3")
        assert planned("--shard", "auto", CI_NODE_INDEX=str(k), CI_NODE_TOTAL="3") == explicit
        assert planned("--shard", "auto/3", JOB_COMPLETION_INDEX=str(k - 1)) == explicit
        seen += explicit
    assert sorted(seen) == ["acme", "globex"]
    r = env.run("plan", "--shard", "auto", CI_NODE_INDEX="", JOB_COMPLETION_INDEX="")
    assert r.exit_code == 1 and "no shard in the environment" in r.output
