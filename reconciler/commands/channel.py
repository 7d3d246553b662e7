"""The channel between ``--workers``' coordinator and its worker processes
(``reconciler.commands.workers``): starting a child, its pickled frames (the job in; progress,
log records and one result or error out), one progress display for all, the circuit breakers'
sentence said once, and SQLite's write turns. No ``Secret`` crosses it: they cannot be pickled,
and a child reads its secrets from the environment it inherits."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pickle
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, Any

from reconciler.core.errors import ReconcilerError

log = logging.getLogger("reconciler.workers")


class WriteTurn:
    """SQLite has one write lock for the whole file, and a writer waiting for it polls (up to
    100 ms apart) while another takes it again within a millisecond of releasing it: a worker
    could wait for many seconds, past ``--lock-timeout``, behind another that always has an
    organization ready. So the workers sharing a SQLite file take turns for each
    organization's writes: a POSIX lock on an empty, unlinked file every worker holds open
    (waiters sleep in the kernel and are woken at once; the lock goes with a killed process).
    After its turn a worker lets a waiting one go first."""

    HAND_OVER_S = 0.001

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        asked = time.monotonic()
        fcntl.lockf(self.fd, fcntl.LOCK_EX)
        log.debug("write turn after %.3f s", time.monotonic() - asked)
        try:
            yield
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN)
            time.sleep(self.HAND_OVER_S)


@contextlib.contextmanager
def turn_file(environ: Mapping[str, str]) -> Iterator[IO[bytes] | None]:
    """The file of the workers' ``WriteTurn`` on SQLite, for the block; None on PostgreSQL,
    where each organization has its own lock."""
    from reconciler.db.engine import database_url

    if not database_url(environ).startswith("sqlite"):
        yield None
        return
    with tempfile.TemporaryFile() as turn:
        yield turn


@dataclass
class CheckView:
    """A finished check as a worker reports it: what the progress display reads."""

    key: str
    status: str
    message: str
    failure_type: str | None
    response_ms: int | None


def check_view(r: Any) -> CheckView:
    key = getattr(r.key, "address", r.key)
    return CheckView(str(key), r.status, r.message, r.failure_type, r.response_ms)


class Relay:
    """One progress display for all workers: the total is the sum of theirs, so checks that
    finish before every worker has counted its own are held back until then."""

    def __init__(
        self,
        workers: int,
        on_check: Callable[[Any], None] | None,
        on_start: Callable[[int], None] | None,
    ) -> None:
        self.workers = workers
        self.on_check = on_check
        self.on_start = on_start
        self._lock = threading.Lock()
        self._totals: dict[int, int] = {}
        self._held: list[Any] = []
        self._started = False

    def start(self, worker: int, total: int) -> None:
        with self._lock:
            self._totals.setdefault(worker, total)
            if len(self._totals) == self.workers:
                self._begin()

    def check(self, r: Any) -> None:
        with self._lock:
            if self._started:
                if self.on_check is not None:
                    self.on_check(r)
            else:
                self._held.append(r)

    def finish(self) -> None:
        """Every worker is done: show what is still held (a worker that failed before
        counting its checks counts none)."""
        with self._lock:
            if not self._started:
                self._begin()

    def _begin(self) -> None:
        self._started = True
        if self.on_start is not None:
            self.on_start(sum(self._totals.values()))
        if self.on_check is not None:
            for r in self._held:
                self.on_check(r)
        self._held.clear()


@dataclass
class Child:
    """A worker process and what it sent back."""

    index: int
    organizations: int
    proc: subprocess.Popen[bytes]
    send: Connection
    receive: Connection
    job: dict[str, Any] | None = field(default=None, repr=False)
    result: Any = None
    error: BaseException | None = None
    done: bool = False
    thread: threading.Thread | None = field(default=None, repr=False)


# the child runs the code this process runs, wherever it was imported from
_ROOT = Path(__file__).resolve().parents[2]
_BOOTSTRAP = (
    "import sys; root = {root!r}\n"
    "if root not in sys.path: sys.path.insert(0, root)\n"
    "from reconciler.commands.worker import main; sys.exit(main())"
)


def start_child(
    index: int, job: dict[str, Any] | None, organizations: int, pass_fds: Sequence[int] = ()
) -> Child:
    """Start a worker process; ``listen`` sends it ``job`` (without waiting here for it to
    have started: its imports take about a second). None: the job is set later (``spares``)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _BOOTSTRAP.format(root=str(_ROOT))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        close_fds=True,
        pass_fds=tuple(pass_fds),
    )
    assert proc.stdin is not None and proc.stdout is not None
    send = Connection(os.dup(proc.stdin.fileno()), readable=False)
    receive = Connection(os.dup(proc.stdout.fileno()), writable=False)
    proc.stdin.close()
    proc.stdout.close()
    return Child(index, organizations, proc, send, receive, job)


