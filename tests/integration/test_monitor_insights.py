"""Time to fill, trends, custom periods, the at-risk list, the sector flow, the live tail,
the exports and the live stream, over the real database: events fed through the shared
consumer, as the services publish them, read back through the monitor's routes."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from services.monitor import SCHEMA, http, insights, viewers
from services.monitor.live import LiveHub
from services.monitor.signin import COOKIE
from services.monitor.summary import Period, period_bounds
from shared.http.problems import install_problem_handlers
from shared.messaging.consumer import EventConsumer
from tests.conftest import Infra
from tests.integration.helpers import served
from tests.integration.test_monitor_summary import FILL, Session, consumer, feed, move, pool

pytestmark = pytest.mark.integration
__all__ = ["consumer", "pool"]  # the summary tests' fixtures, used here too

MIGRATIONS = Path(http.__file__).with_name("migrations")
GP, PHARMACY, DENTAL = "general_practice", "community_pharmacy", "dentistry"


def _app(pool: asyncpg.Pool) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(http.router)
    app.include_router(insights.router)
    app.state.runtime = SimpleNamespace(pool=pool)
    return app


async def _token(pool: asyncpg.Pool, *, region: str | None) -> str:
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        viewer = await viewers.add_viewer(
            conn, name="Analyst", region=region, national=region is None
        )
        code = await viewers.invite(conn, viewer.id, now=now)
    signed = await viewers.sign_in(pool, code, now=now, session_ttl=timedelta(hours=1))
    assert signed is not None
    return signed[1]


@pytest.fixture
async def client(pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    """Every monitor route on a bare app (a pool, no Kafka), signed in as a national
    viewer (test_monitor_access.py checks who else each route refuses)."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=_app(pool)),
        base_url="http://monitor",
        cookies={COOKIE: await _token(pool, region=None)},
    ) as c:
        yield c


async def _one(client: httpx.AsyncClient, path: str, **params: Any) -> dict[str, Any]:
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    (answer,) = response.json()
    return dict(answer)


def _nine() -> datetime:
    """09:00 today in England."""
    return period_bounds(Period.TODAY, datetime.now(UTC))[0] + timedelta(hours=9)


