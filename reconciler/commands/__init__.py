"""The work behind each command: load inputs, call the core and the edges, return results.

The CLI (``reconciler.cli``) only parses arguments, calls these, prints and sets exit codes.
"""

import sys

# The httpx package imports its command-line client (httpx._main: click, rich and pygments,
# some 50 ms of CPU) whenever those are installed, and no command uses it; marked absent, httpx
# defines its stub ``main`` instead. Every process pays its imports (issue 16): the CLI's and
# each ``--workers`` worker's (both import this package before httpx).
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
