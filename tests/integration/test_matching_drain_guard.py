"""The drain guard on the real database: policy, held-back sessions, the ledger, alerts,
transfers and the debounced planner."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.matching import SCHEMA, planning, repository
from services.matching.admin import set_policy
from services.matching.domain import Window
from services.matching.handlers import handlers
from shared.catalogue import Profession, Role, Sector
from shared.events import ClinicianTransferred, Envelope, OfferAccepted, new_envelope
from shared.messaging.emitter import Emitter
from tests.factories import session_posted
from tests.integration.matching_support import pool

__all__ = ["pool"]  # the fixture, shared

pytestmark = pytest.mark.integration

START = (datetime.now(UTC) + timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
CP = Sector.COMMUNITY_PHARMACY


async def _outbox(pool: asyncpg.Pool, event_type: str, region: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT payload FROM outbox WHERE event_type = $1 AND message_key = $2 ORDER BY id",
        event_type,
        region,
    )
    return [r["payload"]["data"] for r in rows]


def _envelope(data: Any, event_type: str, region: str) -> Envelope[Any]:
    return new_envelope(data, event_type=event_type, schema_version=1, region=region, producer="t")


async def test_the_cap_holds_a_pharmacist_back_and_the_ledger_counts_the_move(
    pool: asyncpg.Pool, region: str
) -> None:
    """A community pharmacist may fill a PCN session only while community pharmacy's net
    outflow stays within its cap: held back (and told why) under a 5% cap, offered under
    20%; the fill is recorded once in the ledger; tightening the cap to 10% puts the
    sector past 80% of it, which raises one drain alert, not one per check."""
    emitter = Emitter(producer="matching", schema=SCHEMA)
    pharmacist = uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        await set_policy(conn, region, emitter=emitter, changed_by="test", caps={CP: 5.0})
        # 40 hours offered over the window: a 5% cap is 2 hours, 20% is 8, 10% is 4.
        for day in range(4):
            await repository.insert_window(
                conn,
                region=region,
                availability_id=uuid.uuid4(),
                window=Window(
                    pharmacist,
                    Profession.PHARMACIST,
                    CP,
                    START + timedelta(days=day),
                    START + timedelta(days=day, hours=10),
                    latitude=53.48,
                    longitude=-2.24,
                ),
            )
        session = session_posted(
            START + timedelta(hours=1), role=Role.CLINICAL_PHARMACIST, imd_decile=2, place="Salford"
        )
        await repository.insert_session(conn, region, session)
        assert await planning.replan(conn, region=region, emitter=emitter) == 0
    [held] = await _outbox(pool, "session.unmatched", region)
    assert held["why"] == "held_by_drain_guard"
    assert "cap" in held["detail"]
    assert (await _outbox(pool, "policy.changed", region))[0]["cap_pct"][CP.value] == 5.0

    async with pool.acquire() as conn, conn.transaction():
        await set_policy(conn, region, emitter=emitter, changed_by="test", caps={CP: 20.0})
        assert await planning.run_request(conn, region=region, emitter=emitter) == 1
    offer = await pool.fetchrow("SELECT * FROM offers WHERE session_id = $1", session.session_id)
    assert offer is not None
    assert any("outside your home sector" in r for r in offer["reasons"])
    accepted = _envelope(
        OfferAccepted(offer_id=offer["id"], session_id=session.session_id, clinician_id=pharmacist),
        "offer.accepted",
        region,
    )
    for _ in range(2):  # redelivered: booked and counted once
        async with pool.acquire() as conn, conn.transaction():
            await planning.confirm(conn, envelope=accepted, emitter=emitter)
    [move] = await _outbox(pool, "move.recorded", region)
    assert (move["from_sector"], move["to_sector"], move["place"], move["hours"]) == (
        CP.value,
        Sector.GENERAL_PRACTICE.value,
        "Salford",
        4.0,
    )
    assert await _outbox(pool, "sector.drain_alert", region) == []

    async with pool.acquire() as conn, conn.transaction():
        await set_policy(conn, region, emitter=emitter, changed_by="test", caps={CP: 10.0})
        await set_policy(conn, region, emitter=emitter, changed_by="test", alert_share=0.9)
    [alert] = await _outbox(pool, "sector.drain_alert", region)
    assert alert["sector"] == CP.value
    assert alert["used_pct"] == 100.0
    assert len(await _outbox(pool, "policy.changed", region)) == 4
    assert await _outbox(pool, "sector.drain_cleared", region) == []
    async with pool.acquire() as conn, conn.transaction():
        await set_policy(conn, region, emitter=emitter, changed_by="test", caps={CP: 20.0})
    [cleared] = await _outbox(pool, "sector.drain_cleared", region)
    assert (cleared["sector"], cleared["used_pct"]) == (CP.value, 50.0)


async def test_a_transfer_counts_as_a_permanent_move_once(pool: asyncpg.Pool, region: str) -> None:
    """clinician.transferred adds the policy's hours to the ledger (once, however often it
    is delivered) and rehomes the clinician's windows."""
    emitter = Emitter(producer="matching", schema=SCHEMA)
    table = handlers(emitter)
    clinician, colleague = uuid.uuid4(), uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        for who, hours in ((clinician, 8), (colleague, 1000)):
            await repository.insert_window(
                conn,
                region=region,
                availability_id=uuid.uuid4(),
                window=Window(
                    who, Profession.PHARMACIST, CP, START, START + timedelta(hours=hours)
                ),
            )
    moved = _envelope(
        ClinicianTransferred(
            clinician_id=clinician,
            profession=Profession.PHARMACIST,
            from_sector=CP,
            to_sector=Sector.GENERAL_PRACTICE,
            from_organisation="FVR79",
            to_organisation="U12345",
        ),
        "clinician.transferred",
        region,
    )
    for _ in range(2):
        async with pool.acquire() as conn, conn.transaction():
            await table["clinician.transferred"](conn, moved)
    [move] = await _outbox(pool, "move.recorded", region)
    assert (move["kind"], move["hours"]) == ("transfer", 150.0)
    homes = await pool.fetch(
        "SELECT DISTINCT home_sector FROM availability WHERE clinician_id = $1", clinician
    )
    assert [r["home_sector"] for r in homes] == [Sector.GENERAL_PRACTICE.value]
    # 150 hours out of the 1,000 left: past 80% of the default 10% cap (100 hours).
    [alert] = await _outbox(pool, "sector.drain_alert", region)
    assert alert["sector"] == CP.value


