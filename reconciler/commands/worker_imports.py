"""What a worker process of ``apply --workers`` / ``health --workers`` runs, imported when it
starts (``reconciler.commands.worker`` imports this module first), the way ``reconciler.cli``
imports the commands: with the garbage collector off, the objects made frozen, and the CLI's
threshold for the youngest generation (a worker, like the command it splits, allocates its
records by the hundred thousand, nearly none in cycles). Unpickling the job and running it
would import the same modules anyway."""

from __future__ import annotations

import gc

from reconciler.commands.frozen_imports import frozen_imports

with frozen_imports():
    import reconciler.apply
    import reconciler.commands.channel
    import reconciler.commands.healthcmd
    import reconciler.commands.inputs
    import reconciler.commands.run
    import reconciler.core.changes  # noqa: F401

gc.set_threshold(50_000, *gc.get_threshold()[1:])