async def test_time_to_fill_counts_the_fills_that_stand_and_trends_follow_each_day(
    consumer: EventConsumer, client: httpx.AsyncClient, region: str
) -> None:
    """Posted at T0, filled 30 and 90 minutes later (GP); a pharmacy session filled at
    10 minutes, given up, and filled again (another offer) at 240: it counts 240; one
    filled at 5 minutes and then cancelled counts nothing; an open one nothing. Today:
    median 90, 90th percentile 210 (interpolated: 90 + 0.8 * 150). Yesterday one more
    at 60: over 7 days the median is 75. The trend has each of the 7 days, today's and
    yesterday's figures per sector and in total, zeros elsewhere."""
    start, t0 = _nine(), datetime.now(UTC) - timedelta(days=3)

    async def filled(sector: str, starts: datetime, minutes: float) -> Session:
        s = Session(region, sector, starts, 4)
        await feed(consumer, s, "session.posted", at=t0)
        await feed(consumer, s, "session.offered", at=t0 + timedelta(minutes=minutes / 2))
        await feed(consumer, s, "session.filled", at=t0 + timedelta(minutes=minutes))
        return s

    await filled(GP, start, 30)
    await filled(GP, start, 90)
    refilled = await filled(PHARMACY, start, 10)
    await feed(consumer, refilled, "booking.cancelled", at=t0 + timedelta(minutes=20), late=False)
    refilled.offer_id, refilled.clinician_id = uuid.uuid4(), uuid.uuid4()
    await feed(consumer, refilled, "session.offered", at=t0 + timedelta(minutes=200))
    await feed(consumer, refilled, "session.filled", at=t0 + timedelta(minutes=240))
    cancelled = await filled(PHARMACY, start, 5)
    await feed(consumer, cancelled, "session.cancelled", at=t0 + timedelta(minutes=50))
    await feed(consumer, Session(region, GP, start, 3), "session.posted", at=t0)
    await filled(GP, start - timedelta(days=1), 60)

    today = await _one(client, "/api/summary", region=region, period="today")
    assert (today["posted"], today["filled"], today["fill_times_counted"]) == (5, 3, 3)
    assert today["fill_minutes_median"] == pytest.approx(90)
    assert today["fill_minutes_p90"] == pytest.approx(210)
    by_sector = {s["sector"]: s for s in today["sectors"]}
    assert by_sector[GP]["fill_minutes_median"] == pytest.approx(60)
    assert by_sector[PHARMACY]["fill_minutes_median"] == pytest.approx(240)
    assert by_sector[DENTAL]["fill_minutes_median"] is None
    week = await _one(client, "/api/summary", region=region, period="7d")
    assert week["fill_minutes_median"] == pytest.approx(75)
    assert week["fill_minutes_p90"] == pytest.approx(195)  # 90 + 0.7 * 150

    trends = await _one(client, "/api/trends", region=region, period="7d", width=600)
    days = trends["series"]["all"]
    assert len(days) == 7
    assert [d["day"] for d in days][-2:] == [
        (start - timedelta(days=1)).astimezone(UTC).date().isoformat(),
        start.date().isoformat(),
    ]
    assert (days[-1]["posted"], days[-1]["filled"], days[-1]["cancelled"]) == (5, 3, 1)
    assert days[-1]["fill_rate"] == pytest.approx(3 / 4)
    assert days[-1]["median_minutes"] == pytest.approx(90)
    assert (days[-2]["posted"], days[-2]["median_minutes"]) == (1, pytest.approx(60))
    assert all(d["posted"] == 0 and d["median_minutes"] is None for d in days[:-2])
    gp = trends["series"][GP][-1]
    assert (gp["posted"], gp["filled"], gp["median_minutes"]) == (3, 2, pytest.approx(60))
    assert trends["series"][DENTAL][-1]["posted"] == 0
    svg = trends["svg"]
    assert svg.startswith("<svg")
    assert 'role="img"' in svg
    assert 'width="600"' in svg
    assert "All sectors" in svg
    assert "6 sessions posted and 4 filled" in svg
    one = await _one(client, "/api/trends", region=region, period="today", sector=PHARMACY)
    assert one["sector"] == PHARMACY
    assert "Community pharmacy" in one["svg"]


async def test_a_custom_period_is_any_run_of_days_and_a_wrong_one_names_its_field(
    consumer: EventConsumer, client: httpx.AsyncClient, region: str
) -> None:
    """from/to (period=custom, or dates alone) count the sessions starting on those days,
    both included, in the summary, the trends and the exports. Missing, reversed, too
    long, impossible or with another period: 422 problem+json naming each field."""
    start = _nine()
    for days_ago in (0, 1, 5):
        await feed(consumer, Session(region, GP, start - timedelta(days=days_ago), 2), *FILL)
    first, last = (start - timedelta(days=1)).date(), start.date()
    two = await _one(
        client, "/api/summary", region=region, period="custom", **{"from": first, "to": last}
    )
    assert (two["period"], two["first_day"], two["last_day"]) == (
        "custom",
        first.isoformat(),
        last.isoformat(),
    )
    assert two["posted"] == 2
    alone = await _one(client, "/api/summary", region=region, **{"from": first, "to": last})
    assert (alone["period"], alone["posted"]) == ("custom", 2)
    trend = await _one(client, "/api/trends", region=region, **{"from": first, "to": last})
    assert [d["posted"] for d in trend["series"]["all"]] == [1, 1]

    async def refused(**params: Any) -> list[str]:
        response = await client.get("/api/summary", params={"region": region, **params})
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        return [f"{e['field']}: {e['message']}" for e in response.json()["errors"]]

    missing = await refused(period="custom")
    assert [m.split(":")[0] for m in missing] == ["query.from", "query.to"]
    assert "required" in missing[0]
    reversed_ = await refused(**{"from": last, "to": first})
    assert reversed_ == [f"query.to: must be on or after from ({last.isoformat()})"]
    too_long = await refused(**{"from": date(2024, 1, 1), "to": date(2025, 1, 1)})
    assert too_long == ["query.to: at most 366 days from from, both included"]
    leap_year = await client.get(
        "/api/summary", params={"region": region, "from": "2024-01-01", "to": "2024-12-31"}
    )
    assert leap_year.status_code == 200  # 366 days, both ends included
    both = await refused(period="7d", **{"from": first})
    assert both == ["query.from: only with period=custom, not 7d"]
    bad_date = await refused(**{"from": "2025-02-30", "to": "2025-03-01"})
    assert [m.split(":")[0] for m in bad_date] == ["query.from"]
    exported = await client.get(
        "/api/export/sessions", params={"region": region, "period": "custom"}
    )
    assert exported.status_code == 422


