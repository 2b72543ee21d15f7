"""``fairshare bench sustained``: hold a posting rate against the running system and
watch every service keep up.

Against a system already running (``make run``), it registers bench organisations and
clinicians in a region of the run's own, has each clinician offer a window on each of
the coming seven days through the bank's API (so matching plans with them), then posts
single signed sessions open loop at ``--rate`` for ``--seconds`` while sampling every
service's ``GET /health`` once a second. It stops by itself at most ``DRAIN_S`` after
the schedule ends; Ctrl-C stops it early and still prints what was measured.

The arithmetic (schedule, bodies, percentiles, summaries, verdicts) is in
``fairshare.bench_sustained``; this module only sends, samples and times.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import signal
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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

from fairshare import bench_sustained as calc
from fairshare.bench_intake import DEFAULT_ORG_RATE_PER_S, assign, bench_region, schedule
from fairshare.cli import DEFAULT_DATA_DIR, DataDir, console, database_url
from fairshare.secret_keys import use_vacancies_keys
from fairshare.services import SERVICES
from shared.catalogue import REGION_PATTERN

if TYPE_CHECKING:
    from fairshare.bench import Org, Poster

_stderr = Console(stderr=True)
SAMPLE_EVERY_S = 1.0
"""How often every service's health is read."""
DRAIN_S = 30.0
"""After the schedule: the longest the run waits for answers and for the system to drain."""
SETTLE_S = 60.0
"""Before the schedule: the longest it waits for the set-up's events to be consumed."""
INTERRUPTED_WAIT_S = 5.0
"""After Ctrl-C: the longest it waits for posts already sent."""
HEALTH_TIMEOUT_S = 2.0
WINDOW_CONCURRENCY = 16
"""Availability windows offered at once while setting up."""


def service_urls(data_dir: Path, vacancies: str | None, overrides: list[str]) -> dict[str, str]:
    """Each service's base URL: ``--service-url`` first, then ``--url`` for vacancies,
    then the running system's ports (runtime.json), then the default ports."""
    ports = {name: 8001 + i for i, name in enumerate(SERVICES)}
    runtime = data_dir / "runtime.json"
    if runtime.exists():
        ports.update(json.loads(runtime.read_text()).get("ports", {}))
    urls = {name: f"http://127.0.0.1:{ports[name]}" for name in SERVICES}
    if vacancies:
        urls["vacancies"] = vacancies
    for item in overrides:
        name, sep, url = item.partition("=")
        if not sep or name not in SERVICES or not url:
            names = ", ".join(SERVICES)
            msg = f"--service-url {item!r}: expected NAME=URL, NAME one of {names}"
            raise typer.BadParameter(msg)
        urls[name] = url
    return {name: url.rstrip("/") for name, url in urls.items()}


@dataclass(frozen=True)
class SustainedOptions:
    """What to run, as given on the command line."""

    dsn: str
    urls: dict[str, str]
    rate: float
    seconds: float
    clinicians: int
    orgs: int
    region: str | None = None
    show_progress: bool = True


class Abort(Exception):  # noqa: N818 - the run stops, with a reason
    """The set-up failed; the message says how."""


@dataclass
class State:
    """Everything measured so far, so an interrupted run can still report it."""

    latencies_s: list[float] = field(default_factory=list)
    accepted: int = 0
    error_kinds: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[calc.Sample]] = field(default_factory=dict)
    latest: dict[str, calc.Sample] = field(default_factory=dict)
    latest_at: float = 0.0
    quiet_since: float | None = None
    answers: list[tuple[float, int]] = field(default_factory=list)
    started: float | None = None
    last_answer: float = 0.0
    posting_s: float | None = None
    drain_s: float | None = None
    setup: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# --- set-up ------------------------------------------------------------------------


