"""Checks sent while apply's plan reads the provider side: that wait, put to use.

Before a first apply can write, its plan reads the provider side (reads x latency /
parallelism: two seconds for a thousand organizations with resources), and only then are
the new credentials checked. The checks do not depend on what the reads find: the
credentials to check are the manifest's, known as soon as the database-only plan is made.
So apply sends them while the reads go on, at most ``parallelism`` at once (the reads have a
``parallelism`` of their own), in a thread with its own event loop.

When the reads are done, no more are sent. Checks in flight are waited for, never cancelled,
so no check is sent twice: each answer is the check's result in apply
(``ApplyOptions.checked``), which sends only the rest. A provider whose breaker opened
meanwhile has all its checks reported at once as not sent, and the run says so once.

Sent early: active connections that the plan creates or gives new credentials (the ones apply
checks with the manifest's key), of providers with an API key and no dependency. Not sent
early: OAuth2 (a check first trades the refresh token, which must happen once, right before
the credentials are stored), a dependent (checked only after its dependency connected), and
credentials kept or reactivated from the database. Nothing is written here: the results wait
in memory until apply records them as it records any check.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from reconciler.apply.checks import needs_check, uses_new_credentials
from reconciler.core.catalog import Catalog
from reconciler.core.changes import Kind, Plan
from reconciler.core.endpoints import base_url_for
from reconciler.core.secret import Secret
from reconciler.health import (
    Breakers,
    CheckRequest,
    CheckResult,
    RetryPolicy,
    check_many,
    not_sent,
)

log = logging.getLogger("reconciler.apply")
said = logging.getLogger("reconciler.health")  # a provider that looks down, as checks say it


def early_requests(
    plan: Plan, catalog: Catalog, secrets: Mapping[str, Secret], environ: Mapping[str, str]
) -> list[CheckRequest]:
    """The checks apply will send with the manifest's credentials, by connection address."""
    out = []
    for ch in plan.changes:
        conn = ch.connection
        if ch.kind is not Kind.CONNECTION or conn is None:
            continue
        if not (needs_check(ch) and uses_new_credentials(ch)):
            continue
        provider = catalog.providers[ch.provider]
        if provider.auth == "oauth2" or provider.depends_on:
            continue
        if any(ref.variable not in secrets for ref in conn.credentials):
            continue  # apply says what is missing
        values = {ref.field: secrets[ref.variable] for ref in conn.credentials}
        base, _ = base_url_for(provider, environ)
        out.append(CheckRequest(ch.address, provider, values, base))
    return out


class EarlyChecks:
    """The checks of ``requests``, sent while ``running()``; ``results`` by address."""

    def __init__(
        self,
        requests: list[CheckRequest],
        *,
        parallelism: int,
        policy: RetryPolicy,
        environ: Mapping[str, str],
    ) -> None:
        self.requests = requests
        self.parallelism = parallelism
        self.policy = policy
        self.environ = environ
        self.results: dict[str, CheckResult] = {}
        self.breakers = Breakers.for_run(parallelism, environ)
        self._until = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task[None] | None = None

    @contextmanager
    def running(self) -> Iterator[None]:
        """Send checks until the block ends; then wait for those in flight. When the block
        raises (Ctrl-C, an error), those in flight are given up instead: apply will not run."""
        if not self.requests:
            yield
            return
        ready = threading.Event()
        thread = threading.Thread(
            target=self._run, args=(ready,), name="reconciler-early-checks", daemon=True
        )
        thread.start()
        ready.wait()
        try:
            yield
        except BaseException:
            self._until.set()
            if self._loop is not None and self._main is not None:
                self._loop.call_soon_threadsafe(self._main.cancel)
            thread.join()
            self.results.clear()
            raise
        self._until.set()
        thread.join()

    def _run(self, ready: threading.Event) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._main = asyncio.current_task()
            ready.set()
            await check_many(
                self.requests,
                parallelism=self.parallelism,
                policy=self.policy,
                on_result=self._keep,
                breakers=self.breakers,
                until=self._until,
                summarize=False,
            )

        try:
            asyncio.run(main())
        except asyncio.CancelledError:
            return
        except Exception as e:  # apply sends what has no result, and says what went wrong
            log.debug("checks sent during the plan stopped: %s", type(e).__name__)
            return
        finally:
            ready.set()
        self._close_down()

    def _close_down(self) -> None:
        """A provider whose breaker opened is down for the rest of this run: its checks not
        sent yet get their result now (as apply would give them), and the run says so once."""
        for request in self.requests:
            name = request.provider.name
            if str(request.key) not in self.results and self.breakers.is_open(name):
                self.breakers.skip(name)
                self._keep(not_sent(request))
        for sentence in self.breakers.summary():
            said.warning("%s", sentence)

    def _keep(self, result: CheckResult) -> None:
        self.results[str(result.key)] = result
