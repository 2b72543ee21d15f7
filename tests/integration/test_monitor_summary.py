"""The headline figures of /api/summary over the real database: sessions fed through
the shared consumer, placed in a period by their start, as they stand now; and the top
of the page in Debian's chromium, signed in with an invite code."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from playwright.async_api import Page, async_playwright

from services.monitor import SCHEMA, SERVICE, equity_routes, http, insights, signin, viewers
from services.monitor.handlers import handlers
from services.monitor.live import LiveHub
from services.monitor.settings import MonitorSettings
from services.monitor.signin import COOKIE
from services.monitor.summary import LOCAL, Period, period_bounds
from shared.db.pool import create_pool
from shared.events import EVENTS, MoveRecorded, SectorDrainCleared, new_envelope, topic_for
from shared.http.problems import install_problem_handlers
from shared.messaging.consumer import EventConsumer
from shared.runtime import migrate
from tests.conftest import Infra
from tests.e2e.system import launch_chromium
from tests.integration.helpers import served, settings_for

pytestmark = pytest.mark.integration

MIGRATIONS = Path(http.__file__).with_name("migrations")
GP, PHARMACY = "general_practice", "community_pharmacy"


class NoDeadLetters:
    """Every message here is valid: a dead letter would be a failure of the test."""

    async def publish(self, *, topic: str, key: str, value: bytes, headers: dict[str, str]) -> None:
        """Fail loudly with the consumer's reason."""
        raise AssertionError(f"dead-lettered from {topic}: {headers.get('dlq-reason')}")


@pytest.fixture
async def pool(infra: Infra) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the monitor's schema, migrated (migrations are idempotent across tests)."""
    settings = settings_for(MonitorSettings, infra, "")
    await migrate(settings, schema=SCHEMA, migrations_dir=MIGRATIONS)
    p = await create_pool(settings.database_url, SCHEMA)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
def consumer(pool: asyncpg.Pool) -> EventConsumer:
    """The consumer the service runs, minus Kafka: tests hand it messages directly."""
    return EventConsumer(
        service=SERVICE, pool=pool, dead_letters=NoDeadLetters(), handlers=handlers()
    )


@pytest.fixture
async def client(pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    """The monitor's routes on a bare app (a pool, no Kafka), signed in as a national
    viewer (test_monitor_access.py checks who else /api/summary refuses)."""
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(http.router)
    app.state.runtime = SimpleNamespace(pool=pool)
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        viewer = await viewers.add_viewer(conn, name="Test viewer", region=None, national=True)
        code = await viewers.invite(conn, viewer.id, now=now)
    signed = await viewers.sign_in(pool, code, now=now, session_ttl=timedelta(hours=1))
    assert signed is not None
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://monitor",
        cookies={COOKIE: signed[1]},
    ) as c:
        yield c


class Session:
    """One session's events, all of one start and length, as the services publish them."""

    def __init__(self, region: str, sector: str, starts_at: datetime, hours: float) -> None:
        self.region, self.sector, self.starts_at = region, sector, starts_at
        self.ends_at = starts_at + timedelta(hours=hours)
        self.session_id, self.offer_id, self.clinician_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    def message(
        self, event_type: str, *, at: datetime | None = None, **given: Any
    ) -> tuple[str, bytes, bytes]:
        """(topic, key, body) of ``event_type`` about this session, said ``at`` (now if
        not given); fields the monitor does not read are filler, picked by name from the
        event's model."""
        filler: dict[str, Any] = {
            "session_id": self.session_id,
            "offer_id": self.offer_id,
            "clinician_id": self.clinician_id,
            "sector": self.sector,
            "clinician_home_sector": self.sector,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "expires_at": self.starts_at - timedelta(hours=1),
            "organisation": "A81001",
            "posted_by": "A81001",
            "site_name": "Hilltop Surgery",
            "role": "gp",
            "skills": [],
            "rate_pence_per_hour": None,
            "urgency": "routine",
            "latitude": 53.48,
            "longitude": -2.24,
            "imd_decile": 3,
            "place": "Salford",
            "pcn": None,
            "reasons": ["test"],
            "warnings": [],
            "reason": "test",
            "late": False,
            "released_clinician_id": None,
            "why": None,
            "detail": "test",
            **given,
        }
        spec = EVENTS[event_type]
        # An optional field the filler lacks keeps its default (a field added later).
        data = {
            name: filler[name]
            for name, f in spec.model.model_fields.items()
            if name in filler or f.is_required()
        }
        envelope = new_envelope(
            spec.model.model_validate(data),
            event_type=event_type,
            schema_version=spec.version,
            region=self.region,
            producer=spec.producer,
        )
        if at is not None:
            envelope = envelope.model_copy(update={"occurred_at": at})
        return topic_for(event_type), self.region.encode(), envelope.model_dump_json().encode()


