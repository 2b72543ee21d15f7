"""A Tansu broker of a test's own, to kill and start again (Tansu forgets everything)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fairshare.infra import free_port, start_broker

OwnBroker = tuple[int, list[subprocess.Popen[bytes]]]


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[OwnBroker]:
    """A Tansu broker of this test's own: (its port, every process started on it)."""
    port = free_port()
    procs = [start_broker(port, log_file=tmp_path / "tansu.log")]
    yield port, procs
    for proc in procs:
        proc.kill()
        proc.wait()


def restart(port: int, procs: list[subprocess.Popen[bytes]], log: Path) -> None:
    """Kill the broker and start an empty one on the same port: every log is gone."""
    procs[-1].kill()
    procs[-1].wait()
    procs.append(start_broker(port, log_file=log))
