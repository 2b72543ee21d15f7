"""Fixtures shared by every tier: the real broker and database, started once per run."""

from __future__ import annotations

import random
import string
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fairshare.infra import Postgres, free_port, start_broker, start_postgres


@dataclass(frozen=True)
class Infra:
    """Connection details of the session's real PostgreSQL and Kafka broker."""

    dsn: str
    bootstrap: str


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    """Embedded PostgreSQL and a Tansu broker for the whole test session."""
    root = tmp_path_factory.mktemp("infra")
    pg: Postgres = start_postgres(root / "pg")
    port = free_port()
    broker: subprocess.Popen[bytes] = start_broker(port, log_file=root / "tansu.log")
    try:
        yield Infra(dsn=pg.uri, bootstrap=f"127.0.0.1:{port}")
    finally:
        broker.terminate()
        broker.wait(10)
        pg.stop()


@pytest.fixture
def topic_prefix() -> str:
    """A topic prefix of the test's own, so tests on one broker never see each other."""
    return "t" + "".join(random.choices(string.ascii_lowercase, k=8)) + "."


@pytest.fixture
def region() -> str:
    """A region code of the test's own (ICB codes are three characters)."""
    return "".join(random.choices(string.ascii_uppercase + string.digits, k=3))


@pytest.fixture
def artifacts_dir() -> Path:
    """Where tests leave screenshots and other artefacts for a person to look at."""
    path = Path(__file__).resolve().parent.parent / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path