async def feed(
    consumer: EventConsumer,
    session: Session,
    *steps: str,
    at: datetime | None = None,
    **given: Any,
) -> None:
    """Hand the consumer ``steps`` about ``session``, each said ``at`` (now if None)."""
    for event_type in steps:
        assert await consumer.handle(*session.message(event_type, at=at, **given)), event_type


async def _summary(client: httpx.AsyncClient, region: str, period: str) -> dict[str, Any]:
    response = await client.get("/api/summary", params={"region": region, "period": period})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    (summary,) = response.json()
    assert summary["region"] == region
    return dict(summary)


FILL = ("session.posted", "session.offered", "session.filled")


async def test_headline_figures_count_sessions_by_their_start_as_they_stand_now(
    consumer: EventConsumer, client: httpx.AsyncClient, region: str
) -> None:
    """Today: a filled GP session (4 h), a pharmacy session filled and then cancelled
    late (not filled, no hours), a booking given up late (no longer filled), an open
    session. A filled session that started ten days ago counts in 28 days only, and a
    cancelled session starting tomorrow in none."""
    today = period_bounds(Period.TODAY, datetime.now(UTC))[0] + timedelta(hours=9)
    await feed(consumer, Session(region, GP, today, 4), *FILL)
    await feed(consumer, Session(region, PHARMACY, today, 3), *FILL)
    cancelled = Session(region, PHARMACY, today, 3)
    await feed(consumer, cancelled, *FILL)
    await feed(consumer, cancelled, "session.cancelled", late=True)
    given_up = Session(region, GP, today + timedelta(hours=1), 6)
    await feed(consumer, given_up, *FILL)
    await feed(consumer, given_up, "booking.cancelled", late=True)
    await feed(consumer, Session(region, GP, today, 2), "session.posted")
    await feed(consumer, Session(region, GP, today - timedelta(days=10), 5), *FILL)
    await feed(
        consumer,
        Session(region, GP, today + timedelta(days=1), 5),
        "session.posted",
        "session.cancelled",
    )

    day = await _summary(client, region, "today")
    figures = {k: day[k] for k in ("posted", "filled", "cancelled", "late_cancelled")}
    assert figures == {"posted": 5, "filled": 2, "cancelled": 1, "late_cancelled": 1}
    assert (day["late_given_up"], day["unfilled"]) == (1, 0)
    assert day["fill_rate"] == pytest.approx(2 / 4)
    assert day["hours_filled"] == pytest.approx(7.0)
    by_sector = {s["sector"]: s for s in day["sectors"]}
    assert by_sector[GP]["hours_filled"] == pytest.approx(4.0)
    assert by_sector[PHARMACY]["hours_filled"] == pytest.approx(3.0)
    assert (by_sector[PHARMACY]["posted"], by_sector["dentistry"]["posted"]) == (2, 0)

    week = await _summary(client, region, "7d")
    assert (week["posted"], week["filled"], week["hours_filled"]) == (5, 2, pytest.approx(7.0))
    month = await _summary(client, region, "28d")
    assert (month["posted"], month["filled"]) == (6, 3)
    assert month["hours_filled"] == pytest.approx(12.0)
    assert month["fill_rate"] == pytest.approx(3 / 5)


