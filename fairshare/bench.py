"""``fairshare bench``: measure a running system from outside, as its callers see it.

``fairshare bench intake`` registers organisations of its own (region BEN) in the
running system's vacancies schema, then posts signed sessions to the web hook: single
posts on an open-loop schedule, then batches, and prints throughput and latency.
``fairshare bench sustained`` (``fairshare.bench_load``) holds a posting rate for minutes
while sampling every service's lag.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from standardwebhooks import Webhook

from fairshare import bench_intake as calc
from fairshare import bench_load
from fairshare.cli import DEFAULT_DATA_DIR, DataDir, console, database_url
from fairshare.secret_keys import use_vacancies_keys
from shared.catalogue import REGION_PATTERN

bench_app = typer.Typer(help="Measure a running system (`fairshare dev`) from outside.")
_stderr = Console(stderr=True)
POOLS, POOL_SIZE = 8, 16
"""Connection pools the posts go out over, and requests in flight on each at most."""


@dataclass
class Org:
    """A benchmark organisation and its signer."""

    ods_code: str
    signer: Webhook


@dataclass
class Phase:
    """What one phase measured."""

    latencies_s: list[float] = field(default_factory=list)
    errors: int = 0
    sessions: int = 0
    rejected_sessions: int = 0
    error_kinds: Counter[str] = field(default_factory=Counter)
    started: float = 0.0
    finished: float = 0.0

    def fail(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[kind] += 1

    def summary(self) -> calc.Summary:
        return calc.summarise(
            self.latencies_s,
            errors=self.errors,
            requests=len(self.latencies_s),
            sessions=self.sessions,
            wall_s=self.finished - self.started,
        )


def _vacancies_url(data_dir: Path) -> str:
    runtime = data_dir / "runtime.json"
    if runtime.exists():
        ports = json.loads(runtime.read_text()).get("ports", {})
        if "vacancies" in ports:
            return f"http://127.0.0.1:{ports['vacancies']}"
    return "http://127.0.0.1:8001"


async def _register(dsn: str, run: int, count: int, region: str) -> list[Org]:
    """Register ``count`` fresh organisations in ``region``; return them with signers."""
    from services.vacancies import SCHEMA  # noqa: PLC0415 - keep `fairshare --help` fast
    from services.vacancies.admin import add_organisation  # noqa: PLC0415
    from services.vacancies.domain import Organisation  # noqa: PLC0415
    from shared.catalogue import Sector  # noqa: PLC0415
    from shared.db.pool import connect  # noqa: PLC0415

    codes = calc.bench_ods_codes(run, count)
    conn = await connect(dsn, SCHEMA)
    orgs = []
    try:
        async with conn.transaction():
            for i, code in enumerate(codes):
                org = Organisation(
                    code,
                    f"Bench Surgery {i}",
                    Sector.GENERAL_PRACTICE,
                    region,
                    53.48,
                    -2.24,
                    active=True,
                )
                secret, _ = await add_organisation(conn, org)
                orgs.append(Org(code, Webhook(secret)))
    finally:
        await conn.close()
    return orgs


async def _post(client: httpx.AsyncClient, org: Org, body: dict[str, Any]) -> httpx.Response:
    """Sign ``body`` now, as a rota system would, and POST it to the organisation's hook."""
    text = json.dumps(body, separators=(",", ":"))
    msg_id = f"msg_{uuid.uuid4().hex}"
    now = datetime.now(UTC)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": org.signer.sign(msg_id, now, text),
        "content-type": "application/json",
    }
    return await client.post(f"/webhooks/{org.ods_code}", content=text.encode(), headers=headers)


@dataclass
class _Pool:
    client: httpx.AsyncClient
    gate: asyncio.Semaphore