async def test_sessions_at_risk_say_why_matching_has_not_filled_them(
    consumer: EventConsumer, client: httpx.AsyncClient, region: str
) -> None:
    """Open sessions starting within 48 hours, soonest first, each with where it stands:
    matching's latest reason (and its words), an offer since, or nothing yet; counted
    within 24 and 48 hours and by reason. Filled, cancelled, and later sessions are not
    listed; a reason older than the last offer no longer stands."""
    now = datetime.now(UTC)
    held = Session(region, GP, now + timedelta(hours=3), 4)
    await feed(consumer, held, "session.posted", at=now - timedelta(hours=5))
    await feed(
        consumer,
        held,
        "session.unmatched",
        at=now - timedelta(hours=4),
        why="held_by_drain_guard",
        detail="2 eligible clinicians from other sectors were held back by the drain guard.",
    )
    offered = Session(region, DENTAL, now + timedelta(hours=30), 3)
    await feed(consumer, offered, "session.posted", at=now - timedelta(hours=3))
    await feed(consumer, offered, "session.unmatched", why="no_eligible_clinician",
               at=now - timedelta(hours=2))  # fmt: skip
    await feed(consumer, offered, "session.offered", at=now - timedelta(hours=1))
    waiting = Session(region, PHARMACY, now + timedelta(hours=31), 2)
    await feed(consumer, waiting, "session.posted")
    again = Session(region, GP, now + timedelta(hours=6), 4)
    await feed(consumer, again, "session.posted", at=now - timedelta(hours=9))
    await feed(consumer, again, "session.offered", at=now - timedelta(hours=8))
    await feed(consumer, again, "session.unmatched", why="declined_by_all",
               at=now - timedelta(hours=7))  # fmt: skip
    await feed(consumer, Session(region, GP, now + timedelta(hours=5), 4), *FILL)
    gone = Session(region, GP, now + timedelta(hours=2), 4)
    await feed(consumer, gone, "session.posted", "session.cancelled")
    await feed(consumer, Session(region, GP, now + timedelta(hours=60), 4), "session.posted")

    risk = await _one(client, "/api/at-risk", region=region)
    assert (risk["within_24h"], risk["within_48h"]) == (2, 4)
    listed = [(a["session_id"], a["status"], a["why"], a["within_24h"]) for a in risk["sessions"]]
    assert listed == [
        (str(held.session_id), "no_offer", "held_by_drain_guard", True),
        (str(again.session_id), "no_offer", "declined_by_all", True),
        (str(offered.session_id), "offered", None, False),
        (str(waiting.session_id), "waiting", None, False),
    ]
    first = risk["sessions"][0]
    assert first["label"] == "Held by the drain guard"
    assert first["detail"].startswith("2 eligible clinicians from other sectors")
    assert (first["site_name"], first["organisation"], first["hours"]) == (
        "Hilltop Surgery",
        "A81001",
        4,
    )
    reasons = {r["key"]: r["sessions"] for r in risk["reasons"]}
    assert reasons == {
        "held_by_drain_guard": 1,
        "declined_by_all": 1,
        "offered": 1,
        "waiting": 1,
    }