async def _register_clinicians(dsn: str, region: str, count: int, run: str) -> list[str]:
    """Register ``count`` clinicians in ``region``; return their API sign-in tokens.

    Through ``services.bank.admin.add_clinician``, as ``fairshare clinician add`` does
    for scripts: invite codes would meet the sign-in rate limit (12 a minute an address).
    """
    from services.bank import SCHEMA  # noqa: PLC0415 - keep `fairshare --help` fast
    from services.bank.admin import add_clinician  # noqa: PLC0415
    from services.bank.domain import Clinician  # noqa: PLC0415
    from shared.catalogue import Sector  # noqa: PLC0415
    from shared.db.pool import connect  # noqa: PLC0415

    conn = await connect(dsn, SCHEMA)
    tokens = []
    try:
        async with conn.transaction():
            for i in range(count):
                clinician = Clinician(
                    uuid.uuid4(),
                    f"Bench clinician {run} {i}",
                    calc.profession_of(i),
                    Sector.GENERAL_PRACTICE,
                    region,
                )
                tokens.append(await add_clinician(conn, clinician))
    finally:
        await conn.close()
    return tokens


async def _offer_windows(
    bank_url: str, tokens: list[str], base: datetime, stop: asyncio.Event
) -> tuple[int, Counter[str]]:
    """Each clinician offers a window on each coming day through the bank's API."""
    windows = calc.windows(base)
    gate = asyncio.Semaphore(WINDOW_CONCURRENCY)
    failed: Counter[str] = Counter()
    made = 0
    limits = httpx.Limits(max_connections=WINDOW_CONCURRENCY)
    async with httpx.AsyncClient(base_url=bank_url, timeout=30, limits=limits) as client:

        async def offer(token: str, starts: datetime, ends: datetime) -> None:
            nonlocal made
            async with gate:
                if stop.is_set():
                    return
                try:
                    response = await client.post(
                        "/api/availability",
                        json={"starts_at": starts.isoformat(), "ends_at": ends.isoformat()},
                        headers={"authorization": f"Bearer {token}"},
                    )
                except httpx.HTTPError as exc:
                    failed[type(exc).__name__] += 1
                    return
                if response.status_code == 201:
                    made += 1
                else:
                    failed[str(response.status_code)] += 1

        await asyncio.gather(*(offer(t, a, b) for t in tokens for a, b in windows))
    return made, failed


async def _warm_up(poster: Poster, orgs: list[Org], run: str, base: datetime) -> None:
    """One post per organisation, not measured: proves the set-up before timing anything."""
    for i, org in enumerate(orgs):
        body = calc.delivery(f"{run}-w{i}", now=datetime.now(UTC), base=base, index=i)
        response = await poster.post(org, body)
        if response.status_code != 202:
            msg = (
                f"warm-up post for {org.ods_code} answered {response.status_code}:"
                f" {response.text[:500]}"
            )
            raise Abort(msg)


# --- health ------------------------------------------------------------------------


async def _read_health(client: httpx.AsyncClient, url: str) -> calc.Sample:
    try:
        response = await client.get(f"{url}/health")
    except httpx.HTTPError:
        return calc.Sample(None)
    try:
        body = response.json()
    except ValueError:
        body = None
    return calc.parse_health(response.status_code, body)


async def _read_all(client: httpx.AsyncClient, urls: dict[str, str]) -> dict[str, calc.Sample]:
    names = list(urls)
    found = await asyncio.gather(*(_read_health(client, urls[n]) for n in names))
    return dict(zip(names, found, strict=True))


