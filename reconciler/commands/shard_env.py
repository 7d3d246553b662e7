"""``--shard auto``: the shard K/N read from the environment a CI system or Kubernetes gives.

- GitLab CI ``parallel: N``: ``CI_NODE_INDEX`` (1..N) and ``CI_NODE_TOTAL`` (N).
- Kubernetes Indexed Jobs: ``JOB_COMPLETION_INDEX`` (0..N-1, so K is the index + 1). A Job
  does not tell its pods how many completions it has, so N is given: ``--shard auto/N`` or the
  variable ``RECONCILER_SHARD_TOTAL``.

``--shard auto/N`` also checks GitLab's total: a mismatch is an error, not a silent overlap.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from reconciler.core.errors import InputError

AUTO = re.compile(r"^auto(?:/(?P<total>.*))?$")
TOTAL_VARIABLE = "RECONCILER_SHARD_TOTAL"
HELP = (
    "--shard auto reads the shard from Kubernetes Indexed Jobs (JOB_COMPLETION_INDEX, with the "
    f"total as --shard auto/N or {TOTAL_VARIABLE}) or GitLab's parallel: (CI_NODE_INDEX and "
    "CI_NODE_TOTAL)"
)


def is_auto(value: str) -> bool:
    return AUTO.match(value) is not None


def auto_shard(value: str, environ: Mapping[str, str]) -> tuple[int, int]:
    """(K, N) for ``auto`` or ``auto/N``, from ``environ``; a clear error when it is not there."""
    match = AUTO.match(value)
    assert match is not None
    given = match.group("total")
    total = _whole(f"--shard {value}", given) if given is not None else None
    if environ.get("JOB_COMPLETION_INDEX", "") != "":
        index = _whole("JOB_COMPLETION_INDEX", environ["JOB_COMPLETION_INDEX"], minimum=0)
        if total is None and environ.get(TOTAL_VARIABLE):
            total = _whole(TOTAL_VARIABLE, environ[TOTAL_VARIABLE])
        if total is None:
            raise InputError(
                "--shard auto: JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job) but the "
                f"number of shards is not; use --shard auto/N or set {TOTAL_VARIABLE} to the "
                "Job's completions"
            )
        return _checked(index + 1, total, f"JOB_COMPLETION_INDEX={index}")
    if environ.get("CI_NODE_INDEX", "") != "":
        index = _whole("CI_NODE_INDEX", environ["CI_NODE_INDEX"])
        node_total = _whole("CI_NODE_TOTAL", environ.get("CI_NODE_TOTAL", ""))
        if total is not None and total != node_total:
            raise InputError(
                f"--shard {value}: CI_NODE_TOTAL is {node_total}; the job runs {node_total} "
                f"parallel nodes, not {total}"
            )
        return _checked(index, node_total, f"CI_NODE_INDEX={index}")
    raise InputError(f"--shard {value}: no shard in the environment. {HELP}")


def _whole(name: str, raw: str | None, *, minimum: int = 1) -> int:
    try:
        value = int(raw or "")
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise InputError(f"{name} must be a whole number of at least {minimum} ({HELP})")
    return value


def _checked(k: int, n: int, source: str) -> tuple[int, int]:
    if not 1 <= k <= n:
        raise InputError(f"--shard auto: {source} is outside {n} shard(s)")
    return (k, n)