async def test_the_flow_draws_hours_moved_between_sectors_and_the_tail_filters(
    consumer: EventConsumer, client: httpx.AsyncClient, region: str
) -> None:
    """The Sankey of the last 28 days: a band per pair with its hours, each losing
    sector's net outflow and cap; nothing moved, a sentence instead. The live tail lists
    moves and lifecycle events, filtered by kind and by sector (a move matches either
    of its sectors); an unknown kind is a 422 naming the field."""
    for moved in (
        move(region, PHARMACY, GP, 4),
        move(region, PHARMACY, GP, 7.5),
        move(region, PHARMACY, DENTAL, 3.5),
        move(region, GP, PHARMACY, 2),
    ):
        assert await consumer.handle(*moved)
    await feed(consumer, Session(region, DENTAL, _nine(), 2), "session.posted")

    flow = await _one(client, "/api/flow", region=region, width=700)
    svg = flow["svg"]
    assert flow["moved_hours"] == pytest.approx(17)
    assert "Community pharmacy to General practice: 11.5 h" in svg
    assert "Community pharmacy to Dentistry: 3.5 h" in svg
    assert "15.0 h out · net 13.0 h out · cap 10%" in svg  # community pharmacy
    assert "2.0 h out · net 9.5 h in · cap 10%" in svg  # general practice
    assert all(f"{h} h in</text>" in svg for h in ("11.5", "3.5", "2.0"))
    assert len(re.findall(r"<path ", svg)) == 3  # pharmacy→GP once, with both moves
    other = ("Y" if region[0] == "Z" else "Z") + region[1:]
    quiet = await _one(client, "/api/flow", region=other)
    assert "Nothing moved between sectors" in quiet["svg"]

    moves = await client.get("/api/tail", params={"region": region, "type": "move.recorded"})
    lines = moves.json()["lines"]
    assert [(x["sector"], x["to_sector"]) for x in lines].count((PHARMACY, GP)) == 2
    assert {x["event_type"] for x in lines} == {"move.recorded"}
    dental = await client.get("/api/tail", params={"region": region, "sector": DENTAL})
    newest, older = dental.json()["lines"]
    assert (newest["event_type"], newest["detail"]) == ("session.posted", "gp, 2.0 h")
    assert (older["event_type"], older["to_sector"]) == ("move.recorded", DENTAL)
    bad = await client.get("/api/tail", params={"type": "session.exploded"})
    assert bad.status_code == 422
    assert [e["field"] for e in bad.json()["errors"]] == ["query.type"]


