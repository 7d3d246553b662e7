"""Apply: carry out a Plan. The one place where effects happen.

Its inputs are the ``Plan`` (typed changes: what the manifest wants is in each change's
``after``), the secrets the plan's credentials name (environment variable -> ``Secret``) and
the rows it reads under each organization's lock; never the manifests. Each change gets one
``ChangeResult`` in the plan's vocabulary (``created``, ``blocked``...).

Order of work, so that a process killed at any point leaves a database the next apply can
bring to the desired state:

1. Health checks before anything is written, concurrently, in dependency waves: a dependent
   is checked only after its dependencies passed; otherwise it is blocked (``checks``). Those
   that need neither a dependency nor a token exchange go out while the plan reads the
   provider side (``early``); apply sends only the rest.
2. As soon as an organization's checks are all back, one transaction takes its lock, re-reads
   its state (refusing to write if it moved on since the plan), and writes its instances,
   connections, credentials, resources, health rows and audit entries (``writes``). Writes run
   in a second thread, so they overlap the checks of other organizations (``runner``).
   What a check's verdict means for a connection is decided first, purely (``decisions``).
   The creates and updates of organizations held across provider calls that are ready
   together share one transaction (``batches``); each is still checked and written whole
   or not at all.
3. Deletions of that organization follow, dependents first, once its creates and updates
   succeeded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.core.lazy_exports import exports

if TYPE_CHECKING:
    from reconciler.apply.results import ApplyOptions, ApplyReport, ChangeResult, Status
    from reconciler.apply.rows import health_row, health_values, token_envelopes
    from reconciler.apply.runner import Applier

# where each name lives: imported on first use, so that a plan asking only whether a change
# needs a check (``apply.checks.needs_check``) does not import the writers (37 ms)
__getattr__ = exports(
    __name__,
    {
        "ApplyOptions": "results",
        "ApplyReport": "results",
        "ChangeResult": "results",
        "Status": "results",
        "health_row": "rows",
        "health_values": "rows",
        "token_envelopes": "rows",
        "Applier": "runner",
    },
)


__all__ = [
    "Applier",
    "ApplyOptions",
    "ApplyReport",
    "ChangeResult",
    "Status",
    "health_row",
    "health_values",
    "token_envelopes",
]
