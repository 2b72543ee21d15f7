"""Issue 3 over the real database and broker: amendments, cancellations, batches, PCN
sites, secret rotation, the read API, limits, and sessions that start unfilled."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI

from services.vacancies import SCHEMA, admin
from services.vacancies.sweeps import close_unfilled
from shared.catalogue import Sector
from shared.db.pool import connect
from shared.events import SessionFilled, SessionUnmatched
from tests.conftest import Infra
from tests.integration.vacancies_support import (
    deliver_event,
    delivery,
    outbox_events,
    post,
    register,
    running_app,
    session_data,
    signed,
)

pytestmark = pytest.mark.integration


def _filled(session_id: str, data: dict[str, str], clinician: uuid.UUID) -> SessionFilled:
    return SessionFilled(
        session_id=uuid.UUID(session_id),
        offer_id=uuid.uuid4(),
        clinician_id=clinician,
        organisation="A81001",
        sector=Sector.GENERAL_PRACTICE,
        clinician_home_sector=Sector.COMMUNITY_PHARMACY,
        starts_at=datetime.fromisoformat(data["starts_at"]),
        ends_at=datetime.fromisoformat(data["ends_at"]),
    )


async def test_amending_a_filled_session_releases_the_clinician(
    infra: Infra, topic_prefix: str, region: str
) -> None:
    """Same external id, new time: one session, open again, and `session.amended` names
    the released clinician; a notes-only change after that keeps everything."""
    async with running_app(infra, topic_prefix) as (app, client):
        ods, secret, _ = await register(infra, region)
        data = session_data()
        first = await post(client, ods, secret, "session.posted", data)
        assert first.status_code == 202
        session_id = first.json()["session_id"]
        clinician = uuid.uuid4()
        await deliver_event(app, "session.filled", _filled(session_id, data, clinician), region)

        moved = session_data(days=4)
        again = await post(client, ods, secret, "session.posted", moved)
        assert again.status_code == 200
        assert again.json() == {
            "external_id": "rota-1",
            "outcome": "amended",
            "session_id": session_id,
            "status": "open",
        }
        [amended] = await outbox_events(app, "session.amended", session_id)
        assert amended["released_clinician_id"] == str(clinician)
        assert amended["starts_at"].startswith(moved["starts_at"][:16])

        noted = await post(client, ods, secret, "session.amended", {**moved, "notes": "Parking"})
        assert noted.json()["outcome"] == "amended"
        unchanged = await post(
            client, ods, secret, "session.amended", {**moved, "notes": "Parking"}
        )
        assert unchanged.json()["outcome"] == "unchanged"
        missing = await post(client, ods, secret, "session.amended", session_data("nope"))
        assert missing.status_code == 404
        assert missing.json()["errors"][0]["field"] == "data.external_id"
        assert (
            await app.state.runtime.pool.fetchval(
                "SELECT count(*) FROM sessions WHERE organisation = $1", ods
            )
            == 1
        )


async def test_cancelling_a_filled_session_needs_a_reason_and_late_is_recorded(
    infra: Infra, topic_prefix: str, region: str
) -> None:
    """Filled, no reason: 422 naming data.reason. With one: cancelled, late (within 48 h),
    the clinician named for the bank to tell. Amending it afterwards: 409."""
    async with running_app(infra, topic_prefix) as (app, client):
        ods, secret, _ = await register(infra, region)
        data = session_data(days=1)
        session_id = (await post(client, ods, secret, "session.posted", data)).json()["session_id"]
        clinician = uuid.uuid4()
        await deliver_event(app, "session.filled", _filled(session_id, data, clinician), region)

        bare = await post(client, ods, secret, "session.cancelled", {"external_id": "rota-1"})
        assert bare.status_code == 422
        assert bare.json()["errors"][0]["field"] == "data.reason"
        reason = {"external_id": "rota-1", "reason": "Surgery closed: burst pipe"}
        done = await post(client, ods, secret, "session.cancelled", reason)
        assert done.status_code == 200
        assert done.json()["status"] == "cancelled"
        [event] = await outbox_events(app, "session.cancelled", session_id)
        assert event["late"] is True
        assert event["released_clinician_id"] == str(clinician)
        assert event["reason"] == "Surgery closed: burst pipe"
        again = await post(client, ods, secret, "session.posted", data)
        assert again.status_code == 409


async def test_a_batch_answers_each_session_and_keeps_the_good_ones(
    infra: Infra, topic_prefix: str, region: str
) -> None:
    """Three sessions, two bad: each bad one names its field by index; the good one is stored."""
    async with running_app(infra, topic_prefix) as (app, client):
        ods, secret, _ = await register(infra, region)
        good = session_data("b-1")
        bad_role = session_data("b-2", role="wizard")
        bad_time = {**session_data("b-3"), "ends_at": good["starts_at"]}
        response = await post(
            client, ods, secret, "sessions.posted", {"sessions": [good, bad_role, bad_time]}
        )
        assert response.status_code == 200
        body = response.json()
        assert (body["accepted"], body["rejected"]) == (1, 2)
        outcomes = [r["outcome"] for r in body["results"]]
        assert outcomes == ["created", "rejected", "rejected"]
        assert body["results"][1]["errors"][0]["field"] == "data.sessions.1.role"
        assert body["results"][2]["errors"][0]["field"] == "data.sessions.2.ends_at"
        assert (
            await app.state.runtime.pool.fetchval(
                "SELECT count(*) FROM sessions WHERE organisation = $1", ods
            )
            == 1
        )
        too_many = await post(
            client,
            ods,
            secret,
            "sessions.posted",
            {"sessions": [session_data(f"x-{i}") for i in range(501)]},
        )
        assert too_many.status_code == 422


async def test_a_pcn_posts_for_its_member_practice_only(
    infra: Infra, topic_prefix: str, region: str
) -> None:
    """The event names the member practice as where it is worked, the PCN as poster, and
    the practice's PCN (the monitor's equity by PCN)."""
    async with running_app(infra, topic_prefix) as (app, client):
        pcn, secret, _ = await register(infra, region, ods=f"U{uuid.uuid4().int % 100000:05d}")
        member, _, _ = await register(infra, region, pcn=pcn)
        stranger, _, _ = await register(infra, region)
        ok = await post(client, pcn, secret, "session.posted", session_data(site=member))
        assert ok.status_code == 202
        [event] = await outbox_events(app, "session.posted", ok.json()["session_id"])
        assert (event["organisation"], event["posted_by"], event["pcn"]) == (member, pcn, pcn)
        refused = await post(
            client, pcn, secret, "session.posted", session_data("r2", site=stranger)
        )
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["field"] == "data.site"


async def test_rotated_secret_keeps_the_old_one_for_the_grace_period(
    infra: Infra, topic_prefix: str, region: str
) -> None:
    """After rotation both secrets verify; once the grace period is over only the new one."""
    async with running_app(infra, topic_prefix) as (_, client):
        ods, old, _ = await register(infra, region)
        conn = await connect(infra.dsn, SCHEMA)
        try:
            new = await admin.rotate_secret(conn, ods, grace=timedelta(hours=1))
        finally:
            await conn.close()
        assert (
            await post(client, ods, old, "session.posted", session_data("o"))
        ).status_code == 202
        assert (
            await post(client, ods, new, "session.posted", session_data("n"))
        ).status_code == 202
        conn = await connect(infra.dsn, SCHEMA)
        try:
            newer = await admin.rotate_secret(conn, ods, grace=timedelta(0))
        finally:
            await conn.close()
        assert (
            await post(client, ods, new, "session.posted", session_data("p"))
        ).status_code == 401
        assert (
            await post(client, ods, newer, "session.posted", session_data("q"))
        ).status_code == 202


async def test_read_api_shows_only_your_sessions(
    infra: Infra, topic_prefix: str, region: str
) -> None:
    """Your key reads your sessions, filtered; another organisation's are 404; no key, 401."""
    async with running_app(infra, topic_prefix) as (_, client):
        ods, secret, key = await register(infra, region)
        other, other_secret, other_key = await register(infra, region)
        mine = await post(client, ods, secret, "session.posted", session_data("m1", days=2))
        await post(client, ods, secret, "session.posted", session_data("m2", days=9))
        theirs = await post(client, other, other_secret, "session.posted", session_data("t1"))
        me = {"Authorization": f"Bearer {key}"}
        listed = await client.get(f"/organisations/{ods}/sessions", headers=me)
        assert [s["external_id"] for s in listed.json()] == ["m1", "m2"]
        soon = (datetime.now(UTC) + timedelta(days=5)).isoformat()
        ranged = await client.get(
            f"/organisations/{ods}/sessions", params={"to": soon, "status": "open"}, headers=me
        )
        assert [s["external_id"] for s in ranged.json()] == ["m1"]
        one = await client.get(
            f"/organisations/{ods}/sessions/{mine.json()['session_id']}", headers=me
        )
        assert one.json()["status"] == "open"
        not_mine = await client.get(
            f"/organisations/{ods}/sessions/{theirs.json()['session_id']}", headers=me
        )
        assert not_mine.status_code == 404
        wrong_path = await client.get(
            f"/organisations/{other}/sessions", headers={"Authorization": f"Bearer {key}"}
        )
        assert wrong_path.status_code == 404
        assert (await client.get(f"/organisations/{ods}/sessions")).status_code == 401
        assert other_key != key


