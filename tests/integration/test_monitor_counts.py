"""The monitor over the real database: events counted through the shared consumer,
once per delivery and once per session, and served as JSON and as the page."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from services.monitor import SCHEMA, SERVICE, http, viewers
from services.monitor.handlers import handlers
from services.monitor.settings import MonitorSettings
from services.monitor.signin import COOKIE
from shared.db.pool import create_pool
from shared.events import EVENTS, new_envelope, topic_for
from shared.messaging.consumer import EventConsumer
from shared.runtime import migrate
from tests.conftest import Infra
from tests.integration.helpers import settings_for

pytestmark = pytest.mark.integration

MIGRATIONS = Path(http.__file__).with_name("migrations")


@dataclass
class RecordingPublisher:
    """Stands in for Kafka as the dead-letter publisher; keeps what it was given."""

    sent: list[dict[str, Any]] = field(default_factory=list)

    async def publish(self, *, topic: str, key: str, value: bytes, headers: dict[str, str]) -> None:
        """Record one dead letter."""
        self.sent.append({"topic": topic, "key": key, "value": value, "headers": headers})


@pytest.fixture
async def pool(infra: Infra) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the monitor schema, migrated (migrations are idempotent across tests)."""
    settings = settings_for(MonitorSettings, infra, "")
    await migrate(settings, schema=SCHEMA, migrations_dir=MIGRATIONS)
    p = await create_pool(settings.database_url, SCHEMA)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
def dead_letters() -> RecordingPublisher:
    """Dead letters the consumer sends, for the test to inspect."""
    return RecordingPublisher()


@pytest.fixture
def consumer(pool: asyncpg.Pool, dead_letters: RecordingPublisher) -> EventConsumer:
    """The consumer the service runs, minus Kafka: tests hand it messages directly."""
    return EventConsumer(
        service=SERVICE, pool=pool, dead_letters=dead_letters, handlers=handlers(), topic_prefix=""
    )


# One start for every event of the module: the monitor keeps a fill only if it was made
# for the session's time as posted, so a start read afresh per event (crossing a second
# between the post and the fill) made the fill look stale.
START = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)


def _data(event_type: str, session_id: uuid.UUID, sector: str) -> dict[str, Any]:
    """Valid data for ``event_type``: the monitor reads only the session and its sector.

    The rest is filler, picked by name for the fields the event's model declares, so
    the test follows the contracts as they change (a field unknown here fails by name).
    """
    start = START
    filler: dict[str, Any] = {
        "session_id": session_id,
        "sector": sector,
        "clinician_home_sector": sector,
        "home_sector": sector,
        "offer_id": uuid.uuid4(),
        "clinician_id": uuid.uuid4(),
        "organisation": "A81001",
        "posted_by": "A81001",
        "site_name": "Hilltop Surgery",
        "profession": "gp",
        "role": "gp",
        "skills": [],
        "rate_pence_per_hour": None,
        "urgency": "routine",
        "starts_at": start,
        "ends_at": start + timedelta(hours=4),
        "expires_at": start - timedelta(days=1),
        "latitude": 53.48,
        "longitude": -2.24,
        "reasons": ["test"],
        "warnings": [],
        "imd_decile": 3,
        "place": "Salford",
        "pcn": None,
    }
    return {name: filler[name] for name in EVENTS[event_type].model.model_fields}


def _message(
    event_type: str, region: str, session_id: uuid.UUID, sector: str = "general_practice"
) -> tuple[str, bytes, bytes]:
    """(topic, key, body) of one event, as Kafka would hand it to the consumer."""
    spec = EVENTS[event_type]
    envelope = new_envelope(
        spec.model.model_validate(_data(event_type, session_id, sector)),
        event_type=event_type,
        schema_version=spec.version,
        region=region,
        producer=spec.producer,
    )
    return topic_for(event_type), region.encode(), envelope.model_dump_json().encode()


async def _counts(pool: asyncpg.Pool, region: str) -> dict[str, tuple[int, int, int]]:
    rows = await pool.fetch(
        "SELECT sector, posted, offered, filled FROM sector_counts WHERE region = $1", region
    )
    return {r["sector"]: (r["posted"], r["offered"], r["filled"]) for r in rows}


async def test_each_event_moves_its_sectors_counter(
    consumer: EventConsumer, pool: asyncpg.Pool, region: str
) -> None:
    """Posted, offered and filled each add one to their own counter, per sector."""
    gp, pharmacy = uuid.uuid4(), uuid.uuid4()
    for event_type in ("session.posted", "session.offered", "session.filled"):
        assert await consumer.handle(*_message(event_type, region, gp))
    assert await consumer.handle(
        *_message("session.posted", region, pharmacy, "community_pharmacy")
    )
    assert await _counts(pool, region) == {
        "general_practice": (1, 1, 1),
        "community_pharmacy": (1, 0, 0),
    }


