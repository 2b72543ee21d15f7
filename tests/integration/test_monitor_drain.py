"""The monitor's drain picture over the real database: matching's moves, alerts and
policies consumed through the shared consumer, served as /api/drain and drawn on the
page in Debian's chromium."""

from __future__ import annotations

import random
import string
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
from playwright.async_api import async_playwright
from pydantic import BaseModel

from services.monitor import SCHEMA, SERVICE, http, insights, viewers
from services.monitor.handlers import handlers
from services.monitor.settings import MonitorSettings
from services.monitor.signin import COOKIE
from shared.catalogue import Sector
from shared.db.pool import create_pool
from shared.events import (
    EVENTS,
    MoveRecorded,
    PolicyChanged,
    SectorDrainAlert,
    SectorDrainCleared,
    new_envelope,
    topic_for,
)
from shared.http.problems import install_problem_handlers
from shared.messaging.consumer import EventConsumer
from shared.runtime import migrate
from tests.conftest import Infra
from tests.e2e.system import launch_chromium
from tests.integration.helpers import served, settings_for

pytestmark = pytest.mark.integration

MIGRATIONS = Path(http.__file__).with_name("migrations")
GP, PHARMACY, DENTAL = "general_practice", "community_pharmacy", "dentistry"


class _NoDeadLetters:
    """Every message here is valid: a dead letter would be a failure of the test."""

    async def publish(self, *, topic: str, key: str, value: bytes, headers: dict[str, str]) -> None:
        """Fail loudly with the consumer's reason."""
        raise AssertionError(f"dead-lettered from {topic}: {headers.get('dlq-reason')}")


async def _pool(infra: Infra, schema: str) -> asyncpg.Pool:
    settings = settings_for(MonitorSettings, infra, "")
    await migrate(settings, schema=schema, migrations_dir=MIGRATIONS)
    return await create_pool(settings.database_url, schema)


def _consumer(pool: asyncpg.Pool) -> EventConsumer:
    return EventConsumer(
        service=SERVICE, pool=pool, dead_letters=_NoDeadLetters(), handlers=handlers()
    )


def _app(pool: asyncpg.Pool) -> FastAPI:
    """The monitor's routers on a bare app (problem+json answers, a pool, no Kafka)."""
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(http.router)
    app.include_router(insights.router)  # the page reads /api/regions and the others
    app.state.runtime = SimpleNamespace(pool=pool)
    return app


async def _national_session(pool: asyncpg.Pool) -> str:
    """A national viewer's session token: the routes answer only signed-in viewers
    (test_monitor_access.py checks who else they refuse)."""
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        viewer = await viewers.add_viewer(conn, name="Test viewer", region=None, national=True)
        code = await viewers.invite(conn, viewer.id, now=now)
    signed = await viewers.sign_in(pool, code, now=now, session_ttl=timedelta(hours=1))
    assert signed is not None
    return signed[1]


@pytest.fixture
async def pool(infra: Infra) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the monitor's schema, migrated (migrations are idempotent across tests)."""
    p = await _pool(infra, SCHEMA)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
def consumer(pool: asyncpg.Pool) -> EventConsumer:
    """The consumer the service runs, minus Kafka: tests hand it messages directly."""
    return _consumer(pool)


@pytest.fixture
async def client(pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the monitor's routes, signed in as a national viewer."""
    transport = httpx.ASGITransport(app=_app(pool))
    cookies = {COOKIE: await _national_session(pool)}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://monitor", cookies=cookies
    ) as c:
        yield c


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _move(
    from_sector: str,
    to_sector: str,
    hours: float,
    *,
    at: datetime | None = None,
    move_id: uuid.UUID | None = None,
) -> MoveRecorded:
    return MoveRecorded(
        move_id=move_id or uuid.uuid4(),
        kind="session",
        clinician_id=uuid.uuid4(),
        from_sector=Sector(from_sector),
        to_sector=Sector(to_sector),
        place="Salford",
        hours=hours,
        at=at or _now() - timedelta(days=2),
        session_id=uuid.uuid4(),
    )


def _alert(sector: str, used_pct: float) -> SectorDrainAlert:
    return SectorDrainAlert(
        sector=Sector(sector),
        net_out_hours=used_pct / 10,
        offered_hours=100.0,
        cap_pct=10.0,
        used_pct=used_pct,
        window_days=28,
    )