class Poster:
    """Sends deliveries over several small connection pools, round-robin.

    httpx's pool looks at every connection and every waiting request whenever one
    changes, so a single large pool with a queue behind it (a server falling behind an
    open-loop schedule) costs the client more CPU than the server on a 2-core machine.
    Small pools, each with a gate that queues cheaply in front of it, keep the client's
    cost per post flat. Time spent at a gate still counts: latency runs from the slot.
    """

    def __init__(self, url: str, *, pools: int = POOLS, size: int = POOL_SIZE) -> None:
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        self._pools = [
            _Pool(
                httpx.AsyncClient(base_url=url, limits=limits, timeout=60), asyncio.Semaphore(size)
            )
            for _ in range(pools)
        ]
        self._next = 0

    async def __aenter__(self) -> Poster:
        return self

    async def __aexit__(self, *_: object) -> None:
        for pool in self._pools:
            await pool.client.aclose()

    async def post(self, org: Org, body: dict[str, Any]) -> httpx.Response:
        """Sign and send ``body`` on the next pool, once it has room."""
        pool = self._pools[self._next % len(self._pools)]
        self._next += 1
        async with pool.gate:
            return await _post(pool.client, org, body)


def _kind(exc: BaseException) -> str:
    return type(exc).__name__


async def _warm_up(poster: Poster, orgs: list[Org], run: str) -> None:
    """One post per organisation, not measured: proves the set-up before timing anything."""
    for i, org in enumerate(orgs):
        now = datetime.now(UTC)
        response = await poster.post(org, calc.single_delivery(f"{run}-w{i}", now=now, index=i))
        if response.status_code != 202:
            _stderr.print(
                f"[red]Warm-up post for {org.ods_code} answered {response.status_code}:[/]"
                f" {response.text[:500]}"
            )
            raise typer.Exit(1)


async def _singles(
    poster: Poster,
    orgs: list[Org],
    run: str,
    rate: float,
    seconds: float,
    progress: Progress,
    task: TaskID,
) -> Phase:
    """Open loop: each post is due at its slot; latency runs from the slot to the answer."""
    loop = asyncio.get_running_loop()
    offsets = calc.schedule(rate, seconds)
    owners = calc.assign(len(offsets), [o.ods_code for o in orgs])
    by_code = {o.ods_code: o for o in orgs}
    phase = Phase()

    async def one(index: int, due: float, org: Org) -> None:
        now = datetime.now(UTC)
        body = calc.single_delivery(f"{run}-s{index}", now=now, index=index)
        try:
            response = await poster.post(org, body)
        except Exception as exc:  # any failure to get an answer is an error
            phase.fail(_kind(exc))
        else:
            if response.is_success:
                phase.sessions += 1
            else:
                phase.fail(str(response.status_code))
        finally:
            phase.latencies_s.append(loop.time() - due)
            phase.finished = max(phase.finished, loop.time())
            progress.advance(task)

    phase.started = loop.time() + 0.05
    tasks = []
    for index, (offset, code) in enumerate(zip(offsets, owners, strict=True)):
        due = phase.started + offset
        if (wait := due - loop.time()) > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(one(index, due, by_code[code])))
    await asyncio.gather(*tasks)
    # Sessions a second of the schedule: answering the last post early is not a faster rate.
    phase.finished = max(phase.finished, phase.started + seconds)
    return phase


async def _batches(
    poster: Poster,
    orgs: list[Org],
    run: str,
    count: int,
    size: int,
    concurrency: int,
    progress: Progress,
    task: TaskID,
) -> Phase:
    """``count`` batches of ``size``, ``concurrency`` in flight; sessions/s over wall time."""
    loop = asyncio.get_running_loop()
    owners = calc.assign(count, [o.ods_code for o in orgs])
    by_code = {o.ods_code: o for o in orgs}
    pending = iter(enumerate(owners))
    phase = Phase()

    async def worker() -> None:
        for number, code in pending:
            ids = [f"{run}-b{number}-{i}" for i in range(size)]
            sent = loop.time()
            body = calc.batch_delivery(ids, now=datetime.now(UTC), first=number * size)
            try:
                response = await poster.post(by_code[code], body)
                answer = response.json() if response.status_code == 200 else None
            except Exception as exc:  # any failure to get an answer is an error
                phase.fail(_kind(exc))
            else:
                if answer is not None:
                    phase.sessions += int(answer["accepted"])
                    phase.rejected_sessions += int(answer["rejected"])
                else:
                    phase.fail(str(response.status_code))
            finally:
                phase.latencies_s.append(loop.time() - sent)
                phase.finished = max(phase.finished, loop.time())
                progress.advance(task)

    phase.started = loop.time()
    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, count)))))
    return phase


