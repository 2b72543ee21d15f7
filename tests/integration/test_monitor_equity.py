"""Equity over the real database: sessions fed through the shared consumer, each counted
by where its organisation is (deprivation quintile, place, PCN) as vacancies last said
it, as it stands now; /api/equity and its export agree; events read late, out of order
or twice give the same figures. (The page's equity section is checked in the browser by
test_monitor_summary.py.)"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from services.monitor import equity_routes, http, viewers
from services.monitor.signin import COOKIE
from services.monitor.summary import Period, period_bounds
from shared.events import EVENTS, new_envelope, topic_for
from shared.http.problems import install_problem_handlers
from shared.messaging.consumer import EventConsumer
from tests.integration.test_monitor_summary import FILL, Session, consumer, move, pool

pytestmark = pytest.mark.integration

__all__ = ["consumer", "pool"]  # the summary tests' fixtures, used here too

GP, PHARMACY = "general_practice", "community_pharmacy"


@pytest.fixture
async def client(pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    """The equity routes and the drain on a bare app (a pool, no Kafka), signed in as a national
    viewer (test_monitor_access.py checks who else they refuse)."""
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(equity_routes.router)
    app.include_router(http.router)
    app.state.runtime = SimpleNamespace(pool=pool)
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        viewer = await viewers.add_viewer(conn, name="Analyst", region=None, national=True)
        code = await viewers.invite(conn, viewer.id, now=now)
    signed = await viewers.sign_in(pool, code, now=now, session_ttl=timedelta(hours=1))
    assert signed is not None
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://monitor",
        cookies={COOKIE: signed[1]},
    ) as c:
        yield c


def _nine() -> datetime:
    """09:00 today in England."""
    return period_bounds(Period.TODAY, datetime.now(UTC))[0] + timedelta(hours=9)


async def _equity(client: httpx.AsyncClient, region: str, **params: str) -> dict[str, Any]:
    response = await client.get("/api/equity", params={"region": region, **params})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    (answer,) = response.json()
    assert answer["region"] == region
    return dict(answer)


def _figures(groups: list[dict[str, Any]]) -> dict[str | None, tuple[int, int, int]]:
    """Each group's (wanted, filled, unfilled), by key."""
    return {g["key"]: (g["wanted"], g["filled"], g["unfilled"]) for g in groups}


async def _scripted(consumer: EventConsumer, region: str, *, reverse: bool = False) -> None:
    """Today, in ``region``:

    - most deprived (decile 1), Bolton, PCN U12345: one filled, one open, one filled
      and then given up (not filled now), one cancelled (not wanted);
    - decile 2 in Oldham, amended to decile 8 in Bury (the organisation's area as
      vacancies last said it), filled;
    - least deprived (decile 10), Salford: two filled; one at a PCN itself (U54321,
      which names no PCN of its own), started unfilled;
    - a pharmacy session with no area recorded, filled.

    ``reverse`` feeds each session's events last first, and every event twice.
    """
    t0, start = datetime.now(UTC) - timedelta(hours=6), _nine()
    area: dict[str, Any] = {"imd_decile": 1, "place": "Bolton", "pcn": "U12345"}
    plans: list[tuple[Session, list[tuple[str, dict[str, Any]]]]] = []

    def plan(session: Session, *steps: str, **given: Any) -> list[tuple[str, dict[str, Any]]]:
        steps_given = [(step, given) for step in steps]
        plans.append((session, steps_given))
        return steps_given

    plan(Session(region, GP, start, 4), *FILL, **area)
    plan(Session(region, GP, start, 4), "session.posted", **area)
    given_up = Session(region, GP, start, 4)
    plan(given_up, *FILL, "booking.cancelled", **area, late=True)
    plan(Session(region, GP, start, 4), "session.posted", "session.cancelled", **area)
    moved = Session(region, GP, start, 4)
    steps = plan(moved, "session.posted", imd_decile=2, place="Oldham", pcn=None)
    steps += [("session.amended", {"imd_decile": 8, "place": "Bury", "pcn": None})]
    steps += [(step, {}) for step in FILL[1:]]
    salford = {"imd_decile": 10, "place": "Salford", "pcn": None}
    for _ in range(2):
        plan(Session(region, GP, start, 3), *FILL, **salford)
    own = {**salford, "organisation": "U54321", "posted_by": "U54321"}
    plan(Session(region, GP, start, 2), "session.posted", "session.unfilled", **own)
    plan(Session(region, PHARMACY, start, 5), *FILL, imd_decile=None, place=None, pcn=None)

    for session, events in plans:
        said = [
            (step, t0 + timedelta(minutes=10 * i), given) for i, (step, given) in enumerate(events)
        ]
        for step, at, given in reversed(said) if reverse else said:
            for _ in range(2 if reverse else 1):
                assert await consumer.handle(*session.message(step, at=at, **given)), step


