"""A clinician's own words about cancelling, over the real database and a real callback
receiver: they stay in the bank unless the clinician chooses to share them; shared, they
reach the practice (and the event that carries them there) and nothing else; the reason's
category always arrives; no log line holds them; and bad words are refused at the edge.

The bank's ``booking.cancelled`` events are read from its outbox (what its relay
publishes) and handed to the vacancies service's own consumer, as Kafka would.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from structlog.testing import capture_logs

from fairshare.infra_settings import bare_settings
from fairshare.services import migrations_of, schema_of
from services.vacancies import SCHEMA as VACANCIES
from services.vacancies.handlers import handlers as vacancies_handlers
from shared.catalogue import Role, Sector, Urgency
from shared.db.pool import connect
from shared.events import BookingCancelled, SessionFilled, SessionOffered, new_envelope
from shared.events.registry import topic_for
from shared.messaging.consumer import EventConsumer
from shared.messaging.kafka import KafkaPublisher
from shared.runtime import migrate
from tests.conftest import Infra
from tests.integration.bank_support import deliver, new_clinician, outbox, running_bank
from tests.integration.helpers import eventually, served
from tests.integration.vacancies_support import post, register, running_app, session_data

pytestmark = pytest.mark.integration

# What a clinician might write: a name and a health detail, each made unique to the run.
UNSHARED = f"Dr Ffion Quarrell says my chemotherapy restarts {uuid.uuid4().hex[:8]}"
SHARED = f"Trains cancelled at Stockport, sorry {uuid.uuid4().hex[:8]}"
LEGACY = f"Old-style words nobody agreed to share {uuid.uuid4().hex[:8]}"
FAST = {"FAIRSHARE_VACANCIES_CALLBACK_BASE_S": 0.3, "FAIRSHARE_VACANCIES_POLL_S": 0.1}


@dataclass
class Practice:
    """The practice's rota system: receives callbacks, checking every signature."""

    secret: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        self.received.append(Webhook(self.secret).verify(body, dict(request.headers)))
        return Response(status_code=204)

    def about(self, session_id: str, event_type: str) -> list[dict[str, Any]]:
        return [
            p["data"]
            for p in self.received
            if p["type"] == event_type and p["data"]["session_id"] == session_id
        ]


@pytest.fixture
async def practice() -> AsyncIterator[tuple[Practice, str]]:
    """A real HTTP receiver on loopback."""
    target = Practice()
    app = Starlette(routes=[Route("/hook", target.handle, methods=["POST"])])
    async with served(app) as url:
        yield target, f"{url}/hook"


Logged = Callable[[], list[str]]


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Iterator[Logged]:
    """What gives every log line written so far in the test, each with all its fields:
    our own (structlog) at every level, debug too, and the libraries' (the standard
    library's) from info, the lowest level a service writes. (At debug aiokafka writes
    every message it sends, whole: shared/logging.py keeps it at warning and above.)"""
    with caplog.at_level(logging.INFO), capture_logs() as structured:
        yield (
            lambda: (
                [repr(entry) for entry in structured]
                + [f"{r.getMessage()} {r.__dict__!r}" for r in caplog.records]
            )
        )


def _offer(
    session_id: str, session: dict[str, Any], ods: str, clinician: uuid.UUID
) -> SessionOffered:
    return SessionOffered(
        offer_id=uuid.uuid4(),
        session_id=uuid.UUID(session_id),
        clinician_id=clinician,
        organisation=ods,
        sector=Sector.GENERAL_PRACTICE,
        role=Role.GP,
        site_name="Hilltop Surgery",
        latitude=53.4,
        longitude=-2.2,
        rate_pence_per_hour=None,
        urgency=Urgency.ROUTINE,
        starts_at=datetime.fromisoformat(session["starts_at"]),
        ends_at=datetime.fromisoformat(session["ends_at"]),
        expires_at=datetime.now(UTC) + timedelta(hours=2),
        reasons=["test"],
    )


def _filled(offer: SessionOffered) -> SessionFilled:
    return SessionFilled(
        session_id=offer.session_id,
        offer_id=offer.offer_id,
        clinician_id=offer.clinician_id,
        organisation=offer.organisation,
        sector=offer.sector,
        clinician_home_sector=Sector.GENERAL_PRACTICE,
        starts_at=offer.starts_at,
        ends_at=offer.ends_at,
    )


def _consumer(app: FastAPI) -> EventConsumer:
    runtime = app.state.runtime
    return EventConsumer(
        service="vacancies",
        pool=runtime.pool,
        dead_letters=KafkaPublisher(runtime.broker),
        handlers=vacancies_handlers(timedelta(hours=25)),
    )