async def test_an_amended_start_moves_the_session_into_its_new_period(
    consumer: EventConsumer, client: httpx.AsyncClient, region: str
) -> None:
    """A session posted for ten days ago and then moved to today counts today, by the
    start vacancies last said; a region with nothing in the period is all zeros."""
    today = period_bounds(Period.TODAY, datetime.now(UTC))[0] + timedelta(hours=9)
    moved = Session(region, GP, today - timedelta(days=10), 4)
    await feed(consumer, moved, "session.posted")
    await feed(
        consumer, moved, "session.amended", starts_at=today, ends_at=today + timedelta(hours=4)
    )
    assert (await _summary(client, region, "today"))["posted"] == 1
    assert (await _summary(client, region, "7d"))["posted"] == 1
    other = ("Y" if region[0] == "Z" else "Z") + region[1:]  # a region of no test's sessions
    empty = await _summary(client, other, "28d")
    assert (empty["posted"], empty["fill_rate"], empty["hours_filled"]) == (0, None, 0)


async def test_an_unknown_period_is_refused(client: httpx.AsyncClient) -> None:
    """Only today, 7d and 28d: anything else is a 422 naming the field."""
    response = await client.get("/api/summary", params={"period": "1y"})
    assert response.status_code == 422
    assert "period" in response.text


@pytest.fixture
async def monitor_url(infra: Infra, pool: asyncpg.Pool) -> AsyncIterator[str]:
    """The monitor's sign-in, page and API routes served by uvicorn in this process,
    with the live hub LISTENing as the service runs it (the page is pushed its news)."""
    app = FastAPI()
    install_problem_handlers(app)
    signin.install(app, settings_for(MonitorSettings, infra, ""))
    app.include_router(signin.router)
    app.include_router(http.router)
    app.include_router(insights.router)
    app.include_router(equity_routes.router)
    app.state.runtime = SimpleNamespace(pool=pool)
    hub = app.state.live = LiveHub()
    listening = asyncio.create_task(hub.run(infra.dsn, SCHEMA))
    try:
        async with served(app, lifespan="off", ready=lambda: hub.listening) as url:
            yield url
    finally:
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening


async def _figure(page: Page, name: str) -> str:
    return (await page.get_by_test_id(f"summary-{name}").inner_text()).strip()


async def _until_text(page: Page, testid: str, text: str, timeout_ms: float = 5000) -> None:
    await page.wait_for_function(
        '([id, text]) => { const e = document.querySelector(`[data-testid="${id}"]`);'
        " return e !== null && e.textContent.trim() === text; }",
        arg=[testid, text],
        timeout=timeout_ms,
    )


def move(region: str, from_sector: str, to_sector: str, hours: float) -> tuple[str, bytes, bytes]:
    """(topic, key, body) of a move of matching's ledger an hour ago."""
    data = MoveRecorded(
        move_id=uuid.uuid4(),
        kind="session",
        clinician_id=uuid.uuid4(),
        from_sector=from_sector,
        to_sector=to_sector,
        place=None,
        hours=hours,
        at=datetime.now(UTC) - timedelta(hours=1),
        session_id=uuid.uuid4(),
    )
    envelope = new_envelope(
        data, event_type="move.recorded", schema_version=1, region=region, producer="matching"
    )
    return topic_for("move.recorded"), region.encode(), envelope.model_dump_json().encode()