async def test_a_burst_of_events_is_planned_once_together(pool: asyncpg.Pool, region: str) -> None:
    """Ten sessions posted in a burst make one plan request spanning them all; carried
    out, it offers the one clinician the most needed session (an urgent one in a
    deprived area), not the first posted."""
    emitter = Emitter(producer="matching", schema=SCHEMA)
    table = handlers(emitter, debounce_s=60)
    gp = uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        await repository.insert_window(
            conn,
            region=region,
            availability_id=uuid.uuid4(),
            window=Window(
                gp,
                Profession.GP,
                Sector.GENERAL_PRACTICE,
                START - timedelta(hours=1),
                START + timedelta(hours=6),
                latitude=53.48,
                longitude=-2.24,
            ),
        )
    sessions = [session_posted(START, imd_decile=9) for _ in range(9)]
    needed = session_posted(START, imd_decile=1, urgency="urgent")
    for s in [*sessions, needed]:
        async with pool.acquire() as conn, conn.transaction():
            await table["session.posted"](conn, _envelope(s, "session.posted", region))
    [request] = await pool.fetch("SELECT * FROM plan_requests WHERE region = $1", region)
    assert (request["span_start"], request["span_end"]) == (START, START + timedelta(hours=4))
    assert request["due_at"] > datetime.now(UTC) + timedelta(seconds=50)
    assert await pool.fetchval("SELECT count(*) FROM offers WHERE region = $1", region) == 0
    async with pool.acquire() as conn, conn.transaction():
        assert await planning.run_request(conn, region=region, emitter=emitter) == 1
    [offer] = await pool.fetch("SELECT session_id FROM offers WHERE region = $1", region)
    assert offer["session_id"] == needed.session_id
    unmatched = await _outbox(pool, "session.unmatched", region)
    assert {u["why"] for u in unmatched} == {"clinicians_taken"}
    assert len(unmatched) == 9