async def test_a_redelivered_event_counts_once(
    consumer: EventConsumer, pool: asyncpg.Pool, region: str
) -> None:
    """The same message delivered twice (at-least-once Kafka) moves the counter once."""
    message = _message("session.posted", region, uuid.uuid4())
    assert await consumer.handle(*message) is True
    assert await consumer.handle(*message) is False
    assert await _counts(pool, region) == {"general_practice": (1, 0, 0)}


async def test_a_session_offered_twice_is_one_session_offered(
    consumer: EventConsumer, pool: asyncpg.Pool, region: str
) -> None:
    """Two distinct offers of one session (the first lapsed) count one offered session,
    though both show in the latest activity."""
    session = uuid.uuid4()
    await consumer.handle(*_message("session.posted", region, session))
    await consumer.handle(*_message("session.offered", region, session))
    await consumer.handle(*_message("session.offered", region, session))
    assert await _counts(pool, region) == {"general_practice": (1, 1, 0)}
    offers = await pool.fetchval(
        "SELECT count(*) FROM recent_events WHERE region = $1 AND stage = 'offered'", region
    )
    assert offers == 2


async def test_an_unreadable_message_is_dead_lettered_and_not_counted(
    consumer: EventConsumer, dead_letters: RecordingPublisher, pool: asyncpg.Pool, region: str
) -> None:
    """A body that isn't a valid envelope goes to the dead-letter topic; nothing counts."""
    assert await consumer.handle("session.posted", region.encode(), b"{not json") is False
    assert [d["topic"] for d in dead_letters.sent] == ["deadletter"]
    assert await _counts(pool, region) == {}


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
async def client(pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    """The monitor's router on a bare app whose runtime is only a pool (no Kafka), signed
    in as a national viewer."""
    app = FastAPI()
    app.include_router(http.router)
    app.state.runtime = SimpleNamespace(pool=pool)
    transport = httpx.ASGITransport(app=app)
    cookies = {COOKIE: await _national_session(pool)}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://monitor", cookies=cookies
    ) as c:
        yield c


async def test_api_counts_lists_every_sector_of_a_region(
    consumer: EventConsumer, client: httpx.AsyncClient, region: str
) -> None:
    """GET /api/counts: the region's five sectors, counted ones with a fill rate."""
    session = uuid.uuid4()
    for event_type in ("session.posted", "session.offered", "session.filled"):
        await consumer.handle(*_message(event_type, region, session, "dentistry"))
    await consumer.handle(*_message("session.posted", region, uuid.uuid4(), "dentistry"))
    response = await client.get("/api/counts")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    rows = {r["sector"]: r for r in response.json() if r["region"] == region}
    assert len(rows) == 5
    assert rows["dentistry"] == {
        "region": region,
        "sector": "dentistry",
        "sector_label": "Dentistry",
        "posted": 2,
        "offered": 1,
        "filled": 1,
        "cancelled": 0,
        "unfilled": 0,
        "late_cancelled": 0,
        "late_given_up": 0,
        "fill_rate": 0.5,
    }
    assert (rows["optometry"]["posted"], rows["optometry"]["fill_rate"]) == (0, None)


async def test_api_recent_lists_the_newest_events_first(
    consumer: EventConsumer, client: httpx.AsyncClient, region: str
) -> None:
    """GET /api/recent: what happened, newest first, without session or clinician ids."""
    session = uuid.uuid4()
    await consumer.handle(*_message("session.posted", region, session))
    await consumer.handle(*_message("session.filled", region, session))
    events = [e for e in (await client.get("/api/recent")).json() if e["region"] == region]
    assert [e["stage"] for e in events] == ["filled", "posted"]
    assert set(events[0]) == {"stage", "region", "sector", "sector_label", "occurred_at"}
    assert (await client.get("/api/recent", params={"limit": 0})).status_code == 422


async def test_the_page_is_self_contained_and_polls_the_counts(
    client: httpx.AsyncClient,
) -> None:
    """GET /: an English HTML page with the agreed title, no external assets, that
    polls /api/counts and gives count cells stable test ids."""
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert '<html lang="en">' in page
    assert "<title>Fairshare — ICB monitor</title>" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert 'fetch(url, { cache: "no-store" })' in page
    assert 'getJson("/api/counts")' in page
    assert "count-${id}-${kind}" in page