def _policy(**caps: float) -> PolicyChanged:
    return PolicyChanged(
        cap_pct={s: caps.get(s.value, 10.0) for s in Sector},
        home_first=True,
        alert_share=0.8,
        changed_by="ICB workforce lead",
    )


_TYPE_OF = {
    MoveRecorded: "move.recorded",
    SectorDrainAlert: "sector.drain_alert",
    SectorDrainCleared: "sector.drain_cleared",
    PolicyChanged: "policy.changed",
}


def _message(
    data: BaseModel, region: str, *, occurred_at: datetime | None = None
) -> tuple[str, bytes, bytes]:
    """(topic, key, body) of one event, as Kafka would hand it to the consumer."""
    event_type = _TYPE_OF[type(data)]
    spec = EVENTS[event_type]
    envelope = new_envelope(
        data,
        event_type=event_type,
        schema_version=spec.version,
        region=region,
        producer=spec.producer,
    )
    if occurred_at is not None:
        envelope = envelope.model_copy(update={"occurred_at": occurred_at})
    return topic_for(event_type), region.encode(), envelope.model_dump_json().encode()


async def _drain(client: httpx.AsyncClient, region: str) -> dict[str, Any]:
    """The region's picture from GET /api/drain?region=…"""
    response = await client.get("/api/drain", params={"region": region})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    [picture] = response.json()
    assert picture["region"] == region
    return picture  # type: ignore[no-any-return]


def _sectors(picture: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["sector"]: s for s in picture["sectors"]}


def _figures(picture: dict[str, Any], sector: str) -> tuple[float, float, float]:
    s = _sectors(picture)[sector]
    return s["out_hours"], s["in_hours"], s["net_out_hours"]


async def test_two_moves_out_and_one_in_give_out_in_and_net(
    consumer: EventConsumer, client: httpx.AsyncClient, region: str
) -> None:
    """Pharmacy lends 4 h to general practice and 3.5 h to dentistry and borrows 2 h
    back: 7.5 out, 2 in, 5.5 net out; the receivers show the other side; default caps."""
    for move in (_move(PHARMACY, GP, 4), _move(PHARMACY, DENTAL, 3.5), _move(GP, PHARMACY, 2)):
        assert await consumer.handle(*_message(move, region))
    picture = await _drain(client, region)
    assert _figures(picture, PHARMACY) == (7.5, 2.0, 5.5)
    assert _figures(picture, GP) == (2.0, 4.0, -2.0)
    assert _figures(picture, DENTAL) == (0.0, 3.5, -3.5)
    assert _figures(picture, "optometry") == (0.0, 0.0, 0.0)
    assert [s["sector"] for s in picture["sectors"]] == [s.value for s in Sector]
    assert {s["cap_pct"] for s in picture["sectors"]} == {10.0}
    assert {s["alert"] is None for s in picture["sectors"]} == {True}
    assert picture["policy"] is None
    assert picture["window_days"] == 28
    assert picture["matrix"] == [
        {"from_sector": GP, "to_sector": PHARMACY, "hours": 2.0},
        {"from_sector": PHARMACY, "to_sector": GP, "hours": 4.0},
        {"from_sector": PHARMACY, "to_sector": DENTAL, "hours": 3.5},
    ]


async def test_a_redelivered_move_counts_once(
    consumer: EventConsumer, client: httpx.AsyncClient, region: str
) -> None:
    """The same message twice (at-least-once Kafka) counts once, and so does the same
    ledger entry published again under a new event id."""
    move = _move(PHARMACY, GP, 4)
    message = _message(move, region)
    assert await consumer.handle(*message) is True
    assert await consumer.handle(*message) is False
    assert await consumer.handle(*_message(move, region)) is True  # new event, same move
    assert _figures(await _drain(client, region), PHARMACY) == (4.0, 0.0, 4.0)


async def test_a_move_older_than_the_window_is_not_counted(
    consumer: EventConsumer, client: httpx.AsyncClient, region: str
) -> None:
    """29 days ago is out of the 28-day window; 27 days ago and next week (booked
    already, as matching counts it) are in."""
    now = _now()
    for days, hours in ((-29, 8), (-27, 3), (7, 1.5)):
        move = _move(PHARMACY, GP, hours, at=now + timedelta(days=days))
        assert await consumer.handle(*_message(move, region))
    assert _figures(await _drain(client, region), PHARMACY) == (4.5, 0.0, 4.5)


