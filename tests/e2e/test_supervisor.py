"""``fairshare dev`` keeps the system up: it restarts what dies and says so.

One real ``fairshare dev`` (embedded PostgreSQL, a private Tansu broker on a free port,
the four services as processes) for the module; the tests kill parts of it with
SIGKILL, in order, and finally stop it. Every process the system ever ran is
remembered and killed at the end if it is still there, whatever failed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from fairshare.dev import _Backoff
from fairshare.infra import port_in_use, postgres_running, postmaster_pid
from tests.e2e.system import ports_below_ephemeral

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

SERVICES = ("vacancies", "bank", "matching", "monitor")
STARTUP_S = 90
# A restarted service with a Kafka consumer answers /health only once its consumer
# group has rebalanced without the killed member: about 20 s on Tansu (measured).
SERVICE_BACK_S = 60
INFRA_BACK_S = 20


@dataclass
class Dev:
    """A running ``fairshare dev`` and every process it was seen to run."""

    proc: subprocess.Popen[bytes]
    data_dir: Path
    log: Path
    kafka_port: int
    base_port: int
    seen: dict[int, psutil.Process] = field(default_factory=dict)

    def output(self) -> str:
        """Everything ``fairshare dev`` wrote so far (stdout and stderr)."""
        return self.log.read_text(errors="replace")

    def supervisor_lines(self) -> str:
        """The supervisor's own messages, one a line."""
        return "\n".join(
            line for line in self.output().splitlines() if line.startswith("supervisor |")
        )

    def port(self, service: str) -> int:
        """The port of ``service``."""
        return self.base_port + SERVICES.index(service)

    def healthy(self, service: str) -> bool:
        """Whether ``service`` answers /health with 200 right now."""
        try:
            url = f"http://127.0.0.1:{self.port(service)}/health"
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def remember(self) -> list[psutil.Process]:
        """The supervisor's process tree and PostgreSQL's, noted for the final clean-up."""
        procs: list[psutil.Process] = []
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(self.proc.pid)
            procs += [root, *root.children(recursive=True)]
        pid = postmaster_pid(self.data_dir / "pg")
        if pid is not None and pid > 0:  # initdb's bootstrap writes a negative pid
            with contextlib.suppress(psutil.Error):
                postmaster = psutil.Process(pid)
                procs += [postmaster, *postmaster.children(recursive=True)]
        self.seen.update({p.pid: p for p in procs})
        return procs

    def child(self, *words: str) -> psutil.Process | None:
        """The supervisor's live child whose command line holds ``words``, if any."""
        self.remember()
        with contextlib.suppress(psutil.Error):
            for proc in psutil.Process(self.proc.pid).children():
                with contextlib.suppress(psutil.Error):
                    if all(word in proc.cmdline() for word in words):
                        return proc
        return None

    def pid_of(self, *words: str) -> int | None:
        """The pid of :meth:`child`."""
        proc = self.child(*words)
        return proc.pid if proc else None

    def all_healthy(self) -> bool:
        """Whether every service answers /health (noting the processes on the way)."""
        self.remember()
        return all(self.healthy(s) for s in SERVICES)


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    left = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(proc)
    return left


def _wait_for(check: Callable[[], bool], within_s: float, what: str, dev: Dev) -> float:
    """Poll ``check`` until true; return how long it took, or fail with the log's tail."""
    started = time.monotonic()
    while not check():
        if dev.proc.poll() is not None:
            pytest.fail(
                f"fairshare dev exited ({dev.proc.returncode}) waiting for {what};"
                f" the log ends:\n{dev.output()[-4000:]}"
            )
        if time.monotonic() - started > within_s:
            pytest.fail(f"no {what} within {within_s} s; the log ends:\n{dev.output()[-4000:]}")
        time.sleep(0.2)
    return time.monotonic() - started


def _clean_up(dev: Dev) -> None:
    """Stop the supervisor if it still runs, then kill anything of the system left over."""
    try:
        dev.remember()
        if dev.proc.poll() is None:
            dev.proc.send_signal(signal.SIGTERM)
            try:
                dev.proc.wait(30)
            except subprocess.TimeoutExpired:
                dev.proc.kill()
                dev.proc.wait(5)
    finally:
        _kill_leftovers(dev)


def _kill_leftovers(dev: Dev) -> None:
    with contextlib.suppress(psutil.Error):
        dev.seen.setdefault(dev.proc.pid, psutil.Process(dev.proc.pid))
    left = _alive(list(dev.seen.values()))
    for proc in left:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(left, timeout=10)