async def _scripted(consumer: EventConsumer, region: str) -> tuple[Session, Session]:
    """Today: a GP session filled 45 minutes after it was posted (4 h, in the least
    deprived fifth), one open (2 h, in the most deprived fifth, Bolton, PCN U12345), a
    pharmacy one cancelled; 20 days ago a GP session filled (5 h). Tomorrow, three
    open sessions (at risk within 48 hours, whatever the time now): one held by the
    drain guard, one not yet planned, one to be filled and one cancelled live by the
    test (returned). Moves: pharmacy to GP 11.5 h and to dentistry 3.5 h, GP to
    pharmacy 2 h; pharmacy's cap base (150 h offered) from a drain clearing."""
    now = datetime.now(UTC)
    midnight = period_bounds(Period.TODAY, now)[1]
    today = midnight - timedelta(hours=15)  # 09:00 in England
    filled = Session(region, GP, today, 4)
    await feed(consumer, filled, "session.posted", at=now - timedelta(hours=3), imd_decile=9)
    await feed(consumer, filled, *FILL[1:], at=now - timedelta(hours=3) + timedelta(minutes=45))
    deprived = Session(region, GP, today, 2)
    await feed(consumer, deprived, "session.posted", imd_decile=1, place="Bolton", pcn="U12345")
    await feed(consumer, Session(region, PHARMACY, today, 3), "session.posted", "session.cancelled")
    await feed(consumer, Session(region, GP, today - timedelta(days=20), 5), *FILL)
    held = Session(region, GP, midnight + timedelta(minutes=30), 4)
    await feed(consumer, held, "session.posted")
    await feed(
        consumer,
        held,
        "session.unmatched",
        why="held_by_drain_guard",
        detail="1 eligible clinician from other sectors was held back by the drain guard.",
    )
    to_fill = Session(region, PHARMACY, midnight + timedelta(hours=20), 3)
    to_cancel = Session(region, "dentistry", midnight + timedelta(hours=21), 3)
    for s in (to_fill, to_cancel):
        await feed(consumer, s, "session.posted")
    for m in (move(region, PHARMACY, GP, 11.5), move(region, PHARMACY, "dentistry", 3.5)):
        assert await consumer.handle(*m)
    assert await consumer.handle(*move(region, GP, PHARMACY, 2))
    # Matching said pharmacy offered 150 h over its window: its 10% cap is 15 h.
    cleared = SectorDrainCleared(
        sector=PHARMACY,
        net_out_hours=13.0,
        offered_hours=150.0,
        cap_pct=10.0,
        used_pct=86.7,
        window_days=28,
    )
    envelope = new_envelope(
        cleared,
        event_type="sector.drain_cleared",
        schema_version=1,
        region=region,
        producer="matching",
    )
    assert await consumer.handle(
        topic_for("sector.drain_cleared"), region.encode(), envelope.model_dump_json().encode()
    )
    return to_fill, to_cancel


