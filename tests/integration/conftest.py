"""Integration tests run in one process after the end-to-end ones."""

from __future__ import annotations

import pytest

from services.vacancies import secret_box
from tests.integration.vacancies_support import TEST_SECRET_BOX


@pytest.fixture(autouse=True)
def _run_keys() -> None:
    """The run's vacancies keys installed before each test. The keys are one per process
    (the composition root installs them), and a command run in this process (the
    end-to-end tests run `fairshare org add` in-process, which installs the keys of
    their own system) would otherwise leave later tests sealing with another system's
    key; every later `org add` was then refused (the full suite failed 30 tests)."""
    secret_box.install(TEST_SECRET_BOX)