async def _settle(
    client: httpx.AsyncClient, urls: dict[str, str], stop: asyncio.Event
) -> float | None:
    """Wait (at most SETTLE_S) until two readings in a row find nothing waiting anywhere.

    Returns the seconds it took, or None if the system did not settle in time.
    """
    loop = asyncio.get_running_loop()
    began, quiet_once = loop.time(), False
    while loop.time() - began < SETTLE_S and not stop.is_set():
        quiet = calc.all_quiet(await _read_all(client, urls))
        if quiet and quiet_once:
            return loop.time() - began
        quiet_once = quiet
        await _sleep_unless(stop, SAMPLE_EVERY_S)
    return None


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``stop`` is set meanwhile."""
    if seconds > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)


async def _sample_forever(
    client: httpx.AsyncClient,
    urls: dict[str, str],
    state: State,
    on_tick: Callable[[], None],
) -> None:
    """Read every service's health once a second, on schedule, until cancelled.

    Each reading is its own task, so a slow answer never delays the next second's.
    """
    loop = asyncio.get_running_loop()
    first = loop.time()
    tick = 0
    readings: set[asyncio.Task[None]] = set()

    async def read(at: float) -> None:
        found = await _read_all(client, urls)
        for name, sample in found.items():
            state.samples.setdefault(name, []).append(sample)
        if at >= state.latest_at:  # an answer late for its second must not hide a newer one
            state.latest, state.latest_at = found, at
            if not calc.all_quiet(found):
                state.quiet_since = None
            elif state.quiet_since is None:
                state.quiet_since = at
        on_tick()

    try:
        while True:
            at = loop.time()
            task = asyncio.create_task(read(at))
            readings.add(task)
            task.add_done_callback(readings.discard)
            tick += 1
            await asyncio.sleep(max(0.0, first + tick * SAMPLE_EVERY_S - loop.time()))
    finally:
        for task in readings:
            task.cancel()
        await asyncio.gather(*readings, return_exceptions=True)


# --- posting -----------------------------------------------------------------------


async def _post_schedule(
    poster: Poster,
    orgs: list[Org],
    this: _Run,
    opts: SustainedOptions,
    state: State,
    stop: asyncio.Event,
    advance: Callable[[], None],
) -> float:
    """Post open loop until the schedule ends or ``stop``; wait (bounded) for the answers.

    Latency runs from each post's slot to its answer. Posts still unanswered at the
    deadline are cancelled and counted as ``unanswered`` errors, with the time they had
    waited as their latency (a lower bound). Returns when posting ended (loop time).
    """
    loop = asyncio.get_running_loop()
    offsets = schedule(opts.rate, opts.seconds)
    owners = assign(len(offsets), [o.ods_code for o in orgs])
    by_code = {o.ods_code: o for o in orgs}
    in_flight: set[asyncio.Task[None]] = set()

    async def one(index: int, due: float, org: Org) -> None:
        external_id = f"{this.run_id}-s{index}"
        body = calc.delivery(external_id, now=datetime.now(UTC), base=this.base, index=index)
        try:
            response = await poster.post(org, body)
        except asyncio.CancelledError:
            state.error_kinds["unanswered"] += 1
            raise
        except Exception as exc:  # any failure to get an answer is an error
            state.error_kinds[type(exc).__name__] += 1
        else:
            if response.is_success:
                state.accepted += 1
            else:
                state.error_kinds[str(response.status_code)] += 1
        finally:
            now = loop.time()
            state.latencies_s.append(now - due)
            state.last_answer = max(state.last_answer, now)
            advance()

    started = loop.time() + 0.05
    state.started = started
    for index, (offset, code) in enumerate(zip(offsets, owners, strict=True)):
        due = started + offset
        await _sleep_unless(stop, due - loop.time())
        if stop.is_set():
            break
        task = asyncio.create_task(one(index, due, by_code[code]))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    ended = loop.time() if stop.is_set() else max(loop.time(), started + opts.seconds)
    if in_flight:
        wait = INTERRUPTED_WAIT_S if stop.is_set() else DRAIN_S
        _, late = await asyncio.wait(set(in_flight), timeout=wait)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
    # Answers a second of the schedule: answering the last post early is not a faster rate.
    state.posting_s = max(state.last_answer, ended) - started
    return ended


async def _drain(state: State, ended: float, deadline: float, stop: asyncio.Event) -> None:
    """Wait until two readings after the schedule find nothing waiting, or the deadline."""
    loop = asyncio.get_running_loop()
    while loop.time() < deadline and not stop.is_set():
        since = state.quiet_since
        if since is not None and since >= ended and state.latest_at > since:
            state.drain_s = since - ended
            return
        await _sleep_unless(stop, 0.2)


# --- counting ----------------------------------------------------------------------


async def _count(
    dsn: str, codes: list[str], region: str, state: State
) -> tuple[dict[str, int] | None, int | None, int | None]:
    """The run's sessions by status (vacancies), and matching's offers in its region."""
    from services.matching import SCHEMA as MATCHING  # noqa: PLC0415
    from services.vacancies import SCHEMA as VACANCIES  # noqa: PLC0415
    from shared.db.pool import connect  # noqa: PLC0415

    by_status: dict[str, int] | None = None
    offers: int | None = None
    offered: int | None = None
    try:
        conn = await asyncio.wait_for(connect(dsn, VACANCIES), 10)
        try:
            rows = await conn.fetch(
                "SELECT status, count(*)::int AS n FROM sessions"
                " WHERE organisation = ANY($1::text[]) GROUP BY status",
                codes,
            )
            by_status = {r["status"]: r["n"] for r in rows}
        finally:
            await conn.close()
    except Exception as exc:
        state.notes.append(f"could not count sessions: {type(exc).__name__}: {exc}")
    try:
        conn = await asyncio.wait_for(connect(dsn, MATCHING), 10)
        try:
            row = await conn.fetchrow(
                "SELECT count(*)::int AS offers, count(DISTINCT session_id)::int AS sessions"
                " FROM offers WHERE region = $1",
                region,
            )
            assert row is not None
            offers, offered = row["offers"], row["sessions"]
        finally:
            await conn.close()
    except Exception as exc:
        state.notes.append(f"could not count offers: {type(exc).__name__}: {exc}")
    return by_status, offers, offered


# --- the run -----------------------------------------------------------------------


def _status_line(state: State) -> str:
    """Current rate, p99 so far and worst lag so far, for the progress bar."""
    parts = []
    rate = calc.recent_rate(state.answers, 5.0)
    if rate is not None:
        parts.append(f"{rate:.0f} posts/s")
    p99 = calc.percentile_ms(state.latencies_s, 99)
    if p99 is not None:
        parts.append(f"p99 {p99:.0f} ms")
    worst = calc.worst_lag(state.samples)
    if worst is not None:
        parts.append(f"worst lag {worst[1]:.2f} s ({worst[0]})")
    unready = sorted(n for n, s in state.latest.items() if not s.ready)
    if unready:
        parts.append(f"[red]unready: {', '.join(unready)}[/]")
    return "  ".join(parts)


@dataclass(frozen=True)
class _Run:
    """What names this run: its organisations' prefix, region, ids and first day."""

    number: int
    region: str
    run_id: str
    base: datetime