async def test_a_drain_alert_shows_on_its_sector(
    consumer: EventConsumer, client: httpx.AsyncClient, region: str
) -> None:
    """A drain alert shows on its sector, with its share of the cap and when; an older
    alert arriving late does not replace it."""
    await consumer.handle(*_message(_move(PHARMACY, GP, 9), region))
    raised = _now()
    await consumer.handle(*_message(_alert(PHARMACY, 90.0), region, occurred_at=raised))
    late = raised - timedelta(hours=1)
    await consumer.handle(*_message(_alert(PHARMACY, 81.0), region, occurred_at=late))
    sectors = _sectors(await _drain(client, region))
    alert = sectors[PHARMACY]["alert"]
    assert alert is not None
    assert (alert["used_pct"], alert["cap_pct"], alert["standing"]) == (90.0, 10.0, True)
    assert datetime.fromisoformat(alert["raised_at"]) == raised
    assert sectors[GP]["alert"] is None


async def test_a_clearing_read_before_its_alert_still_ends_it(
    consumer: EventConsumer, client: httpx.AsyncClient, region: str
) -> None:
    """Matching raised an alert and then cleared it; read the other way round (a replay
    after a broker loss), the alert still shows as past, not standing. An alert raised
    after the clearing stands."""
    await consumer.handle(*_message(_move(PHARMACY, GP, 9), region))
    raised = _now() - timedelta(minutes=10)
    cleared = SectorDrainCleared(**_alert(PHARMACY, 70.0).model_dump())
    await consumer.handle(*_message(cleared, region, occurred_at=raised + timedelta(minutes=5)))
    await consumer.handle(*_message(_alert(PHARMACY, 90.0), region, occurred_at=raised))
    alert = _sectors(await _drain(client, region))[PHARMACY]["alert"]
    assert alert is not None
    assert alert["standing"] is False
    await consumer.handle(*_message(_alert(PHARMACY, 95.0), region))
    alert = _sectors(await _drain(client, region))[PHARMACY]["alert"]
    assert (alert["used_pct"], alert["standing"]) == (95.0, True)


async def test_an_alert_no_longer_stands_once_the_sector_takes_in_more(
    consumer: EventConsumer, client: httpx.AsyncClient, region: str
) -> None:
    """Matching says nothing when an alert clears; once the sector takes in more hours
    than it lends, the monitor shows the alert as past, not standing."""
    await consumer.handle(*_message(_move(PHARMACY, GP, 9), region))
    await consumer.handle(*_message(_alert(PHARMACY, 90.0), region))
    await consumer.handle(*_message(_move(GP, PHARMACY, 10), region))
    alert = _sectors(await _drain(client, region))[PHARMACY]["alert"]
    assert alert is not None
    assert alert["standing"] is False


async def test_a_policy_change_sets_the_caps(
    consumer: EventConsumer, client: httpx.AsyncClient, region: str
) -> None:
    """policy.changed sets each sector's cap; an older policy arriving late is ignored."""
    now = _now()
    await consumer.handle(*_message(_policy(community_pharmacy=25, dentistry=12.5), region))
    stale = _policy(community_pharmacy=5)
    await consumer.handle(*_message(stale, region, occurred_at=now - timedelta(hours=1)))
    picture = await _drain(client, region)
    caps = {sector: s["cap_pct"] for sector, s in _sectors(picture).items()}
    assert caps == {GP: 10.0, PHARMACY: 25.0, DENTAL: 12.5, "optometry": 10.0,
                    "community_nursing": 10.0}  # fmt: skip
    assert picture["policy"]["alert_share"] == 0.8
    assert "changed_by" not in picture["policy"]  # the monitor shows figures, not people


async def test_every_region_when_none_is_named(
    consumer: EventConsumer, client: httpx.AsyncClient
) -> None:
    """Without ?region= every region with moves, alerts or a policy is listed, in code
    order; a region asked for by name is answered even if nothing happened there."""
    first, second = sorted(_region() for _ in range(2))
    await consumer.handle(*_message(_move(PHARMACY, GP, 2), first))
    await consumer.handle(*_message(_policy(), second))
    response = await client.get("/api/drain")
    assert response.status_code == 200
    listed = [r["region"] for r in response.json()]
    assert listed.index(first) < listed.index(second)
    quiet = await _drain(client, _region())
    assert quiet["matrix"] == []
    assert len(quiet["sectors"]) == len(Sector)


