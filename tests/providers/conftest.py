from __future__ import annotations

from collections.abc import Iterator

import pytest

from reconciler.core.catalog import Catalog, load_catalog
from reconciler.simulator import Simulator


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture
def access() -> list[str]:
    return []


@pytest.fixture
def sim(access: list[str]) -> Iterator[Simulator]:
    with Simulator(access_log=access.append) as running:
        yield running