async def run_sustained(opts: SustainedOptions) -> dict[str, Any]:
    """Set up, post at the rate while sampling health, drain, count and report."""
    from fairshare.bench import POOL_SIZE, POOLS  # noqa: PLC0415

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    main = asyncio.current_task()

    def interrupt() -> None:
        if stop.is_set() and main is not None:
            main.cancel()  # a second Ctrl-C abandons the run
            return
        stop.set()
        _stderr.print("[yellow]Stopping: the partial result follows (Ctrl-C again to abandon).")

    number = secrets.randbelow(36**5)
    this = _Run(
        number=number,
        region=opts.region or bench_region(number),
        run_id=f"sus-{uuid.uuid4().hex[:10]}",
        base=calc.day_zero(datetime.now(UTC)),
    )
    state = State()
    state.setup = {
        "urls": opts.urls,
        "region": this.region,
        "organisations": opts.orgs,
        "per_organisation_rate_per_s": round(opts.rate / opts.orgs, 2),
        "organisation_rate_limit_per_s": DEFAULT_ORG_RATE_PER_S,
        "clinicians": opts.clinicians,
        "professions": [p.value for _, p in calc.MIX],
        "roles": [r.value for r, _ in calc.MIX],
        "windows_offered": None,
        "window_errors": None,
        "warmup_posts": 0,
        "settle_s": None,
        "client_in_flight_max": POOLS * POOL_SIZE,
        "sample_every_s": SAMPLE_EVERY_S,
        "drain_limit_s": DRAIN_S,
    }
    loop.add_signal_handler(signal.SIGINT, interrupt)
    try:
        codes = await _run(opts, this, state, stop)
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    by_status, offers, offered = (None, None, None)
    if codes:
        by_status, offers, offered = await _count(opts.dsn, codes, this.region, state)
    state.setup["notes"] = state.notes
    return calc.report(
        posts=calc.summarise_posts(
            state.latencies_s,
            accepted=state.accepted,
            error_kinds=state.error_kinds,
            wall_s=state.posting_s or 0.0,
        ),
        rate_per_s=opts.rate,
        seconds=opts.seconds,
        posting_s=state.posting_s,
        services={
            name: calc.summarise_service(state.samples.get(name, []), SAMPLE_EVERY_S)
            for name in opts.urls
        },
        sessions_by_status=by_status,
        offers_made=offers,
        sessions_offered=offered,
        drain_s=state.drain_s,
        interrupted=stop.is_set(),
        targets=calc.Targets(),
        setup=state.setup,
    )


