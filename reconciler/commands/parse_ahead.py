"""Parsing the manifests on a second core while the command starts up (issue 16).

Before a plan reads its first manifest it has imported SQLAlchemy, pydantic and the catalog's
models and read the database: about 0.4 s on one core, with the other idle. Parsing the
manifests of 1,000 organizations is another 0.14 s on that same core. ``parse_ahead`` forks a
child as soon as the command line is read; the child parses every manifest file with the same
reader (``manifest_files.read_manifest_file``) and sends the documents back through a pipe,
while this process imports and reads. ``load_manifests`` then takes each file's documents from
the child (``AheadReader``); a file the child did not parse (it could not read it, or refused
it) is read here, as without a child, so every answer and message is the same either way.

The pipe carries what the manifest files hold and nothing else: the child reads no environment
variable, so no secret. ``marshal`` carries it: the documents are plain data (dicts, lists,
text, numbers), between two processes of one interpreter, and it loads them faster than
``pickle`` does (0.018-0.035 s against 0.033-0.049 s for 1,000 manifests).

The child is forked only where that is safe and pays: on Linux (``fork`` without ``exec``),
with two usable cores or more, with one thread in this process (a fork copies no other thread
and could copy a lock one of them holds) and manifests of ``MIN_BYTES`` or more in all. It
never outlives its use: it exits once it has sent the documents, and is ended if the command
stops before it reads them.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import marshal
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from reconciler.core.errors import Diagnostics
from reconciler.core.manifest_files import (
    ManifestReader,
    collect_manifest_files,
    read_manifest_file,
)
from reconciler.core.yamlsafe import YamlDocument, YamlError

log = logging.getLogger("reconciler.manifests")

# below this much YAML the fork (a few milliseconds) costs more than the parse it moves
MIN_BYTES = 256 * 1024

Sent = dict[str, list[tuple[Any, dict[Any, int], int]]]  # file -> (value, lines, line) each


@contextlib.contextmanager
def parse_ahead(paths: Sequence[str], *, wanted: bool = True) -> Iterator[ManifestReader]:
    """How ``load_manifests`` should read the manifests under ``paths``: from a child started
    here, parsing them already, or (when one would not pay or is not safe, or the command
    reads no manifest: not ``wanted``) the usual way."""
    files = collect_manifest_files(list(paths) or ["manifests"], Diagnostics()) if wanted else []
    try:
        reader = AheadReader.start(files) if _worth_a_child(files) else None
    except OSError:  # no process or pipe to be had (a limit of the user's): read them here
        reader = None
    if reader is None:
        yield read_manifest_file
        return
    try:
        yield reader.read
    finally:
        reader.close()


def _worth_a_child(files: list[Path]) -> bool:
    if not sys.platform.startswith("linux") or threading.active_count() != 1:
        return False
    if len(os.sched_getaffinity(0)) < 2:
        return False
    size = 0
    for path in files:
        with contextlib.suppress(OSError):
            size += path.stat().st_size
        if size >= MIN_BYTES:
            return True
    return False


class AheadReader:
    """The documents a child parsed, handed out file by file; ``read`` is a ``ManifestReader``."""

    def __init__(self, pid: int, pipe: int) -> None:
        self._pid: int | None = pid
        self._pipe: int | None = pipe
        self._sent: Sent | None = None

    @classmethod
    def start(cls, files: list[Path]) -> AheadReader:
        """Fork the child; OSError when no pipe or process can be had."""
        read_end, write_end = os.pipe()
        # no signal reaches the child before it has put back the default handlers: Ctrl-C
        # then ends it quietly (no traceback of the parent's code in the child)
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            pid = os.fork()
        except OSError:
            os.close(read_end)
            os.close(write_end)
            raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        if pid == 0:
            _child(files, read_end, write_end, blocked)  # never returns
        os.close(write_end)
        return cls(pid, read_end)

    def read(self, path: Path) -> list[YamlDocument]:
        """The documents of ``path``: the child's when it parsed the file, else read here."""
        if self._sent is None:
            self._sent = self._receive()
        parsed = self._sent.pop(str(path), None)
        if parsed is None:
            return read_manifest_file(path)
        return [YamlDocument(value, lines, line) for value, lines, line in parsed]

    def _receive(self) -> Sent:
        """Everything the child sent; empty when it failed (this process reads every file)."""
        assert self._pipe is not None
        with open(self._pipe, "rb", closefd=True) as pipe:
            self._pipe = None
            data = pipe.read()
        pid = self._pid
        if self._reap() != 0:
            log.debug("the process parsing the manifests (%s) failed: they are read here", pid)
            return {}
        try:
            sent = marshal.loads(data)  # noqa: S302  # our own child, through our own pipe
        except (EOFError, ValueError, TypeError):
            return {}
        if not isinstance(sent, dict):
            return {}
        log.debug("%d manifest file(s) parsed by process %s beside this one", len(sent), pid)
        return sent

    def _reap(self) -> int:
        """Wait for the child; its exit code."""
        pid, self._pid = self._pid, None
        if pid is None:
            return 0
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)

    def close(self) -> None:
        """End the child if its documents were never asked for (the command stopped before it
        read a manifest), and reap it."""
        if self._pipe is not None:
            os.close(self._pipe)
            self._pipe = None
            if self._pid is not None:  # not reaped yet, so the number is still the child's
                os.kill(self._pid, signal.SIGKILL)
        self._reap()


def _child(files: list[Path], read_end: int, write_end: int, blocked: set[Any]) -> None:
    """The forked child: parse, send, exit, without running anything of the parent's (no
    ``atexit``, no buffered output flushed twice)."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        os.close(read_end)
        _let_go_of_the_terminal()
        gc.disable()  # as the parent parses (``collection_paused``): data only, no cycles
        sent: Sent = {}
        for path in files:
            try:
                docs = read_manifest_file(path)
            except (OSError, YamlError):
                continue  # the parent reads it again and words the problem
            sent[str(path)] = [(d.value, dict(d.lines), d.line) for d in docs]
        with open(write_end, "wb", closefd=True) as pipe:
            pipe.write(marshal.dumps(sent))
        code = 0
    except BaseException:  # nothing here may reach the parent's code
        code = 1
    finally:
        os._exit(code)


def _let_go_of_the_terminal() -> None:
    """Point the child's standard streams at /dev/null: it prints nothing, and whoever reads the
    command's output (a CI job, a test) sees it end when the command ends, not when a child
    killed along with it (SIGKILL reaches only the command) has finished parsing."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