@pytest.mark.browser
async def test_the_headline_figures_and_the_drain_are_on_the_first_screen(
    pool: asyncpg.Pool, consumer: EventConsumer, monitor_url: str, region: str, artifacts_dir: Path
) -> None:
    """Signed in with a code for one region, at 1440x900 and 390x844: today's figures
    (3 posted, 1 filled of the 2 still wanted, 4 h, filled in 45 minutes), then 28
    days' once the period is switched (a click; arrow keys on the phone); the drain
    section starts within the first 900 px, with the at-risk list beside it on the
    desktop (2 sessions, matching's reason in words); the trends and the Sankey are
    drawn at the page's width; nothing scrolls sideways.

    On the desktop also: a custom period whose days are the wrong way round is refused
    beside the field that is wrong, then shown; the live tail filtered to moves; and,
    pushed without a reload or a poll, a session filled and one cancelled leave the
    at-risk list within 3 seconds."""
    to_fill, to_cancel = await _scripted(consumer, region)
    shot = artifacts_dir / "monitor-{}-{}.png"

    async with async_playwright() as p:
        browser = await launch_chromium(p)
        try:
            for name, width, height in (("desktop", 1440, 900), ("phone", 390, 844)):
                async with pool.acquire() as conn:
                    viewer = await viewers.add_viewer(
                        conn, name="GM team", region=region, national=False
                    )
                    code = await viewers.invite(conn, viewer.id, now=datetime.now(UTC))
                page = await browser.new_page(viewport={"width": width, "height": height})
                await page.goto(monitor_url + "/")
                await page.get_by_label("Invite code").fill(code)
                await page.get_by_role("button", name="Sign in").click()

                heading = page.get_by_test_id("summary-region")
                await page.wait_for_function(
                    "t => document.querySelector('[data-testid=summary-hours]')"
                    ".textContent.trim() !== '–'",
                    arg=None,
                    timeout=15000,
                )
                assert region in await heading.inner_text()
                assert await _figure(page, "posted") == "3"
                assert (await _figure(page, "filled"), await _figure(page, "fill-rate")) == (
                    "1",
                    "50%",
                )
                assert await _figure(page, "hours") == "4.0 h"
                assert await _figure(page, "fill-median") == "45 min"
                assert await _figure(page, "fill-p90") == "45 min"
                live = (3, 2) if name == "desktop" else (1, 0)  # at risk, by the end
                await _until_text(page, "risk-48h", str(live[0]))
                await page.locator("#trend-chart svg").wait_for(timeout=5000)
                await page.locator("#flow-chart svg").wait_for(timeout=5000)
                await _equity_today(page)
                await page.screenshot(path=str(shot).format(name, "1-today"))

                if name == "desktop":
                    await page.get_by_text("28 days", exact=True).click()
                else:  # by keyboard: the period is a radio group, arrows move along it
                    await page.get_by_role("radio", name="Today").focus()
                    await page.keyboard.press("ArrowRight")
                    await page.keyboard.press("ArrowRight")
                await _until_text(page, "summary-posted", "4")
                assert await _figure(page, "hours") == "9.0 h"
                assert await _figure(page, "fill-rate") == "67%"
                assert await page.get_by_role("radio", name="28 days").is_checked()

                drain = page.get_by_test_id("drain")
                risk = page.get_by_test_id("risk")
                await page.get_by_test_id(f"drain-{region}").wait_for(timeout=5000)
                # The cap in hours where matching said its base; a percentage elsewhere.
                cap = page.get_by_test_id(f"drain-{region}-{PHARMACY}-cap-hours")
                assert (await cap.inner_text(timeout=5000)).strip() == "= 15.0 h"
                assert await page.get_by_test_id(f"drain-{region}-{GP}-cap-hours").count() == 0
                held = page.get_by_test_id("risk-reason-held_by_drain_guard")
                assert (await held.inner_text()).strip() == "Held by the drain guard: 1"
                assert await page.get_by_text("was held back by the drain guard").count() == 1
                # Drawn for the page's width: the chart's text stays readable on a phone.
                for chart in ("#trend-chart svg", "#flow-chart svg", "#equity-chart svg"):
                    drawn = await page.locator(chart).bounding_box()
                    assert drawn is not None
                    assert drawn["width"] <= width, (name, chart, drawn)
                    # Drawn at that width, not shrunk to it (which shrinks its text).
                    drawn_at = await page.locator(chart).get_attribute("width")
                    assert drawn_at is not None
                    assert int(drawn_at) <= width, (name, chart, drawn_at)
                trend = page.locator("#trend-chart svg title").first
                assert await trend.text_content() == "Trends per day: All sectors"
                flow = page.locator("#flow-chart svg")
                assert "Community pharmacy to General practice: 11.5 h" in (await flow.inner_html())
                drain_box, risk_box = await drain.bounding_box(), await risk.bounding_box()
                overflow = await page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                # Taken before the checks of layout, so a failing layout is on file.
                await page.screenshot(path=str(shot).format(name, "2-28d"))
                assert drain_box is not None
                assert risk_box is not None
                assert drain_box["y"] < 900, f"{name}: the drain section starts at {drain_box}"
                assert overflow <= 0, f"{name}: {overflow}px of sideways scrolling"
                await _equity_28_days(page, name, shot)
                if name == "desktop":
                    # Beside the drain, on the first screen.
                    assert risk_box["x"] >= drain_box["x"] + drain_box["width"], risk_box
                    assert risk_box["y"] < 900 / 2, risk_box
                    await _desktop_only(page, consumer, to_fill, to_cancel)
                await page.screenshot(path=str(shot).format(name, "3-full"), full_page=True)
                await page.close()
        finally:
            await browser.close()


