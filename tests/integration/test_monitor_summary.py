"""The headline figures of /api/summary over the real database: sessions fed through
the shared consumer, placed in a period by their start, as they stand now; and the top
of the page in Debian's chromium, signed in with an invite code."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from playwright.async_api import Page, async_playwright

from fairshare.infra import free_port
from services.monitor import SCHEMA, SERVICE, http, signin, viewers
from services.monitor.handlers import handlers
from services.monitor.settings import MonitorSettings
from services.monitor.signin import COOKIE
from services.monitor.summary import Period, period_bounds
from shared.db.pool import create_pool
from shared.events import EVENTS, new_envelope, topic_for
from shared.http.problems import install_problem_handlers
from shared.messaging.consumer import EventConsumer
from shared.runtime import migrate
from tests.conftest import Infra
from tests.e2e.system import launch_chromium
from tests.integration.helpers import settings_for

pytestmark = pytest.mark.integration

MIGRATIONS = Path(http.__file__).with_name("migrations")
GP, PHARMACY = "general_practice", "community_pharmacy"


class _NoDeadLetters:
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
        service=SERVICE, pool=pool, dead_letters=_NoDeadLetters(), handlers=handlers()
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

    def message(self, event_type: str, **given: Any) -> tuple[str, bytes, bytes]:
        """(topic, key, body) of ``event_type`` about this session; fields the monitor
        does not read are filler, picked by name from the event's model."""
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
            "reasons": ["test"],
            "warnings": [],
            "reason": "test",
            "late": False,
            "released_clinician_id": None,
            **given,
        }
        spec = EVENTS[event_type]
        data = {name: filler[name] for name in spec.model.model_fields}
        envelope = new_envelope(
            spec.model.model_validate(data),
            event_type=event_type,
            schema_version=spec.version,
            region=self.region,
            producer=spec.producer,
        )
        return topic_for(event_type), self.region.encode(), envelope.model_dump_json().encode()


async def _feed(consumer: EventConsumer, session: Session, *steps: str, **given: Any) -> None:
    for event_type in steps:
        assert await consumer.handle(*session.message(event_type, **given)), event_type


async def _summary(client: httpx.AsyncClient, region: str, period: str) -> dict[str, Any]:
    response = await client.get("/api/summary", params={"region": region, "period": period})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    (summary,) = response.json()
    assert summary["region"] == region
    return dict(summary)


_FILL = ("session.posted", "session.offered", "session.filled")


async def test_headline_figures_count_sessions_by_their_start_as_they_stand_now(
    consumer: EventConsumer, client: httpx.AsyncClient, region: str
) -> None:
    """Today: a filled GP session (4 h), a pharmacy session filled and then cancelled
    late (not filled, no hours), a booking given up late (no longer filled), an open
    session. A filled session that started ten days ago counts in 28 days only, and a
    cancelled session starting tomorrow in none."""
    today = period_bounds(Period.TODAY, datetime.now(UTC))[0] + timedelta(hours=9)
    await _feed(consumer, Session(region, GP, today, 4), *_FILL)
    await _feed(consumer, Session(region, PHARMACY, today, 3), *_FILL)
    cancelled = Session(region, PHARMACY, today, 3)
    await _feed(consumer, cancelled, *_FILL)
    await _feed(consumer, cancelled, "session.cancelled", late=True)
    given_up = Session(region, GP, today + timedelta(hours=1), 6)
    await _feed(consumer, given_up, *_FILL)
    await _feed(consumer, given_up, "booking.cancelled", late=True)
    await _feed(consumer, Session(region, GP, today, 2), "session.posted")
    await _feed(consumer, Session(region, GP, today - timedelta(days=10), 5), *_FILL)
    await _feed(
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
    await _feed(consumer, moved, "session.posted")
    await _feed(
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
    """The monitor's sign-in and page routes served by uvicorn in this process."""
    app = FastAPI()
    install_problem_handlers(app)
    signin.install(app, settings_for(MonitorSettings, infra, ""))
    app.include_router(signin.router)
    app.include_router(http.router)
    app.state.runtime = SimpleNamespace(pool=pool)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def _figure(page: Page, name: str) -> str:
    return (await page.get_by_test_id(f"summary-{name}").inner_text()).strip()


@pytest.mark.browser
async def test_the_headline_figures_and_the_drain_are_on_the_first_screen(
    pool: asyncpg.Pool, consumer: EventConsumer, monitor_url: str, region: str, tmp_path: Path
) -> None:
    """Signed in with a code for one region: today's figures (3 posted, 1 filled of the
    2 still wanted, 4 h), then 28 days' (one more filled, 5 h more) once the period is
    switched (a click; arrow keys on the phone); the drain section starts within the
    first 900 px and nothing scrolls sideways, at 1440x900 and 390x844."""
    today = period_bounds(Period.TODAY, datetime.now(UTC))[0] + timedelta(hours=9)
    await _feed(consumer, Session(region, GP, today, 4), *_FILL)
    await _feed(consumer, Session(region, GP, today, 2), "session.posted")
    await _feed(
        consumer, Session(region, PHARMACY, today, 3), "session.posted", "session.cancelled"
    )
    await _feed(consumer, Session(region, GP, today - timedelta(days=20), 5), *_FILL)

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
                await page.screenshot(path=str(tmp_path / f"summary-{name}-today.png"))

                if name == "desktop":
                    await page.get_by_text("28 days", exact=True).click()
                else:  # by keyboard: the period is a radio group, arrows move along it
                    await page.get_by_role("radio", name="Today").focus()
                    await page.keyboard.press("ArrowRight")
                    await page.keyboard.press("ArrowRight")
                posted = page.get_by_test_id("summary-posted")
                await page.wait_for_function(
                    "() => document.querySelector('[data-testid=summary-posted]')"
                    ".textContent.trim() === '4'",
                    timeout=5000,
                )
                assert (await posted.inner_text()).strip() == "4"
                assert await _figure(page, "hours") == "9.0 h"
                assert await _figure(page, "fill-rate") == "67%"
                assert await page.get_by_role("radio", name="28 days").is_checked()

                drain = page.get_by_test_id("drain")
                await page.get_by_test_id(f"drain-{region}").wait_for(timeout=5000)
                box = await drain.bounding_box()
                overflow = await page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                # Taken before the checks of layout, so a failing layout is on file.
                await page.screenshot(path=str(tmp_path / f"summary-{name}-28d.png"))
                assert box is not None
                assert box["y"] < 900, f"{name}: the drain section starts at {box['y']}px"
                assert overflow <= 0, f"{name}: {overflow}px of sideways scrolling"
                await page.close()
        finally:
            await browser.close()