async def _to_vacancies(app: FastAPI, event_type: str, data: Any, region: str) -> None:
    envelope = new_envelope(
        data, event_type=event_type, schema_version=1, region=region, producer="test"
    )
    assert await _consumer(app).handle(
        topic_for(event_type), region.encode(), envelope.model_dump_json().encode()
    )


async def _holding(dsn: str, schema: str, table: str, words: str) -> int:
    """How many rows of ``table`` hold ``words`` in their JSON payload."""
    conn = await connect(dsn, schema)
    try:
        sql = f"SELECT count(*) FROM {table} WHERE strpos(payload::text, $1) > 0"
        found: int = await conn.fetchval(sql, words)
        return found
    finally:
        await conn.close()


async def test_words_leave_the_bank_only_when_shared_and_then_only_for_the_practice(
    infra: Infra,
    topic_prefix: str,
    region: str,
    practice: tuple[Practice, str],
    logged: Logged,
) -> None:
    """Three bookings given up: with words kept back (illness), with words shared
    (transport), and an event from before categories whose words nobody chose to share.
    Kept-back words: in no event of the bank's, no callback, no log line. Shared: in that
    one event and that practice's callback, nowhere else. The category always arrives."""
    target, url = practice
    for service in ("vacancies", "bank"):  # one at a time: both create btree_gist
        await migrate(
            bare_settings(infra.dsn),
            schema=schema_of(service),
            migrations_dir=migrations_of(service),
        )
    async with AsyncExitStack() as stack:
        # Then started side by side: each waits about 3 s for its consumer group.
        started = await asyncio.gather(
            stack.enter_async_context(running_app(infra, topic_prefix, **FAST)),
            stack.enter_async_context(running_bank(infra, topic_prefix)),
            return_exceptions=True,
        )
        ready = [s for s in started if not isinstance(s, BaseException)]
        for failed in started:
            if isinstance(failed, BaseException):
                raise failed
        (vacancies, rota), (bank, app_client) = ready
        ods, target.secret, _ = await register(infra, region, callback_url=url)
        me, auth, _ = await new_clinician(infra, region)
        sessions: list[str] = []
        offers: list[SessionOffered] = []
        for i in range(3):
            data = session_data(f"rota-{i}", days=3 + i)
            posted = await post(rota, ods, target.secret, "session.posted", data)
            sessions.append(posted.json()["session_id"])
            offers.append(_offer(sessions[-1], data, ods, me))
            await _to_vacancies(vacancies, "session.offered", offers[-1], region)
            await _to_vacancies(vacancies, "session.filled", _filled(offers[-1]), region)
        kept, shared, legacy = offers
        for offer in (kept, shared):
            await deliver(bank, "session.offered", offer, region)
            accepted = await app_client.post(f"/api/offers/{offer.offer_id}/accept", headers=auth)
            assert accepted.status_code == 202
            await deliver(bank, "session.filled", _filled(offer), region)

        for offer, body in (
            (kept, {"category": "illness", "text": UNSHARED}),
            (shared, {"category": "transport", "text": SHARED, "share_text_with_practice": True}),
        ):
            cancelled = await app_client.post(
                f"/api/bookings/{offer.offer_id}/cancel", json=body, headers=auth
            )
            assert cancelled.status_code == 200, cancelled.text
        # The clinician's own record keeps their words, and says whether they went out.
        kept_note, shared_note = [
            (await app_client.get(f"/api/offers/{o.offer_id}", headers=auth)).json()["note"]
            for o in (kept, shared)
        ]
        assert UNSHARED in kept_note
        assert "not shared" in kept_note
        assert SHARED in shared_note
        assert "shared with the practice" in shared_note

        # Every event the bank has written: the kept-back words in none of them, the
        # shared ones in one booking.cancelled.
        async def written_with(words: str) -> list[str]:
            rows = await bank.state.runtime.pool.fetch(
                "SELECT event_type FROM outbox WHERE strpos(payload::text, $1) > 0", words
            )
            return [r["event_type"] for r in rows]

        assert await written_with(UNSHARED) == []
        assert await written_with(SHARED) == ["booking.cancelled"]
        mine = await bank.state.runtime.pool.fetch(
            "SELECT payload FROM outbox WHERE event_type = 'booking.cancelled'"
            " AND payload->'data'->>'clinician_id' = $1",
            str(me),
        )
        gave_up = {r["payload"]["data"]["offer_id"]: r["payload"] for r in mine}
        kept_event = gave_up[str(kept.offer_id)]["data"]
        shared_event = gave_up[str(shared.offer_id)]["data"]
        assert (kept_event["reason_category"], kept_event["reason_text"]) == ("illness", None)
        assert kept_event["reason"] is None
        assert (shared_event["reason_category"], shared_event["reason_text"]) == (
            "transport",
            SHARED,
        )

        # Vacancies takes the bank's events as published, and an old-style one.
        for envelope in (gave_up[str(kept.offer_id)], gave_up[str(shared.offer_id)]):
            assert await _consumer(vacancies).handle(
                topic_for("booking.cancelled"), region.encode(), json.dumps(envelope).encode()
            )
        old = BookingCancelled(
            offer_id=legacy.offer_id,
            session_id=legacy.session_id,
            clinician_id=me,
            reason=LEGACY,
            late=False,
        )
        await _to_vacancies(vacancies, "booking.cancelled", old, region)

        async def told() -> bool:
            return all(target.about(s, "session.cancelled_by_clinician") for s in sessions)

        await eventually(told, timeout_s=15)
        [to_kept] = target.about(sessions[0], "session.cancelled_by_clinician")
        [to_shared] = target.about(sessions[1], "session.cancelled_by_clinician")
        [to_legacy] = target.about(sessions[2], "session.cancelled_by_clinician")
        assert (to_kept["reason_category"], to_kept["reason"]) == ("illness", "Illness")
        assert "reason_text" not in to_kept
        assert to_shared["reason_category"] == "transport"
        assert to_shared["reason_text"] == SHARED
        assert to_shared["reason"] == f"Travel or transport problem: {SHARED}"
        assert (to_legacy["reason_category"], to_legacy["reason"]) == ("other", "Other reason")
        assert "reason_text" not in to_legacy
        received = [json.dumps(p) for p in target.received]
        assert not [p for p in received if UNSHARED in p or LEGACY in p]
        assert len([p for p in received if SHARED in p]) == 1

        # What vacancies keeps: its schedule of callbacks and its own events.
        for table, words, rows in (
            ("callbacks", UNSHARED, 0),
            ("callbacks", LEGACY, 0),
            ("callbacks", SHARED, 1),
            ("outbox", UNSHARED, 0),
            ("outbox", LEGACY, 0),
            ("outbox", SHARED, 0),
        ):
            assert await _holding(infra.dsn, VACANCIES, table, words) == rows, (table, words)

    # No log line anywhere, at any level, holds anyone's words.
    lines = logged()
    assert any("request handled" in line for line in lines), "structlog is not captured"
    assert any("HTTP Request: POST" in line for line in lines), "the stdlib is not captured"
    assert not [line for line in lines if UNSHARED in line or SHARED in line or LEGACY in line]