async def _equity_today(page: Page) -> None:
    """Today's equity: the most deprived fifth's one session open, the least deprived
    fifth's filled (a gap of 100 points), by place and PCN in the tables too."""
    await _until_text(
        page,
        "equity-gap",
        "The most deprived fifth is filled 100 points less than the least deprived.",
    )
    desc = await page.locator("#equity-chart svg desc").text_content()
    assert desc is not None
    assert "1 · most deprived: 0% filled (0 of 1 wanted)" in desc, desc
    assert "5 · least deprived: 100% filled (1 of 1 wanted)" in desc, desc
    assert "Bolton: 0% filled (0 of 1 wanted)" in desc, desc
    # Label, wanted, filled, fill rate, unfilled.
    rows = {
        testid: await page.get_by_test_id(testid).locator("th, td").all_text_contents()
        for testid in ("equity-quintile-1", "equity-quintile-5", "equity-pcn-U12345")
    }
    assert rows == {
        "equity-quintile-1": ["1 · most deprived", "1", "0", "0%", "0"],
        "equity-quintile-5": ["5 · least deprived", "1", "1", "100%", "0"],
        "equity-pcn-U12345": ["U12345", "1", "0", "0%", "0"],
    }, rows


async def _equity_28_days(page: Page, name: str, shot: Path) -> None:
    """Over 28 days the session filled 20 days ago joins Salford's; the tables (PCNs
    too) open without sideways scrolling; the section is kept as a screenshot."""
    await page.wait_for_function(
        "() => (document.querySelector('#equity-chart svg desc') || {})"
        ".textContent?.includes('Salford: 100% filled (2 of 2 wanted)')",
        timeout=5000,
    )
    equity = page.get_by_test_id("equity")
    await equity.get_by_text("Show the figures as tables, with PCNs").click()
    cells = page.get_by_test_id("equity-place-Salford").locator("th, td")
    assert await cells.all_text_contents() == ["Salford", "2", "2", "100%", "0"]
    await equity.scroll_into_view_if_needed()
    await equity.screenshot(path=str(shot).format(name, "equity"))
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{name}: {overflow}px of sideways scrolling with the tables open"


async def _desktop_only(
    page: Page, consumer: EventConsumer, to_fill: Session, to_cancel: Session
) -> None:
    """A custom period (refused the wrong way round, then shown), the tail filtered to
    moves, and two live updates."""
    today = datetime.now(UTC).astimezone(LOCAL).date()
    yesterday = today - timedelta(days=1)
    await page.get_by_text("Custom", exact=True).click()
    await page.get_by_label("From", exact=True).fill(today.isoformat())
    await page.get_by_label("To (included)", exact=True).fill(yesterday.isoformat())
    await page.get_by_role("button", name="Show these days").click()
    error = page.get_by_test_id("custom-to-error")
    await _until_text(page, "custom-to-error", f"To: must be on or after from ({today})")
    assert (
        await page.get_by_label("To (included)", exact=True).get_attribute("aria-invalid") == "true"
    )
    assert await page.evaluate("document.activeElement.id") == "custom-to"
    assert await error.is_visible()
    await page.get_by_label("To (included)", exact=True).fill(today.isoformat())
    await page.get_by_role("button", name="Show these days").click()
    await _until_text(page, "summary-posted", "3")
    assert await page.get_by_test_id("custom-to-error").inner_text() == ""
    href = await page.locator("[data-export=sessions][data-format=csv]").get_attribute("href")
    assert href is not None
    assert f"from={today}" in href
    assert "period=custom" in href

    await page.get_by_label("Kind").select_option(label="Moved between sectors")
    await page.wait_for_function(
        "() => { const items = document.querySelectorAll('#activity-list li');"
        " return items.length === 3 && [...items].every("
        "   (li) => li.dataset.testid === 'tail-move.recorded'); }",
        timeout=5000,
    )

    # Pushed: nothing reloads, and the page's only timer is a minute long.
    await feed(consumer, to_fill, *FILL[1:])
    await _until_text(page, "risk-48h", "2", timeout_ms=3000)
    await feed(consumer, to_cancel, "session.cancelled")
    await _until_text(page, "risk-48h", "1", timeout_ms=3000)
    assert await page.get_by_test_id(f"risk-{to_fill.session_id}").count() == 0
