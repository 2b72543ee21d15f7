"""Starts ``fairshare dev`` as a real process tree for end-to-end tests."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from fairshare.infra import port_in_use, postmaster_pid

SERVICES = ("vacancies", "bank", "matching", "monitor")


@dataclass
class DevSystem:
    """A running ``fairshare dev`` and where to reach its parts."""

    proc: subprocess.Popen[bytes]
    data_dir: Path
    log: Path
    kafka_port: int
    base_port: int
    startup_s: float

    def url(self, service: str) -> str:
        """Base URL of ``service``."""
        return f"http://127.0.0.1:{self.base_port + SERVICES.index(service)}"

    def cli(self, *args: str) -> str:
        """Run a ``fairshare`` command against this system; return its stdout."""
        env = {**os.environ, "FAIRSHARE_DATA_DIR": str(self.data_dir)}
        env.pop("FAIRSHARE_DATABASE_URL", None)
        done = subprocess.run(
            [sys.executable, "-m", "fairshare", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"fairshare {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout

    def processes(self) -> list[psutil.Process]:
        """The supervisor, everything it started, and the PostgreSQL server tree."""
        root = psutil.Process(self.proc.pid)
        procs = [root, *root.children(recursive=True)]
        pid = postmaster_pid(self.data_dir / "pg")
        if pid and psutil.pid_exists(pid):
            postmaster = psutil.Process(pid)
            procs += [postmaster, *postmaster.children(recursive=True)]
        return procs


def ports_below_ephemeral(width: int) -> int:
    """First of ``width`` free ports below Linux's ephemeral range (32768 up).

    A killed service, or the broker, binds its port again: a port of the ephemeral
    range can meanwhile be the local end of some outgoing connection (a Kafka or HTTP
    client's), and the restarted process then can't bind it for as long as that lasts.
    """
    for _ in range(200):
        base = random.randrange(20000, 32768 - width)
        if not any(port_in_use(base + i) for i in range(width)):
            return base
    msg = "no free block of ports"
    raise RuntimeError(msg)


def start_system(data_dir: Path, *, timeout_s: float = 120) -> DevSystem:
    """Start the whole system and wait for its 'up' banner."""
    kafka_port = ports_below_ephemeral(1)
    base_port = ports_below_ephemeral(len(SERVICES))
    log = data_dir.with_suffix(".log")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAIRSHARE_")}
    started = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fairshare",
            "dev",
            "--data-dir",
            str(data_dir),
            "--kafka-port",
            str(kafka_port),
            "--base-port",
            str(base_port),
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={**env, "COLUMNS": "200"},
    )
    while "Fairshare is up" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() - started > timeout_s:
            proc.kill()
            msg = f"fairshare dev did not come up:\n{log.read_text(errors='replace')[-5000:]}"
            raise RuntimeError(msg)
        time.sleep(0.2)
    match = re.search(r"Fairshare is up in ([\d.]+) s", log.read_text())
    startup = float(match.group(1)) if match else time.monotonic() - started
    return DevSystem(proc, data_dir, log, kafka_port, base_port, startup)


def stop_system(system: DevSystem, sig: int = signal.SIGINT, timeout_s: float = 60) -> int:
    """Signal the supervisor and wait for it to exit; return its exit code."""
    system.proc.send_signal(sig)
    return system.proc.wait(timeout_s)


# Debian's chromium, without the background traffic this closed network would refuse.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


async def launch_chromium(playwright: Any) -> Any:
    """Debian's chromium under Playwright (no browser download: it can't be fetched here)."""
    return await playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