@pytest.mark.parametrize("bad", ["qop", "QO", "QOPX", "Q-P"])
async def test_a_bad_region_code_is_a_problem_naming_the_field(
    client: httpx.AsyncClient, bad: str
) -> None:
    """A region code that isn't three capitals or digits: 422 problem+json, region named."""
    response = await client.get("/api/drain", params={"region": bad})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert (problem["status"], problem["instance"]) == (422, "/api/drain")
    assert [e["field"] for e in problem["errors"]] == ["query.region"]


def _region() -> str:
    return "".join(random.choices(string.ascii_uppercase + string.digits, k=3))


@pytest.fixture
async def page_pool(infra: Infra) -> AsyncIterator[asyncpg.Pool]:
    """A monitor schema of the page test's own, so the page shows only its region."""
    schema = "monitor_page_" + "".join(random.choices(string.ascii_lowercase, k=8))
    p = await _pool(infra, schema)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
async def monitor_url(page_pool: asyncpg.Pool) -> AsyncIterator[str]:
    """The monitor's routes served by uvicorn in this process, on a free port."""
    async with served(_app(page_pool), lifespan="off") as url:
        yield url


@pytest.mark.browser
async def test_the_page_shows_the_net_hours_and_the_alert_badge(
    page_pool: asyncpg.Pool, monitor_url: str, region: str, artifacts_dir: Path
) -> None:
    """In chromium at desktop and phone sizes: the drain panel shows each sector's net
    hours and cap, a red badge on the alerted sector only, and the from → to table,
    without sideways scrolling."""
    consumer = _consumer(page_pool)
    await consumer.handle(*_message(_policy(community_pharmacy=20), region))
    for move in (
        _move(PHARMACY, GP, 4),
        _move(PHARMACY, GP, 7.5),
        _move(PHARMACY, DENTAL, 3.5),
        _move(GP, PHARMACY, 2),
        _move("community_nursing", GP, 6),
        _move(GP, "optometry", 1),
    ):
        await consumer.handle(*_message(move, region))
    await consumer.handle(*_message(_alert(PHARMACY, 87.5), region))
    session = {"name": COOKIE, "value": await _national_session(page_pool), "url": monitor_url}

    async with async_playwright() as p:
        browser = await launch_chromium(p)
        try:
            for name, width, height in (("desktop", 1200, 800), ("phone", 390, 844)):
                page = await browser.new_page(viewport={"width": width, "height": height})
                await page.context.add_cookies([session])
                await page.goto(monitor_url + "/")
                net = page.get_by_test_id(f"drain-{region}-{PHARMACY}-net")
                await net.wait_for(timeout=15000)
                assert (await net.inner_text()).strip() == "13.0 h out"
                gp_net = page.get_by_test_id(f"drain-{region}-{GP}-net")
                assert (await gp_net.inner_text()).strip() == "14.5 h in"
                cap = page.get_by_test_id(f"drain-{region}-{PHARMACY}-cap")
                assert (await cap.inner_text()).strip() == "20%"
                badge = page.get_by_test_id(f"drain-alert-{region}-{PHARMACY}")
                assert await badge.is_visible()
                assert "87.5% of cap" in await badge.inner_text()
                assert await page.get_by_test_id(f"drain-alert-{region}-{GP}").count() == 0
                cell = page.get_by_test_id(f"drain-cell-{region}-{PHARMACY}-{GP}")
                assert (await cell.inner_text()).strip() == "11.5"
                heading = page.get_by_role("heading", name="Moves between sectors (last 28 days)")
                assert await heading.is_visible()
                overflow = await page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                # Taken before the last check, so a page that scrolls sideways is on file.
                await page.screenshot(
                    path=str(artifacts_dir / f"monitor-drain-{name}.png"), full_page=True
                )
                assert overflow <= 0, f"{name}: {overflow}px of sideways scrolling"
                await page.close()
        finally:
            await browser.close()