async def _run(opts: SustainedOptions, this: _Run, state: State, stop: asyncio.Event) -> list[str]:
    """Set up and measure, stopping early on ``stop``; return the organisations' codes."""
    from fairshare.bench import Poster, _register  # noqa: PLC0415

    def say(text: str) -> None:
        if opts.show_progress:
            _stderr.print(text)

    async with httpx.AsyncClient(timeout=HEALTH_TIMEOUT_S) as health:
        found = await _read_all(health, opts.urls)
        if missing := [n for n, s in found.items() if s.status is None]:
            where = ", ".join(f"{n} at {opts.urls[n]}" for n in missing)
            msg = f"no answer from {where}: is the system running (`make run`)?"
            raise Abort(msg)
        say(
            f"Registering {opts.orgs} organisations and {opts.clinicians} clinicians"
            f" in {this.region}"
        )
        orgs = await _register(opts.dsn, this.number, opts.orgs, this.region)
        codes = [o.ods_code for o in orgs]
        state.setup["organisation_codes"] = codes
        tokens = await _register_clinicians(opts.dsn, this.region, opts.clinicians, this.run_id)
        say(f"Offering {len(tokens) * calc.DAYS} availability windows through the bank's API")
        made, failed = await _offer_windows(opts.urls["bank"], tokens, this.base, stop)
        state.setup["windows_offered"], state.setup["window_errors"] = made, dict(failed)
        if tokens and not made and not stop.is_set():
            msg = f"no availability window was accepted by the bank: {dict(failed)}"
            raise Abort(msg)
        async with Poster(opts.urls["vacancies"]) as poster:
            if not stop.is_set():
                await _warm_up(poster, orgs, this.run_id, this.base)
                state.setup["warmup_posts"] = len(orgs)
                say("Waiting for the system to consume the set-up's events")
                settled = await _settle(health, opts.urls, stop)
                state.setup["settle_s"] = None if settled is None else round(settled, 2)
                if settled is None and not stop.is_set():
                    state.notes.append(f"the set-up had not drained after {SETTLE_S:g} s")
            if not stop.is_set():
                await _measure(poster, orgs, this, opts, state, stop, health)
    return codes


async def _measure(
    poster: Poster,
    orgs: list[Org],
    this: _Run,
    opts: SustainedOptions,
    state: State,
    stop: asyncio.Event,
    health: httpx.AsyncClient,
) -> None:
    """The measured phase: post on schedule, sample health every second, then drain."""
    loop = asyncio.get_running_loop()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
    )
    total = len(schedule(opts.rate, opts.seconds))
    with Progress(
        *columns,
        console=_stderr,
        refresh_per_second=2,
        transient=True,
        disable=not opts.show_progress,
    ) as progress:
        task: TaskID = progress.add_task(f"posts at {opts.rate:g}/s", total=total, status="")

        def tick() -> None:
            state.answers.append((loop.time(), len(state.latencies_s)))
            del state.answers[:-30]
            if opts.show_progress:
                progress.update(task, status=_status_line(state))

        sampler = asyncio.create_task(_sample_forever(health, opts.urls, state, tick))
        try:
            ended = await _post_schedule(
                poster, orgs, this, opts, state, stop, lambda: progress.advance(task)
            )
            if not stop.is_set():
                progress.update(task, description="draining")
                await _drain(state, ended, ended + DRAIN_S, stop)
                if state.drain_s is None and not stop.is_set():
                    state.notes.append(f"the system had not drained {DRAIN_S:g} s after posting")
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler


# --- the command -------------------------------------------------------------------