async def test_exports_list_sessions_moves_and_figures_as_csv_and_json(
    consumer: EventConsumer, client: httpx.AsyncClient, region: str
) -> None:
    """For a period and region: a row per session (status, times, minutes to fill, no
    clinician), per move, and per sector of the headline figures (and ``all``), the
    same columns in CSV and JSON, as an attachment; a site name that a spreadsheet
    would run as a formula is defused."""
    start, t0 = _nine(), datetime.now(UTC) - timedelta(days=1)
    done = Session(region, GP, start, 4)
    await feed(consumer, done, "session.posted", at=t0)
    await feed(consumer, done, "session.offered", "session.filled", at=t0 + timedelta(hours=2))
    risky = Session(region, PHARMACY, start, 3)
    await feed(consumer, risky, "session.posted", site_name='=HYPERLINK("x")')
    assert await consumer.handle(*move(region, PHARMACY, GP, 4))

    sessions = await client.get("/api/export/sessions", params={"region": region})
    assert sessions.status_code == 200
    assert sessions.headers["content-type"].startswith("text/csv")
    day = start.date().isoformat()
    assert sessions.headers["content-disposition"] == (
        f'attachment; filename="fairshare-{region}-sessions-{day}-to-{day}.csv"'
    )
    rows = {r["session_id"]: r for r in csv.DictReader(io.StringIO(sessions.text))}
    assert set(rows) == {str(done.session_id), str(risky.session_id)}
    row = rows[str(done.session_id)]
    assert (row["status"], row["minutes_to_fill"], row["hours"], row["offered"]) == (
        "filled",
        "120.0",
        "4.0",
        "true",
    )
    assert rows[str(risky.session_id)]["status"] == "open"
    assert rows[str(risky.session_id)]["site_name"] == '\'=HYPERLINK("x")'
    assert str(done.clinician_id) not in sessions.text

    as_json = await client.get("/api/export/sessions", params={"region": region, "format": "json"})
    assert as_json.headers["content-type"].startswith("application/json")
    items = {r["session_id"]: r for r in as_json.json()}
    assert items[str(done.session_id)]["minutes_to_fill"] == 120.0
    assert set(items[str(done.session_id)]) == set(row)

    moves = await client.get("/api/export/moves", params={"region": region})
    (row_of_move,) = list(csv.DictReader(io.StringIO(moves.text)))
    assert (
        row_of_move["from_sector"],
        row_of_move["to_sector"],
        row_of_move["hours"],
        row_of_move["counts"],
    ) == (
        PHARMACY,
        GP,
        "4.0",
        "true",
    )
    figures = await client.get("/api/export/summary", params={"region": region, "format": "json"})
    by_sector = {r["sector"]: r for r in figures.json()}
    assert (by_sector["all"]["posted"], by_sector["all"]["filled"]) == (2, 1)
    assert by_sector["all"]["fill_minutes_median"] == pytest.approx(120)
    assert by_sector[GP]["fill_rate"] == 1.0
    empty = await client.get(
        "/api/export/moves", params={"region": region, "period": "custom", "from": "2020-01-01",
                                     "to": "2020-01-02"}
    )  # fmt: skip
    assert empty.text.strip() == ",".join(
        ["move_id", "region", "region_name", "kind", "from_sector", "to_sector", "hours", "at",
         "reversed_at", "counts"]
    )  # fmt: skip


async def test_the_migration_backfills_the_timelines_the_domain_works_out(
    consumer: EventConsumer, pool: asyncpg.Pool, region: str
) -> None:
    """Sessions kept before migration 0008 get their timeline from their facts in SQL:
    the same columns as the domain's (a booking given up and made again, one released
    by a change and made again, a cancelled session, an amended one)."""
    start, t0 = _nine(), datetime.now(UTC) - timedelta(days=1)
    refilled = Session(region, GP, start, 4)
    await feed(consumer, refilled, "session.posted", at=t0)
    await feed(consumer, refilled, *FILL[1:], at=t0 + timedelta(minutes=10))
    await feed(consumer, refilled, "booking.cancelled", at=t0 + timedelta(minutes=20))
    refilled.offer_id = uuid.uuid4()
    await feed(consumer, refilled, *FILL[1:], at=t0 + timedelta(minutes=70))
    # Booked, released by a change of time (not given up), and booked again.
    released = Session(region, DENTAL, start, 2)
    await feed(consumer, released, "session.posted", at=t0)
    await feed(consumer, released, *FILL[1:], at=t0 + timedelta(minutes=10))
    released.starts_at += timedelta(hours=1)
    released.ends_at += timedelta(hours=1)
    await feed(
        consumer,
        released,
        "session.amended",
        at=t0 + timedelta(minutes=20),
        released_clinician_id=released.clinician_id,
    )
    released.offer_id, released.clinician_id = uuid.uuid4(), uuid.uuid4()
    await feed(consumer, released, *FILL[1:], at=t0 + timedelta(minutes=45))
    cancelled = Session(region, GP, start, 4)
    await feed(consumer, cancelled, *FILL, at=t0)
    await feed(consumer, cancelled, "session.cancelled", at=t0 + timedelta(hours=1))
    moved = Session(region, PHARMACY, start, 3)
    await feed(consumer, moved, "session.posted", at=t0)
    later = start + timedelta(days=1)
    await feed(
        consumer,
        moved,
        "session.amended",
        at=t0 + timedelta(minutes=5),
        starts_at=later,
        ends_at=later + timedelta(hours=3),
    )

    columns = (
        "session_id, starts_at, ends_at, posted_at, filled_at, round(fill_minutes::numeric, 6)"
    )
    mine_only = f"SELECT {columns} FROM session_facts WHERE region = $1 ORDER BY session_id"
    sql = (MIGRATIONS / "0008_timelines_and_tail.sql").read_text()
    backfill = [
        statement
        for statement in re.split(r";\s*\n", re.sub(r"--[^\n]*", "", sql))
        if statement.strip().startswith("UPDATE session_facts")
    ]
    assert len(backfill) == 2
    async with pool.acquire() as conn:
        kept = await conn.fetch(mine_only, region)
        undo = conn.transaction()  # the other tests' sessions are put back as they were
        await undo.start()
        try:
            await conn.execute(
                "UPDATE session_facts SET starts_at = NULL, ends_at = NULL, posted_at = NULL,"
                " filled_at = NULL, fill_minutes = NULL"
            )
            for statement in backfill:
                await conn.execute(statement)
            again = await conn.fetch(mine_only, region)
        finally:
            await undo.rollback()
    assert len(kept) == 4
    assert [dict(r) for r in again] == [dict(r) for r in kept]
    mine = {r["session_id"]: r for r in kept}
    assert mine[refilled.session_id]["round"] == pytest.approx(70)
    assert mine[released.session_id]["round"] == pytest.approx(45)
    assert mine[cancelled.session_id]["filled_at"] is None
    assert mine[moved.session_id]["starts_at"] == later