async def test_words_too_long_or_with_a_nul_are_refused_with_the_field_named(
    infra: Infra, topic_prefix: str, region: str, logged: Logged
) -> None:
    """501 characters, a NUL, an unknown category, no category, or the old ``reason``
    field: 422 naming the field, the refused words echoed in no answer or log line, and
    the booking still held. Exactly 500 characters then cancel it."""
    async with running_bank(infra, topic_prefix) as (bank, client):
        me, auth, _ = await new_clinician(infra, region)
        offer = _offer(str(uuid.uuid4()), session_data(), "A81001", me)
        await deliver(bank, "session.offered", offer, region)
        await client.post(f"/api/offers/{offer.offer_id}/accept", headers=auth)
        await deliver(bank, "session.filled", _filled(offer), region)
        url = f"/api/bookings/{offer.offer_id}/cancel"
        too_long = "x" * 500 + "y"
        with_nul = f"{UNSHARED}\x00"
        for body, named in (
            ({"category": "illness", "text": too_long}, ["text"]),
            ({"category": "illness", "text": with_nul, "share_text_with_practice": True}, ["text"]),
            ({"category": "hangover", "text": UNSHARED}, ["category"]),
            ({"text": UNSHARED}, ["category"]),
            ({"category": "other", "reason": UNSHARED}, ["reason"]),
        ):
            refused = await client.post(url, json=body, headers=auth)
            assert refused.status_code == 422, (body, refused.text)
            assert [e["field"] for e in refused.json()["errors"]] == named
            assert UNSHARED not in refused.text
            assert too_long not in refused.text
        [held] = (await client.get("/api/bookings", headers=auth)).json()
        assert held["status"] == "booked"
        assert await outbox(bank, "booking.cancelled", me) == []
        at_most = "z" * 500
        done = await client.post(
            url,
            json={"category": "other", "text": at_most, "share_text_with_practice": True},
            headers=auth,
        )
        assert done.status_code == 200, done.text
        [event] = await outbox(bank, "booking.cancelled", me)
        assert event["reason_text"] == at_most
    lines = logged()
    assert any("request handled" in line for line in lines), "structlog is not captured"
    assert any("HTTP Request: POST" in line for line in lines), "the stdlib is not captured"
    assert not [line for line in lines if UNSHARED in line or too_long in line]
    assert not [line for line in lines if at_most in line]