async def test_rate_limit_answers_429_with_retry_after_and_big_bodies_413(
    infra: Infra, topic_prefix: str, region: str
) -> None:
    """Past the burst: 429 problem with Retry-After, nothing silently dropped. Over the size
    limit: 413."""
    async with running_app(
        infra,
        topic_prefix,
        FAIRSHARE_VACANCIES_RATE_PER_S=0.5,
        FAIRSHARE_VACANCIES_RATE_BURST=2,
        FAIRSHARE_VACANCIES_MAX_BODY_BYTES=4000,
    ) as (_, client):
        ods, secret, _ = await register(infra, region)
        codes = [
            (await post(client, ods, secret, "session.posted", session_data(f"r{i}"))).status_code
            for i in range(3)
        ]
        assert codes[:2] == [202, 202]
        assert codes[2] == 429
        refused = await post(client, ods, secret, "session.posted", session_data("r9"))
        assert refused.headers["retry-after"] in {"1", "2"}
        assert refused.headers["content-type"] == "application/problem+json"
        other, other_secret, _ = await register(infra, region)
        big = delivery("session.posted", session_data(notes="x" * 1990) | {"pad": "y" * 3000})
        response = await client.post(
            f"/webhooks/{other}", content=big, headers=signed(other_secret, big)
        )
        assert response.status_code == 413