def listen(child: Child, relay: Relay) -> None:
    """Read a child's frames until it has answered or gone (in a thread per child)."""
    relay_started = False
    try:
        job, child.job = child.job, None
        child.send.send(job)
        while True:
            kind, *rest = child.receive.recv()
            if kind == "start":
                relay.start(child.index, rest[0])
                relay_started = True
            elif kind == "check":
                relay.check(CheckView(*rest))
            elif kind == "log":
                name, level, message, created = rest
                _emit(name, level, message, created, child.proc.pid)
            elif kind == "result":
                child.result = rest[0]
                child.done = True
                break
            elif kind == "error":
                child.error = decode_error(rest[0])
                child.done = True
                break
    except (EOFError, OSError):
        pass
    finally:
        if not relay_started:
            relay.start(child.index, 0)
        with contextlib.suppress(OSError):
            child.send.close()  # the child may now end; a child still working stops
        code = child.proc.wait()
        if not child.done:
            how = f"signal {-code}" if code < 0 else f"exit code {code}"
            share = f"{child.organizations} organization(s)" if child.organizations else "its share"
            child.error = ReconcilerError(
                f"worker {child.index + 1} (pid {child.proc.pid}) stopped unexpectedly ({how}) "
                f"while working on {share}; each organization is either fully written or "
                "untouched. Run the command again."
            )


class BreakerNotes(logging.Filter):
    """Each worker's circuit breakers say when a provider looks down; the run says it once.
    Held back while the workers run, then one sentence per provider, with the checks every
    worker skipped added up (the sentence as one worker words it, when it cannot be read)."""

    LOGGER = "reconciler.health"
    SENTENCE = re.compile(
        r"^(?P<name>\S+) looks down: (?P<a>.*?, so )(?P<skipped>\d+)(?P<b> more .*)$"
    )

    def __init__(self) -> None:
        super().__init__()
        self.held: list[logging.LogRecord] = []
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if " looks down: " not in record.getMessage():
            return True
        with self._lock:
            self.held.append(record)
        return False

    def __enter__(self) -> BreakerNotes:
        logging.getLogger(self.LOGGER).addFilter(self)
        return self

    def __exit__(self, *_: object) -> None:
        logger = logging.getLogger(self.LOGGER)
        logger.removeFilter(self)
        for level, message in self.merged():
            logger.log(level, "%s", message)

    def merged(self) -> list[tuple[int, str]]:
        by_provider: dict[str, list[tuple[int, re.Match[str]]]] = {}
        out: list[tuple[int, str]] = []
        for record in self.held:
            match = self.SENTENCE.match(record.getMessage())
            if match is None:
                out.append((record.levelno, record.getMessage()))
            else:
                by_provider.setdefault(match["name"], []).append((record.levelno, match))
        for name, said in sorted(by_provider.items()):
            level, first = said[0]
            skipped = sum(int(m["skipped"]) for _, m in said)
            out.append((level, f"{name} looks down: {first['a']}{skipped}{first['b']}"))
        return out


def _emit(name: str, level: int, message: str, created: float, pid: int) -> None:
    """A worker's log record, with its time and process, where this process's records go."""
    record = logging.makeLogRecord(
        {
            "name": name,
            "levelno": level,
            "levelname": logging.getLevelName(level),
            "msg": message,
            "created": created,
            "msecs": (created - int(created)) * 1000,
            "process": pid,
        }
    )
    logging.getLogger(name).handle(record)


def encode_error(e: BaseException) -> tuple[str, Any, str]:
    """An error for the channel: pickled when it can be (a ``Secret`` never can), else its
    type's name and, for our own errors (which never quote a secret), its message."""
    try:
        blob = pickle.dumps(e)
        pickle.loads(blob)  # noqa: S301 (our own bytes, just made)
        return ("pickled", blob, "")
    except Exception:
        return ("named", type(e).__name__, str(e) if isinstance(e, ReconcilerError) else "")


def decode_error(encoded: tuple[str, Any, str]) -> BaseException:
    kind, value, message = encoded
    if kind == "pickled":
        error = pickle.loads(value)  # noqa: S301 (from our own worker's pipe)
        assert isinstance(error, BaseException)
        return error
    if message:
        return ReconcilerError(message)
    # the same type name in "An unexpected error has occurred: NAME" (exit 3)
    return type(str(value), (Exception,), {})()


def worst(errors: Sequence[BaseException]) -> BaseException | None:
    """The error to raise for the run: an unexpected one (exit 3) before our own (exit 1)."""
    unexpected = [e for e in errors if not isinstance(e, ReconcilerError)]
    ranked = unexpected or list(errors)
    return ranked[0] if ranked else None