@dataclass(frozen=True)
class Options:
    """What to run, as given on the command line."""

    dsn: str
    url: str
    single_rate: float
    single_seconds: float
    batches: int
    batch_size: int
    orgs: int
    concurrency: int
    region: str | None = None


async def run_intake(opts: Options) -> dict[str, Any]:
    """Register organisations, run both phases and return the report."""
    number = secrets.randbelow(36**5)
    region = opts.region or calc.bench_region(number)
    orgs = await _register(opts.dsn, number, opts.orgs, region)
    run = f"bench-{uuid.uuid4().hex[:10]}"
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    async with Poster(opts.url) as poster:
        await _warm_up(poster, orgs, run)
        with Progress(*columns, console=_stderr, refresh_per_second=4, transient=True) as progress:
            n_single = len(calc.schedule(opts.single_rate, opts.single_seconds))
            s_task = progress.add_task(f"single posts at {opts.single_rate:g}/s", total=n_single)
            b_task = progress.add_task(f"batches of {opts.batch_size}", total=opts.batches)
            single = await _singles(
                poster, orgs, run, opts.single_rate, opts.single_seconds, progress, s_task
            )
            batch = await _batches(
                poster,
                orgs,
                run,
                opts.batches,
                opts.batch_size,
                opts.concurrency,
                progress,
                b_task,
            )
    setup = {
        "url": opts.url,
        "region": region,
        "organisations": [o.ods_code for o in orgs],
        "warmup_requests": len(orgs),
        "client_in_flight_max": POOLS * POOL_SIZE,
        "batch_concurrency": opts.concurrency,
        "note": calc.rate_limit_note(opts.single_rate, opts.orgs),
    }
    out = calc.report(
        single=single.summary(),
        single_rate=opts.single_rate,
        batch=batch.summary(),
        batch_size=opts.batch_size,
        rejected_sessions=batch.rejected_sessions,
        targets=calc.Targets(),
        setup=setup,
    )
    out["single"]["error_kinds"] = dict(single.error_kinds)
    out["batch"]["error_kinds"] = dict(batch.error_kinds)
    return out


def _table(result: dict[str, Any]) -> Table:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    targets, met = result["targets"], result["met"]
    table = Table("phase", "sessions/s", "p50 ms", "p99 ms", "errors", "requests", "target", "met")
    s, b = result["single"], result["batch"]
    table.add_row(
        f"single at {s['target_rate']:g}/s",
        f"{s['sessions_per_s']:.1f}",
        ms(s["p50_ms"]),
        ms(s["p99_ms"]),
        str(s["errors"]),
        str(s["requests"]),
        f"p99 < {targets['single_p99_ms']:g} ms at {targets['single_rate_per_s']:g}/s",
        "yes" if met["single"] else "no",
    )
    table.add_row(
        f"batches of {b['batch_size']}",
        f"{b['sessions_per_s']:.1f}",
        ms(b["p50_ms"]),
        ms(b["p99_ms"]),
        str(b["errors"] + b["rejected_sessions"]),
        str(b["requests"]),
        f"≥ {targets['batch_sessions_per_s']:g} sessions/s",
        "yes" if met["batch"] else "no",
    )
    return table