async def _start_unfilled(app: FastAPI, session_id: str) -> None:
    """Move the session's start a minute into the past and run the unfilled sweep."""
    pool = app.state.runtime.pool
    await pool.execute(
        "UPDATE sessions SET starts_at = now() - interval '1 minute',"
        " ends_at = now() + interval '3 hours' WHERE id = $1",
        uuid.UUID(session_id),
    )
    async with pool.acquire() as conn, conn.transaction():
        assert await close_unfilled(conn, app.state.runtime, timedelta(hours=25)) >= 1


async def test_sessions_that_start_unfilled_are_closed_and_published(
    infra: Infra, topic_prefix: str, region: str
) -> None:
    """A session whose start passed with nobody booked becomes unfilled, with an event."""
    async with running_app(infra, topic_prefix) as (app, client):
        ods, secret, _ = await register(infra, region)
        session_id = (await post(client, ods, secret, "session.posted", session_data())).json()[
            "session_id"
        ]
        pool = app.state.runtime.pool
        await _start_unfilled(app, session_id)
        assert (
            await pool.fetchval("SELECT status FROM sessions WHERE id = $1", uuid.UUID(session_id))
            == "unfilled"
        )
        [event] = await outbox_events(app, "session.unfilled", session_id)
        assert "before the start" in event["reason"]


async def test_an_unfilled_session_says_why_matching_found_nobody(
    infra: Infra, topic_prefix: str, region: str
) -> None:
    """The organisation's deprivation decile and place travel with its sessions; when
    matching says why a session has no offer, going unfilled publishes that why."""
    async with running_app(infra, topic_prefix) as (app, client):
        ods, secret, _ = await register(infra, region, imd_decile=2, place="Salford")
        session_id = (await post(client, ods, secret, "session.posted", session_data())).json()[
            "session_id"
        ]
        [posted] = await outbox_events(app, "session.posted", session_id)
        assert (posted["imd_decile"], posted["place"]) == (2, "Salford")
        detail = "2 eligible clinicians from other sectors were held back by the drain guard."
        await deliver_event(
            app,
            "session.unmatched",
            SessionUnmatched(
                session_id=uuid.UUID(session_id),
                organisation=ods,
                why="held_by_drain_guard",
                detail=detail,
            ),
            region,
        )
        await _start_unfilled(app, session_id)
        [event] = await outbox_events(app, "session.unfilled", session_id)
        assert (event["why"], event["reason"]) == ("held_by_drain_guard", detail)


async def test_a_reposted_batch_amends_only_what_changed(
    infra: Infra, topic_prefix: str, region: str
) -> None:
    """A month posted twice: unchanged sessions stay, an edited one is amended, a repeated
    external id within one batch is refused, and skills survive the bulk insert."""
    async with running_app(infra, topic_prefix) as (app, client):
        ods, secret, _ = await register(infra, region)
        month = [session_data(f"m-{i}", days=2 + i, skills=["minor_illness"]) for i in range(5)]
        first = (await post(client, ods, secret, "sessions.posted", {"sessions": month})).json()
        assert [r["outcome"] for r in first["results"]] == ["created"] * 5
        stored = await app.state.runtime.pool.fetchval(
            "SELECT skills FROM sessions WHERE organisation = $1 AND external_id = 'm-0'", ods
        )
        assert stored == ["minor_illness"]
        edited = [*month[:4], {**month[4], "notes": "Now with a student"}, month[1]]
        second = (await post(client, ods, secret, "sessions.posted", {"sessions": edited})).json()
        assert [r["outcome"] for r in second["results"]] == [
            "unchanged",
            "unchanged",
            "unchanged",
            "unchanged",
            "amended",
            "rejected",
        ]
        assert second["results"][5]["errors"][0]["field"] == "data.sessions.5.external_id"
        posted = await app.state.runtime.pool.fetchval(
            "SELECT count(*) FROM outbox WHERE event_type = 'session.posted'"
            " AND payload->'data'->>'posted_by' = $1",
            ods,
        )
        assert posted == 5
