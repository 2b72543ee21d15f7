"""``fairshare dev``: the whole system on embedded infrastructure, as separate processes.

Starts PostgreSQL and the Tansu broker (unless FAIRSHARE_KAFKA_BOOTSTRAP and
FAIRSHARE_DATABASE_URL point elsewhere), creates topics, migrates every schema,
then runs each service as its own OS process, streaming their logs with a prefix.
On Ctrl-C or SIGTERM it stops the services, then the broker, then PostgreSQL.
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
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console

from fairshare.infra import Postgres, port_in_use, start_broker, start_postgres
from fairshare.services import SERVICES, migrate_all
from shared.messaging.topics import ensure_topics

RUNTIME_FILE = "runtime.json"
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


def _banner(opts: DevOptions, dsn: str, bootstrap: str, started: float, console: Console) -> None:
    p = opts.ports
    console.rule(f"[bold]Fairshare is up in {time.monotonic() - started:.1f} s")
    console.print(f"  Monitor dashboard  http://127.0.0.1:{p['monitor']}/")
    console.print(f"  Vacancies web hook http://127.0.0.1:{p['vacancies']}/webhooks/<ODS code>")
    console.print(f"  Vacancies API docs http://127.0.0.1:{p['vacancies']}/docs")
    console.print(f"  Bank API docs      http://127.0.0.1:{p['bank']}/docs")
    console.print(f"  Matching health    http://127.0.0.1:{p['matching']}/health")
    console.print(f"  Kafka bootstrap    {bootstrap}")
    console.print(f"  PostgreSQL         {dsn}")
    console.print("  Press Ctrl-C to stop everything.")
    console.rule()


@dataclass
class _System:
    """What ``run_dev`` started and must stop."""

    pg: Postgres | None = None
    broker: subprocess.Popen[bytes] | None = None
    children: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    pumps: list[asyncio.Task[None]] = field(default_factory=list)


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
    system.broker = start_broker(opts.kafka_port, log_file=opts.data_dir / "tansu.log")
    return system.pg.uri, f"127.0.0.1:{opts.kafka_port}"


async def _spawn_services(
    opts: DevOptions, system: _System, env: dict[str, str], console: Console
) -> None:
    for name in SERVICES:
        # A session of their own: a terminal's Ctrl-C reaches only us, and we stop
        # the services in order rather than all at once.
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "fairshare",
            "serve",
            name,
            env={**env, f"FAIRSHARE_{name.upper()}_PORT": str(opts.ports[name])},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        system.children[name] = proc
        assert proc.stdout is not None
        system.pumps.append(asyncio.create_task(_pump(name, proc.stdout, console)))


async def _supervise(system: _System, stop: asyncio.Event) -> int:
    """Wait for a stop signal (0) or a service's death (1)."""
    stopped = asyncio.create_task(stop.wait())
    deaths = {asyncio.create_task(p.wait()): n for n, p in system.children.items()}
    waiting: set[asyncio.Task[object]] = {stopped, *deaths}
    done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    for task in waiting:
        task.cancel()
    if stopped in done:
        return 0
    dead = [name for task, name in deaths.items() if task in done]
    print(f"Service stopped unexpectedly: {', '.join(dead)}", file=sys.stderr)
    return 1


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
        await asyncio.to_thread(system.pg.stop)


async def run_dev(opts: DevOptions) -> int:
    """Run the system until a signal or a service's death; return the exit code."""
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
        topics = await ensure_topics(bootstrap, opts.topic_prefix)
        console.print(f"Topics ready: {', '.join(topics)}")
        applied = await migrate_all(dsn)
        console.print(f"Migrations applied now: {applied or 'none (up to date)'}")
        runtime = {"database_url": dsn, "kafka_bootstrap": bootstrap, "ports": opts.ports}
        runtime_file.write_text(json.dumps({**runtime, "pid": os.getpid()}, indent=2))
        env = {
            **os.environ,
            "FAIRSHARE_DATABASE_URL": dsn,
            "FAIRSHARE_KAFKA_BOOTSTRAP": bootstrap,
            "FAIRSHARE_TOPIC_PREFIX": opts.topic_prefix,
            "FAIRSHARE_LOG_FORMAT": "console" if sys.stdout.isatty() else "json",
            "PYTHONUNBUFFERED": "1",
        }
        await _spawn_services(opts, system, env, console)
        health = asyncio.create_task(_wait_healthy(opts.ports, system.children))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({health, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not health.done():
            health.cancel()
            return 0
        health.result()
        _banner(opts, dsn, bootstrap, started, console)
        return await _supervise(system, stop)
    except DevError as exc:
        console.print(f"[red]{exc}[/]")
        return 1
    finally:
        await _stop_all(system, console)
        runtime_file.unlink(missing_ok=True)
        console.print("Stopped.")