@bench_app.command("intake")
def intake(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    single_rate: Annotated[
        float, typer.Option(min=0, help="Single posts a second (open loop).")
    ] = 200,
    single_seconds: Annotated[float, typer.Option(min=0, help="How long to post singly.")] = 10,
    batches: Annotated[int, typer.Option(min=0, help="How many batch deliveries.")] = 20,
    batch_size: Annotated[int, typer.Option(min=1, max=500, help="Sessions per batch.")] = 500,
    orgs: Annotated[
        int,
        typer.Option(
            min=1,
            max=1296,
            help="Organisations to spread posts over (each is rate limited, 50/s by default).",
        ),
    ] = 8,
    concurrency: Annotated[int, typer.Option(min=1, help="Batches in flight at once.")] = 4,
    region: Annotated[
        str | None,
        typer.Option(help="Region of the bench organisations (default: a new B.. one per run)."),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(help="Base URL of the vacancies service (default: the running system's)."),
    ] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Post signed sessions to the running system; print sessions/s, p50, p99 and errors."""
    if region is not None and not re.match(REGION_PATTERN, region):
        _stderr.print(f"[red]Region {region!r} is not valid[/] (expected {REGION_PATTERN}).")
        raise typer.Exit(2)
    opts = Options(
        dsn=database_url(data_dir),
        url=(url or _vacancies_url(data_dir)).rstrip("/"),
        single_rate=single_rate,
        single_seconds=single_seconds,
        batches=batches,
        batch_size=batch_size,
        orgs=orgs,
        concurrency=concurrency,
        region=region,
    )
    if single_rate / orgs > calc.DEFAULT_ORG_RATE_PER_S:
        _stderr.print(f"[yellow]{calc.rate_limit_note(single_rate, orgs)}[/]")
    use_vacancies_keys(data_dir)  # it registers organisations
    try:
        result = asyncio.run(run_intake(opts))
    except httpx.ConnectError as exc:
        _stderr.print(f"[red]Could not reach {opts.url}:[/] {exc}")
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps(result, indent=2))
        return
    console.print(_table(result))
    console.print(result["setup"]["note"], style="dim")


class MatchingFamily(StrEnum):
    """Instance families of `fairshare bench matching`."""

    DEFAULT = "default"
    TIGHT = "tight"


# Above this HiGHS's model (built row by row) outgrows time and memory (10,000 sessions:
# 1,369 s and 15 GB); the LP bound serves alone.
HIGHS_MAX_SESSIONS = 2_000


@bench_app.command("matching")
def matching(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    family: Annotated[
        MatchingFamily,
        typer.Option(help="default: today's week; tight: a fortnight where every rule binds."),
    ] = MatchingFamily.DEFAULT,
    sessions: Annotated[int, typer.Option(min=1, help="Sessions in the generated week.")] = 10_000,
    clinicians: Annotated[int, typer.Option(min=1, help="Clinicians in the bank.")] = 5_000,
    seed: Annotated[int, typer.Option(help="Seed of the generated week.")] = 1,
    highs_time_limit: Annotated[
        float, typer.Option(min=1, help="Seconds HiGHS may take for the optimum.")
    ] = 120,
    incremental: Annotated[
        int, typer.Option(min=0, help="New sessions matched one at a time, for the p99.")
    ] = 200,
    optimum: Annotated[
        bool | None,
        typer.Option(
            "--optimum/--no-optimum",
            help="Ask HiGHS for the optimum (default: up to 2,000 sessions; above, the "
            "LP bound alone, as HiGHS's model outgrows the machine).",
        ),
    ] = None,
    online: Annotated[
        bool, typer.Option("--online/--no-online", help="Replay the week one post at a time.")
    ] = True,
    late_share: Annotated[
        float,
        typer.Option(min=0, max=1, help="Share of sessions posted within 72 hours of their start."),
    ] = 0.2,
) -> None:
    """Engine vs first come first served vs the optimum, offline and online.

    Runs in this process; needs no running system.
    """
    from fairshare.bench_matching import run  # noqa: PLC0415 - numpy, OR-Tools, HiGHS

    result = run(
        family=family.value,
        sessions=sessions,
        clinicians=clinicians,
        seed=seed,
        highs_time_limit_s=highs_time_limit,
        incremental=incremental,
        console=_stderr,
        optimum=sessions <= HIGHS_MAX_SESSIONS if optimum is None else optimum,
        online=online,
        late_share=late_share,
    )
    if as_json:
        print(json.dumps(result, indent=2))
        return
    table = Table("figure", "value", title="Matching: one generated week")
    for key, value in result.items():
        table.add_row(key, json.dumps(value))
    console.print(table)


bench_app.command("sustained")(bench_load.sustained)