async def test_fill_rate_by_deprivation_place_and_pcn_as_sessions_stand_now(
    consumer: EventConsumer, client: httpx.AsyncClient, region: str
) -> None:
    """The scripted day of ``_scripted``: the most deprived fifth has 3 wanted, 1 filled
    (33%); the least deprived 3 wanted, 2 filled, 1 unfilled; the amended session counts
    in quintile 4 and Bury, not quintile 1 or Oldham; the pharmacy session under "not
    recorded" in each breakdown; the gap is 67 - 33 = 33.3 points. The export has the
    same figures, a row per group."""
    await _scripted(consumer, region)
    q = await _equity(client, region, period="today")

    assert _figures(q["quintiles"]) == {
        "1": (3, 1, 0),
        "2": (0, 0, 0),
        "3": (0, 0, 0),
        "4": (1, 1, 0),
        "5": (3, 2, 1),
        None: (1, 1, 0),
    }
    assert [g["label"] for g in q["quintiles"][::5]] == ["1 · most deprived", "Not recorded"]
    most = q["quintiles"][0]
    assert (most["posted"], most["cancelled"], most["fill_rate"]) == (4, 1, pytest.approx(1 / 3))
    assert q["quintiles"][4]["hours_filled"] == pytest.approx(6.0)
    assert q["deprivation_gap_points"] == pytest.approx(33.3)
    assert _figures(q["places"]) == {
        "Bolton": (3, 1, 0),
        "Bury": (1, 1, 0),
        "Salford": (3, 2, 1),
        None: (1, 1, 0),
    }
    assert [g["label"] for g in q["places"]] == ["Bolton", "Bury", "Salford", "Not recorded"]
    assert _figures(q["pcns"]) == {
        "U12345": (3, 1, 0),
        "U54321": (1, 0, 1),
        None: (4, 4, 0),
    }
    assert 'role="img"' in q["svg"]
    assert "Bolton: 33% filled (1 of 3 wanted)" in q["svg"]
    assert "Oldham" not in q["svg"]

    # Sessions of another day are not today's.
    tomorrow = (await _equity(client, region, period="custom", **_days(1)))["quintiles"]
    assert all(g["posted"] == 0 for g in tomorrow)

    exported = await client.get("/api/export/equity", params={"region": region, "period": "today"})
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"].startswith("text/csv")
    assert f"fairshare-{region}-equity-" in exported.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == len(q["quintiles"]) + len(q["places"]) + len(q["pcns"])
    bolton = next(r for r in rows if (r["breakdown"], r["group"]) == ("place", "Bolton"))
    assert (bolton["wanted"], bolton["filled"], bolton["fill_rate"]) == ("3", "1", "0.3333")
    unknown = next(r for r in rows if (r["breakdown"], r["group"]) == ("pcn", ""))
    assert (unknown["label"], unknown["filled"]) == ("No PCN recorded", "4")
    as_json = await client.get(
        "/api/export/equity", params={"region": region, "period": "today", "format": "json"}
    )
    assert as_json.headers["content-type"].startswith("application/json")
    assert [(r["breakdown"], r["group"], r["filled"]) for r in json.loads(as_json.text)] == [
        (r["breakdown"], r["group"] or None, int(r["filled"])) for r in rows
    ]


def _days(ahead: int) -> dict[str, str]:
    day = (_nine() + timedelta(days=ahead)).date().isoformat()
    return {"from": day, "to": day}


async def test_events_read_out_of_order_and_twice_give_the_same_equity(
    consumer: EventConsumer, client: httpx.AsyncClient, region: str
) -> None:
    """The same day fed last event first, and every event twice (new event ids, so the
    inbox does not drop them), into a second region: every figure is the same."""
    other = ("Y" if region[0] == "Z" else "Z") + region[1:]
    await _scripted(consumer, region)
    await _scripted(consumer, other, reverse=True)
    ordered, shuffled = await _equity(client, region), await _equity(client, other)
    for key in ("quintiles", "places", "pcns", "deprivation_gap_points"):
        assert shuffled[key] == ordered[key], key


# --- The cap in hours, where matching has said its base ---


def _drain(region: str, event_type: str, sector: str, offered: float, at: datetime) -> Any:
    """(topic, key, body) of matching's ``event_type`` (an alert or a clearing)."""
    spec = EVENTS[event_type]
    data = spec.model(
        sector=sector,
        net_out_hours=9.0,
        offered_hours=offered,
        cap_pct=10.0,
        used_pct=90.0,
        window_days=28,
    )
    envelope = new_envelope(
        data, event_type=event_type, schema_version=1, region=region, producer="matching"
    ).model_copy(update={"occurred_at": at})
    return topic_for(event_type), region.encode(), envelope.model_dump_json().encode()


async def test_the_cap_in_hours_is_of_the_base_matching_said_last_whatever_the_order(
    consumer: EventConsumer, client: httpx.AsyncClient, region: str
) -> None:
    """Pharmacy: an alert counted 100 h offered, its clearing later 120 h (read first):
    the cap is 10% of 120 = 12 h, 6 h left after 6 h out. GP has no base: hours null.
    Dentistry's only base is 30 days old, older than the window: null too."""
    now = datetime.now(UTC)
    assert await consumer.handle(*_drain(region, "sector.drain_cleared", PHARMACY, 120, now))
    earlier = now - timedelta(hours=2)
    assert await consumer.handle(*_drain(region, "sector.drain_alert", PHARMACY, 100, earlier))
    old = now - timedelta(days=30)
    assert await consumer.handle(*_drain(region, "sector.drain_alert", "dentistry", 50, old))
    assert await consumer.handle(*move(region, PHARMACY, GP, 6))

    response = await client.get("/api/drain", params={"region": region})
    assert response.status_code == 200, response.text
    (drain,) = response.json()
    sectors = {s["sector"]: s for s in drain["sectors"]}
    pharmacy = sectors[PHARMACY]
    assert (pharmacy["cap_hours"], pharmacy["headroom_hours"]) == (12.0, 6.0)
    assert pharmacy["cap_base"]["offered_hours"] == 120
    assert datetime.fromisoformat(pharmacy["cap_base"]["counted_at"]) == now
    for sector in (GP, "dentistry"):
        assert (sectors[sector]["cap_hours"], sectors[sector]["cap_base"]) == (None, None)