@pytest.fixture(scope="module")
def dev() -> Iterator[Dev]:
    """``fairshare dev`` on a fresh data directory and free ports, up and healthy."""
    # Not under pytest's own temporary root: every pytest run resets that to mode 700,
    # and PostgreSQL runs as another user when we are root (a concurrent run would
    # lock it out of its data directory).
    root = Path(tempfile.mkdtemp(prefix="fairshare-supervisor-"))
    root.chmod(0o755)
    kafka_port = ports_below_ephemeral(1)
    base_port = ports_below_ephemeral(len(SERVICES))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAIRSHARE_")}
    log = root / "dev.log"
    # No topic prefix needed: the broker is this test's own, on a port of its own.
    argv = [sys.executable, "-m", "fairshare", "dev", "--data-dir", str(root / "data")]
    argv += ["--kafka-port", str(kafka_port), "--base-port", str(base_port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    system = Dev(proc, root / "data", log, kafka_port, base_port)
    try:
        # Up means the supervisor has said so too: until then a service that dies is a
        # failed start-up, which stops everything (seen when a test killed one a moment
        # after every /health answered, before the supervisor's own check).
        took = _wait_for(
            lambda: system.all_healthy() and "Fairshare is up" in system.output(),
            STARTUP_S,
            "healthy system",
            system,
        )
        print(f"\nfairshare dev healthy in {took:.1f} s")
        yield system
    finally:
        _clean_up(system)
        shutil.rmtree(root, ignore_errors=True)


def test_a_killed_service_is_restarted_and_the_supervisor_says_so(dev: Dev) -> None:
    """A service killed with SIGKILL is started again on its port and answers /health
    again; the supervisor names it, its exit code and the restart, and the rest of the
    system stays up meanwhile."""
    victim = dev.child("serve", "matching")
    assert victim is not None
    victim.kill()
    took = _wait_for(
        lambda: (
            dev.pid_of("serve", "matching") not in (None, victim.pid) and dev.healthy("matching")
        ),
        SERVICE_BACK_S,
        "healthy matching after its restart",
        dev,
    )
    print(f"\nmatching answered /health again {took:.1f} s after SIGKILL")
    said = dev.supervisor_lines()
    assert "matching exited with code -9" in said
    assert "restarting in 1 s (restart 1)" in said
    _wait_for(lambda: "matching is healthy again" in dev.supervisor_lines(), 5, "news", dev)
    assert dev.all_healthy()


def test_b_killed_broker_is_restarted_on_its_port_and_the_supervisor_says_so(dev: Dev) -> None:
    """The embedded broker killed with SIGKILL is started again on the same port within
    seconds, and the supervisor says it died and is back."""
    broker = dev.child("broker", "--listener-url")
    assert broker is not None
    broker.kill()
    broker.wait(5)
    took = _wait_for(
        lambda: port_in_use(dev.kafka_port) and "Kafka broker is back" in dev.supervisor_lines(),
        INFRA_BACK_S,
        "restarted broker",
        dev,
    )
    print(f"\nthe broker accepted connections again {took:.1f} s after SIGKILL")
    said = dev.supervisor_lines()
    assert f"the Kafka broker (Tansu, pid {broker.pid}) exited with code -9" in said
    assert dev.pid_of("broker", "--listener-url") not in (None, broker.pid)


def test_c_killed_postgres_is_restarted_on_its_data_dir(dev: Dev) -> None:
    """The embedded PostgreSQL killed with SIGKILL is started again on the same data
    directory at the same address; the supervisor says so and the services' /health
    (which queries the database) answers again."""
    pgdata = dev.data_dir / "pg"
    old = postmaster_pid(pgdata)
    assert old is not None
    psutil.Process(old).kill()
    took = _wait_for(
        lambda: "PostgreSQL is back" in dev.supervisor_lines(),
        INFRA_BACK_S,
        "restarted PostgreSQL",
        dev,
    )
    print(f"\nPostgreSQL was back {took:.1f} s after SIGKILL")
    said = dev.supervisor_lines()
    assert f"PostgreSQL (pid {old}) is not running" in said
    assert "PostgreSQL came back at" not in said  # i.e. at the same address
    assert postmaster_pid(pgdata) not in (None, old)
    _wait_for(dev.all_healthy, 30, "healthy services", dev)


def test_d_sigterm_stops_everything_with_exit_code_0(dev: Dev) -> None:
    """SIGTERM stops the services, the broker and PostgreSQL (everything the system
    ever ran), removes runtime.json and exits 0, after all the restarts above."""
    dev.remember()
    assert (dev.data_dir / "runtime.json").exists()
    dev.proc.send_signal(signal.SIGTERM)
    assert dev.proc.wait(60) == 0
    psutil.wait_procs(_alive(list(dev.seen.values())), timeout=10)
    assert _alive(list(dev.seen.values())) == []
    assert not postgres_running(dev.data_dir / "pg")
    assert not (dev.data_dir / "runtime.json").exists()
    assert not port_in_use(dev.kafka_port)
    assert not any(port_in_use(dev.port(s)) for s in SERVICES)
    assert "Stopped." in dev.output()


def test_the_backoff_doubles_from_1_s_to_30_s_and_starts_afresh_after_a_minute_up() -> None:
    """Restarts wait 1, 2, 4 ... up to 30 s while the thing keeps dying young; once it has
    stayed up a minute, the next death waits 1 s again."""
    backoff = _Backoff()
    assert [backoff.after_death(uptime=2) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.in_a_row == 7
    assert backoff.after_death(uptime=60) == 1
    assert backoff.in_a_row == 1