@pytest.fixture
async def live_url(infra: Infra, pool: asyncpg.Pool) -> AsyncIterator[str]:
    """The routes served by uvicorn with the live hub LISTENing, as the service runs."""
    app = _app(pool)
    hub = app.state.live = LiveHub()
    listening = asyncio.create_task(hub.run(infra.dsn, SCHEMA))
    try:
        async with served(app, lifespan="off", ready=lambda: hub.listening) as url:
            yield url
    finally:
        listening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await listening


async def _next_change(lines: AsyncIterator[str]) -> dict[str, Any]:
    event = ""
    async for line in lines:
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event == "change":
            found: dict[str, Any] = json.loads(line.split(":", 1)[1])
            return found
    msg = "stream ended"
    raise AssertionError(msg)


async def test_the_stream_pushes_a_change_to_the_viewers_of_its_region_only(
    consumer: EventConsumer, pool: asyncpg.Pool, live_url: str, region: str
) -> None:
    """Over a real connection: a hello on opening, then a change of this region when a
    session of it is filled (the handler's NOTIFY, at commit), within a second; a viewer
    of another region hears nothing of it."""
    other = ("Y" if region[0] == "Z" else "Z") + region[1:]
    mine = {COOKIE: await _token(pool, region=region)}
    theirs = {COOKIE: await _token(pool, region=other)}
    async with (
        httpx.AsyncClient(base_url=live_url, timeout=10, cookies=mine) as a,
        httpx.AsyncClient(base_url=live_url, timeout=10, cookies=theirs) as b,
        a.stream("GET", "/api/stream") as stream_a,
        b.stream("GET", "/api/stream") as stream_b,
    ):
        assert stream_a.headers["content-type"].startswith("text/event-stream")
        lines_a, lines_b = stream_a.aiter_lines(), stream_b.aiter_lines()
        assert await _next_change(lines_a) == {"region": region}
        assert await _next_change(lines_b) == {"region": other}
        await feed(consumer, Session(region, GP, _nine(), 4), *FILL)
        assert await asyncio.wait_for(_next_change(lines_a), timeout=1) == {"region": region}
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(_next_change(lines_b), timeout=0.5)