def _table(result: dict[str, Any]) -> Table:
    def num(value: float | None, unit: str = "") -> str:
        return "-" if value is None else f"{value:g}{unit}"

    met, targets = result["met"], result["targets"]
    table = Table("figure", "value", "target", "met", title="Sustained load")

    def yes(value: bool | None) -> str:
        return "-" if value is None else ("yes" if value else "[red]no[/]")

    table.add_row(
        "posts / accepted / errors",
        f"{result['posts']} / {result['accepted']} / {result['errors']}",
        "",
        "",
    )
    table.add_row(
        "rate achieved",
        num(result["rate_achieved_per_s"], "/s"),
        f"≥ {calc.RATE_KEPT * targets['rate_per_s']:g}/s for {targets['seconds']:g} s",
        yes(met["at_load"]),
    )
    table.add_row(
        "post p50 / p99 / max",
        f"{num(result['p50_ms'])} / {num(result['p99_ms'])} / {num(result['max_ms'])} ms",
        f"p99 < {targets['intake_p99_ms']:g} ms",
        yes(met["intake_p99_ms"]),
    )
    for name, s in result["services"].items():
        table.add_row(
            f"{name}: lag max / p99",
            f"{num(s['max_lag_s'])} / {num(s['p99_lag_s'])} s"
            f"  (waiting ≤ {num(s['max_total_lag'])}, outbox ≤ {num(s['max_outbox_pending'])},"
            f" unready {num(s['unready_s'])} s)",
            f"< {targets['lag_s']:g} s",
            "",
        )
    table.add_row("every service's lag", "", f"< {targets['lag_s']:g} s", yes(met["lag_s"]))
    table.add_row(
        "open sessions / offers made",
        f"{num(result['open_sessions'])} / {num(result['offers_made'])}",
        f"≥ {targets['open_sessions']} open",
        "",
    )
    table.add_row("drain", num(result["drain_s"], " s"), "", "")
    table.add_row("the issue's target", "", "all of the above", yes(met["all"]))
    return table


def sustained(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object only.")] = False,
    rate: Annotated[float, typer.Option(min=0, help="Single posts a second (open loop).")] = (
        calc.TARGET_RATE_PER_S
    ),
    seconds: Annotated[float, typer.Option(min=0, help="How long to post.")] = (
        calc.TARGET_SECONDS
    ),
    clinicians: Annotated[
        int, typer.Option(min=1, help="Bench clinicians, each offering 7 days.")
    ] = 300,
    orgs: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=calc.MAX_ORGS,
            help="Organisations to spread posts over (default: enough for half the"
            " 50/s per-organisation limit each).",
        ),
    ] = None,
    region: Annotated[
        str | None,
        typer.Option(help="Region of the bench organisations and clinicians (default: new)."),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(help="Base URL of the vacancies service (default: the running system's)."),
    ] = None,
    service_url: Annotated[
        list[str] | None,
        typer.Option(help="NAME=URL: base URL of one service (repeatable)."),
    ] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Post at a sustained rate while sampling every service's lag; print the verdict.

    The issue's target: at 100 posts/s for 10 minutes with thousands of open sessions,
    every service's lag stays under 2 s and intake p99 under 100 ms.
    """
    if region is not None and not re.match(REGION_PATTERN, region):
        _stderr.print(f"[red]Region {region!r} is not valid[/] (expected {REGION_PATTERN}).")
        raise typer.Exit(2)
    try:
        n_orgs = orgs or calc.orgs_needed(rate)
    except ValueError as exc:
        _stderr.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    if rate / n_orgs > DEFAULT_ORG_RATE_PER_S:
        _stderr.print(
            f"[yellow]{rate / n_orgs:g} posts/s per organisation is over the"
            f" {DEFAULT_ORG_RATE_PER_S:g}/s limit: use more --orgs.[/]"
        )
    opts = SustainedOptions(
        dsn=database_url(data_dir),
        urls=service_urls(data_dir, url, service_url or []),
        rate=rate,
        seconds=seconds,
        clinicians=clinicians,
        orgs=n_orgs,
        region=region,
        show_progress=not as_json,
    )
    use_vacancies_keys(data_dir)  # it registers organisations
    try:
        result = asyncio.run(run_sustained(opts))
    except Abort as exc:
        _stderr.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    except httpx.ConnectError as exc:
        _stderr.print(f"[red]Could not reach the system:[/] {exc}")
        raise typer.Exit(2) from None
    except (asyncio.CancelledError, KeyboardInterrupt):
        _stderr.print("[red]Abandoned: nothing printed.[/]")
        raise typer.Exit(130) from None
    if as_json:
        print(json.dumps(result, indent=2))
        return
    console.print(_table(result))
    for note in result["setup"]["notes"]:
        console.print(note, style="yellow")
