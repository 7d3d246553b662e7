"""A real notification receiver for every test here, and the variables that point at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.incidents.receiver import Receiver

# A canary: the signing secret must never show up in an event, a header, a row or an output.
NOTIFY_SECRET = "nsec_CANARYnotify-secret-4e7d"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def notifying(env, receiver: Receiver):  # type: ignore[no-untyped-def]
    """``env`` with RECONCILER_NOTIFY_URL and RECONCILER_NOTIFY_SECRET set to the receiver."""
    env.vars.update(RECONCILER_NOTIFY_URL=receiver.url, RECONCILER_NOTIFY_SECRET=NOTIFY_SECRET)
    return env
