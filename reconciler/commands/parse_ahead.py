"""Parsing the manifests on a second core while the command starts up (issue 16).

Before a plan reads its first manifest it has imported SQLAlchemy, pydantic and the catalog's
models and read the database: about 0.4 s on one core, with the other idle. Parsing the
manifests of 1,000 organizations is another 0.14 s on that same core, and checking them against
the catalog 0.1 s. ``parse_ahead`` forks a child as soon as the command line is read; the child
parses every manifest file with the same reader (``manifest_files.read_manifest_file``) while
this process imports and reads, and sends back through a pipe either

- the documents (``D``): ``load_manifests`` takes each file's documents from the child
  (``Ahead.read``); a file the child did not parse (it could not read it, or refused it) is
  read here, so every answer and message is the same either way; or
- for plan and apply, the desired state it checked from them (``C``, ``commands.check_ahead``:
  ``Ahead.checked``), when the check does not depend on the database and no organization's
  provider-side reads would wait for it.

The pipe carries no secret: the documents hold ``${VAR}`` references, and a checked state
carries each secret as its variable's name. The documents are plain data (dicts, lists, text,
numbers) between two processes of one interpreter: ``marshal`` carries them, loading them
faster than ``pickle`` does (0.018-0.035 s against 0.033-0.049 s for 1,000 manifests).

The child is forked only where that is safe and pays: on Linux (``fork`` without ``exec``),
with two usable cores or more, with one thread in this process (a fork copies no other thread
and could copy a lock one of them holds) and manifests of ``MIN_BYTES`` or more in all. It
never outlives its use: it exits once it has written, and is ended if the command stops before
it reads.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import marshal
import os
import signal
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from reconciler.commands.check_ahead import (
    TAG,
    CheckAhead,
    Checked,
    check_in_child,
    receive_checked,
    worth_checking,
)
from reconciler.core.errors import Diagnostics
from reconciler.core.manifest_files import (
    collect_manifest_files,
    read_manifest_file,
)
from reconciler.core.yamlsafe import YamlDocument, YamlError

log = logging.getLogger("reconciler.manifests")

# below this much YAML the fork (a few milliseconds) costs more than the parse it moves
MIN_BYTES = 256 * 1024

DOCUMENTS = b"D"  # the first byte of the parsed documents on the pipe (a checked state: b"C")
Sent = dict[str, list[tuple[Any, dict[Any, int], int]]]  # file -> (value, lines, line) each


@contextlib.contextmanager
def parse_ahead(
    paths: Sequence[str], *, wanted: bool = True, check: CheckAhead | None = None
) -> Iterator[Ahead | None]:
    """A child parsing the manifests under ``paths`` (and, with ``check``, checking them:
    ``commands.check_ahead``), started here; None when one would not pay or is not safe, or
    the command reads no manifest (not ``wanted``): the command reads them the usual way."""
    files = collect_manifest_files(list(paths) or ["manifests"], Diagnostics()) if wanted else []
    try:
        ahead = Ahead.start(files, check) if _worth_a_child(files) else None
    except OSError:  # no process or pipe to be had (a limit of the user's): read them here
        ahead = None
    try:
        yield ahead
    finally:
        if ahead is not None:
            ahead.close()


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


class Ahead:
    """What a child sent: the documents of the files it parsed, handed out file by file
    (``read``, a ``ManifestReader``), or the desired state it checked (``checked``)."""

    def __init__(self, pid: int, pipe: int) -> None:
        self._pid: int | None = pid
        self._pipe: int | None = pipe
        self._data: bytes | None = None
        self._sent: Sent | None = None

    @classmethod
    def start(cls, files: list[Path], check: CheckAhead | None = None) -> Ahead:
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
            _child(files, read_end, write_end, blocked, check)  # never returns
        os.close(write_end)
        return cls(pid, read_end)

    def checked(
        self,
        files: Sequence[Path],
        environ: Mapping[str, str],
        catalog_dir: str | None,
        resolve_secrets: bool,
    ) -> Checked | None:
        """The desired state the child checked, when it is the check the command would make
        of ``files`` (``check_ahead.receive_checked``); None: the command checks them."""
        data = self._received()
        if not data.startswith(TAG):
            return None
        checked = receive_checked(data, environ, files, catalog_dir, resolve_secrets)
        if checked is not None:
            self._data = b""  # no document is asked for after a checked state is taken
            log.debug("%d manifest file(s) checked by a process beside this one", len(files))
        return checked

    def read(self, path: Path) -> list[YamlDocument]:
        """The documents of ``path``: the child's when it parsed the file, else read here."""
        if self._sent is None:
            self._sent = self._documents()
        return _take(self._sent, path)

    def _documents(self) -> Sent:
        """The documents the child sent; empty when it sent none (this process reads every
        file)."""
        data = self._received()
        if not data.startswith(DOCUMENTS):
            return {}
        self._data = b""  # read once, here
        try:
            sent = marshal.loads(memoryview(data)[len(DOCUMENTS) :])  # noqa: S302  # our own child
        except (EOFError, ValueError, TypeError):
            return {}
        if not isinstance(sent, dict):
            return {}
        log.debug("%d manifest file(s) parsed by a process beside this one", len(sent))
        return sent

    def _received(self) -> bytes:
        """Everything the child wrote, read once; empty when it failed."""
        if self._data is None:
            assert self._pipe is not None
            with open(self._pipe, "rb", closefd=True) as pipe:
                self._pipe = None
                data = pipe.read()
            pid = self._pid
            if self._reap() != 0:
                log.debug("the process reading the manifests (%s) failed: they are read here", pid)
                data = b""
            self._data = data
        return self._data

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


def _child(
    files: list[Path], read_end: int, write_end: int, blocked: set[Any], check: CheckAhead | None
) -> None:
    """The forked child: parse (and check), send, exit, without running anything of the
    parent's (no ``atexit``, no buffered output flushed twice)."""
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
        payload = None
        values = (value for docs in sent.values() for value, _, _ in docs)
        if check is not None and worth_checking(check, values):
            try:
                payload = check_in_child(files, functools.partial(_take, dict(sent)), check)
            except Exception:  # the command checks the documents itself, and words it
                payload = None
        if payload is None:
            payload = DOCUMENTS + marshal.dumps(sent)
        with open(write_end, "wb", closefd=True) as pipe:
            pipe.write(payload)
        code = 0
    except BaseException:  # nothing here may reach the parent's code
        code = 1
    finally:
        os._exit(code)


def _take(sent: Sent, path: Path) -> list[YamlDocument]:
    """The documents of ``path`` as the child parsed them (taken out of ``sent``), else read
    here: a ``ManifestReader`` once ``sent`` is bound."""
    parsed = sent.pop(str(path), None)
    if parsed is None:
        return read_manifest_file(path)
    return [YamlDocument(value, lines, line) for value, lines, line in parsed]


def _let_go_of_the_terminal() -> None:
    """Point the child's standard streams at /dev/null: it prints nothing, and whoever reads the
    command's output (a CI job, a test) sees it end when the command ends, not when a child
    killed along with it (SIGKILL reaches only the command) has finished parsing."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
