"""End-to-end fixtures: each test module gets its own whole system, as processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.system import DevSystem, start_system, stop_system


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevSystem]:
    """`fairshare dev` on embedded infrastructure, for the module's tests."""
    dev = start_system(tmp_path_factory.mktemp("system") / "data")
    print(f"\nfairshare dev came up in {dev.startup_s:.1f} s")
    try:
        yield dev
    finally:
        stop_system(dev)
