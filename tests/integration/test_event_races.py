"""Every race of docs/ordering.md, delivered in both orders to the real consumers.

Each scenario runs twice, in a region and with ids of its own: once with event A
handled first, once with event B first. A delivery goes through the service's own
``EventConsumer`` and handler table, over the real database, exactly as a message
read from Kafka would (only the broker is left out; dead letters are recorded). After
each delivery to matching, its debounced planner runs the re-plan the handler asked
for, as it would once the request falls due. What people do (a practice posting,
moving or cancelling through its web hook, a clinician accepting in the app) goes
through the use case the web hook or API runs, in its own transaction.

Each test then checks that the two end states, normalised (statuses, who is booked,
which offers are live), are equal, and equal to the end state the table states, and
that what happens on the way in each order is what the table says.
"""

from __future__ import annotations

import json
import random
import string
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg
import pytest
from aiokafka import ConsumerRecord
from pydantic import BaseModel

from fairshare.infra_settings import bare_settings
from fairshare.services import migrations_of, schema_of
from services.bank import repository as bank_repository
from services.bank.admin import add_clinician
from services.bank.domain import Clinician
from services.bank.handlers import handlers as bank_handlers
from services.bank.use_cases import answer_offer
from services.matching import planning
from services.matching.handlers import handlers as matching_handlers
from services.monitor.handlers import handlers as monitor_handlers
from services.vacancies import intake
from services.vacancies import repository as vacancies_repository
from services.vacancies.admin import add_organisation
from services.vacancies.domain import Organisation, StoredSession
from services.vacancies.handlers import handlers as vacancies_handlers
from shared.catalogue import Employment, Profession, Role, Sector, Urgency
from shared.db.pool import create_pool
from shared.events import (
    EVENTS,
    AvailabilityOffered,
    AvailabilityWithdrawn,
    BookingCancelled,
    Envelope,
    OfferAccepted,
    OfferRefused,
    SessionAmended,
    SessionCancelled,
    SessionFilled,
    SessionOffered,
    SessionPosted,
    SessionUnfilled,
    SessionUnmatched,
    new_envelope,
    topic_for,
)
from shared.messaging.consumer import EventConsumer, Handler
from shared.messaging.emitter import Emitter
from shared.runtime import migrate
from tests.conftest import Infra
from tests.factories import session_posted
from tests.integration.bank_support import filled, offered
from tests.integration.vacancies_support import delivery, new_ods, session_data

pytestmark = pytest.mark.integration

T = TypeVar("T")
Step = Callable[[], Awaitable[None]]

# ---------------------------------------------------------------------------------------
# The harness: a service's real consumer, and a race run in both orders.
# ---------------------------------------------------------------------------------------


@dataclass
class RecordingPublisher:
    """Stands in for Kafka as the dead-letter publisher; keeps what it was given."""

    sent: list[dict[str, Any]] = field(default_factory=list)

    async def publish(self, *, topic: str, key: str, value: bytes, headers: dict[str, str]) -> None:
        """Record one dead letter."""
        self.sent.append({"topic": topic, "key": key, "value": value, "headers": headers})


@dataclass
class Service:
    """One service's own consumer and handler table on its migrated schema, minus Kafka."""

    name: str
    pool: asyncpg.Pool
    prefix: str
    emitter: Emitter
    consumer: EventConsumer
    dead_letters: RecordingPublisher
    settle: Callable[[str], Awaitable[None]] | None = None

    async def deliver(self, event_type: str, data: BaseModel, region: str) -> None:
        """Hand one event to the consumer as Kafka would: on its producer's stream,
        keyed by region, as the JSON envelope the producer's outbox publishes."""
        spec = EVENTS[event_type]
        envelope = new_envelope(
            data,
            event_type=event_type,
            schema_version=spec.version,
            region=region,
            producer=spec.producer,
        )
        handled = await self.consumer.handle(
            topic_for(event_type, self.prefix),
            region.encode(),
            envelope.model_dump_json().encode(),
        )
        assert not self.dead_letters.sent, self.dead_letters.sent
        assert handled, f"{self.name} did not handle {event_type}"
        if self.settle is not None:
            await self.settle(region)


async def _service(
    infra: Infra,
    name: str,
    prefix: str,
    table: Callable[[Emitter], dict[str, Handler]],
) -> Service:
    schema = schema_of(name)
    await migrate(bare_settings(infra.dsn), schema=schema, migrations_dir=migrations_of(name))
    pool = await create_pool(infra.dsn, schema, max_size=4)
    emitter = Emitter(producer=name, schema=schema, topic_prefix=prefix)
    dead_letters = RecordingPublisher()
    consumer = EventConsumer(
        service=name,
        pool=pool,
        dead_letters=dead_letters,
        handlers=table(emitter),
        topic_prefix=prefix,
        retry_delay_s=0.0,
        max_attempts=1,
    )
    return Service(name, pool, prefix, emitter, consumer, dead_letters)


@pytest.fixture
async def matching(infra: Infra, topic_prefix: str) -> AsyncIterator[Service]:
    """Matching's consumer; after each delivery its debounced planner runs what is asked."""
    service = await _service(infra, "matching", topic_prefix, matching_handlers)

    async def plan(region: str) -> None:
        # What the running service's planner does once the region's request falls due.
        await planning.run_request_detached(service.pool, region=region, emitter=service.emitter)

    service.settle = plan
    yield service
    await service.pool.close()


@pytest.fixture
async def bank(infra: Infra, topic_prefix: str) -> AsyncIterator[Service]:
    """The bank's consumer."""
    service = await _service(infra, "bank", topic_prefix, lambda _: bank_handlers())
    yield service
    await service.pool.close()


@pytest.fixture
async def vacancies(infra: Infra, topic_prefix: str) -> AsyncIterator[Service]:
    """The vacancies service's consumer (callbacks kept for 25 hours, as in production)."""
    service = await _service(
        infra, "vacancies", topic_prefix, lambda _: vacancies_handlers(timedelta(hours=25))
    )
    yield service
    await service.pool.close()


@pytest.fixture
async def monitor(infra: Infra, topic_prefix: str) -> AsyncIterator[Service]:
    """The monitor's consumer."""
    service = await _service(infra, "monitor", topic_prefix, lambda _: monitor_handlers())
    yield service
    await service.pool.close()


@dataclass(frozen=True)
class Ended:
    """One run of a race: its normalised end state, and what was seen on the way."""

    state: dict[str, Any]
    seen: dict[str, Any] = field(default_factory=dict)


Scenario = Callable[[str, bool], Awaitable[Ended]]


def _fresh_region(taken: str) -> str:
    while True:
        code = "".join(random.choices(string.ascii_uppercase + string.digits, k=3))
        if code != taken:
            return code


async def both_orders(scenario: Scenario, region: str) -> tuple[Ended, Ended]:
    """Run ``scenario(region, a_first)`` A-first and B-first, each in a fresh region;
    the two normalised end states must be equal."""
    a_first = await scenario(region, True)
    b_first = await scenario(_fresh_region(region), False)
    assert a_first.state == b_first.state, (
        f"the end state depends on the order:\n A then B: {a_first.state}"
        f"\n B then A: {b_first.state}"
    )
    return a_first, b_first


async def race(a_first: bool, a: Step, b: Step, probe: Callable[[], Awaitable[T]]) -> T:
    """Handle A and B in the order asked; return what ``probe`` saw between the two."""
    first, second = (a, b) if a_first else (b, a)
    await first()
    between = await probe()
    await second()
    return between


# ---------------------------------------------------------------------------------------
# Matching
# ---------------------------------------------------------------------------------------

START = (datetime.now(UTC) + timedelta(days=5)).replace(minute=0, second=0, microsecond=0)
MOVED = START + timedelta(hours=2)
WITHDRAWN_REFUSAL = "The session changed or was withdrawn before you accepted."


def _window(clinician: uuid.UUID, availability_id: uuid.UUID | None = None) -> AvailabilityOffered:
    """A GP, a few km from the factory's practice, free around START and MOVED."""
    return AvailabilityOffered(
        availability_id=availability_id or uuid.uuid4(),
        clinician_id=clinician,
        profession=Profession.GP,
        home_sector=Sector.GENERAL_PRACTICE,
        skills=[],
        latitude=53.45,
        longitude=-2.2,
        travel_km=30,
        employment=Employment.BANK_ONLY,
        wtr_opt_out=False,
        self_employed=False,
        starts_at=START - timedelta(hours=1),
        ends_at=START + timedelta(hours=12),
    )


def _accepted(offer: asyncpg.Record) -> OfferAccepted:
    return OfferAccepted(
        offer_id=offer["id"], session_id=offer["session_id"], clinician_id=offer["clinician_id"]
    )


def _booking_cancelled(offer: asyncpg.Record) -> BookingCancelled:
    return BookingCancelled(
        offer_id=offer["id"],
        session_id=offer["session_id"],
        clinician_id=offer["clinician_id"],
        reason="Family emergency",
        late=False,
    )


def _amended(session: SessionPosted, starts_at: datetime) -> SessionAmended:
    moved = session_posted(starts_at, session_id=session.session_id).model_dump()
    return SessionAmended(**moved, released_clinician_id=None)


def _closed(
    event_type: str,
    session: SessionPosted | SessionAmended,
    *,
    released: uuid.UUID | None = None,
) -> SessionCancelled | SessionUnfilled:
    """The session's ``session.cancelled`` or ``session.unfilled``, as vacancies says it."""
    common: dict[str, Any] = {
        "session_id": session.session_id,
        "organisation": session.organisation,
        "sector": session.sector,
        "starts_at": session.starts_at,
        "ends_at": session.ends_at,
    }
    if event_type == "session.cancelled":
        return SessionCancelled(
            **common, reason="Practice closed", late=False, released_clinician_id=released
        )
    return SessionUnfilled(**common, reason="Nobody was booked")


class Matching:
    """Reading matching's tables for one scenario run, clinicians named for comparison."""

    def __init__(self, service: Service, region: str) -> None:
        self.service = service
        self.region = region
        self.names: dict[uuid.UUID, str] = {}

    async def deliver(self, event_type: str, data: BaseModel) -> None:
        await self.service.deliver(event_type, data, self.region)

    def step(self, event_type: str, data: BaseModel) -> Step:
        async def go() -> None:
            await self.deliver(event_type, data)

        return go

    async def clinician(self, name: str) -> uuid.UUID:
        """A GP offering the bank time around the session."""
        clinician = uuid.uuid4()
        self.names[clinician] = name
        await self.deliver("availability.offered", _window(clinician))
        return clinician

    async def offered_session(self) -> tuple[SessionPosted, asyncpg.Record]:
        """A posted session, planned: one live offer, to a GP called "first"."""
        session = session_posted(START)
        await self.deliver("session.posted", session)
        clinician = await self.clinician("first")
        [offer] = await self.live_offers(session.session_id)
        assert offer["clinician_id"] == clinician
        return session, offer

    async def live_offers(self, session_id: uuid.UUID) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.service.pool.fetch(
            "SELECT * FROM offers WHERE session_id = $1 AND status IN ('offered', 'accepted')"
            " AND expires_at > now() ORDER BY created_at",
            session_id,
        )
        return rows

    async def offer_status(self, offer_id: uuid.UUID) -> str:
        status: str = await self.service.pool.fetchval(
            "SELECT status FROM offers WHERE id = $1", offer_id
        )
        return status

    async def state(self, session_id: uuid.UUID) -> dict[str, Any]:
        """The session's status and time, who is booked, and who holds a live offer."""
        pool = self.service.pool
        session = await pool.fetchrow(
            "SELECT status, starts_at FROM sessions WHERE id = $1", session_id
        )
        assert session is not None
        booked = await pool.fetch(
            "SELECT clinician_id FROM bookings WHERE session_id = $1", session_id
        )
        return {
            "session": session["status"],
            "starts_at": session["starts_at"],
            "booked": sorted(self.names[r["clinician_id"]] for r in booked),
            "live_offers": sorted(
                (self.names[o["clinician_id"]], o["starts_at"])
                for o in await self.live_offers(session_id)
            ),
        }

    async def published(self, session_id: uuid.UUID) -> list[str]:
        """Types of the events matching published about the session, in order."""
        rows = await self.service.pool.fetch(
            "SELECT event_type FROM outbox WHERE payload->'data'->>'session_id' = $1 ORDER BY id",
            str(session_id),
        )
        return [r["event_type"] for r in rows]

    async def refusals(self, offer_id: uuid.UUID) -> list[str]:
        """Reasons of the ``offer.refused`` events matching published about an offer."""
        rows = await self.service.pool.fetch(
            "SELECT payload->'data'->>'reason' AS reason FROM outbox"
            " WHERE event_type = 'offer.refused' AND payload->'data'->>'offer_id' = $1 ORDER BY id",
            str(offer_id),
        )
        return [r["reason"] for r in rows]


@pytest.mark.parametrize("closing", ["session.cancelled", "session.unfilled"])
async def test_matching_session_closed_races_offer_accepted(
    matching: Service, region: str, closing: str
) -> None:
    """Cancelled (or started unfilled) × the clinician's acceptance of its live offer.

    Closed first: the offer is withdrawn and the late acceptance gets ``offer.refused``
    ("changed or withdrawn before you accepted"). Accepted first: booked and
    ``session.filled``, then the closing deletes the booking. Either way: the session
    is closed, nobody is booked, no offer is live, and the clinician is told.
    """

    async def scenario(region: str, a_first: bool) -> Ended:
        m = Matching(matching, region)
        session, offer = await m.offered_session()
        sid = session.session_id
        between = await race(
            a_first,
            m.step(closing, _closed(closing, session)),
            m.step("offer.accepted", _accepted(offer)),
            lambda: m.state(sid),
        )
        state = await m.state(sid) | {"offer": await m.offer_status(offer["id"])}
        seen = {
            "between": between,
            "refusals": await m.refusals(offer["id"]),
            "filled": "session.filled" in await m.published(sid),
        }
        return Ended(state, seen)

    a_first, b_first = await both_orders(scenario, region)
    status = closing.removeprefix("session.")
    assert a_first.state == {
        "session": status,
        "starts_at": START,
        "booked": [],
        "live_offers": [],
        "offer": "withdrawn",
    }
    assert a_first.seen == {
        "between": {"session": status, "starts_at": START, "booked": [], "live_offers": []},
        "refusals": [WITHDRAWN_REFUSAL],
        "filled": False,
    }
    assert b_first.seen == {
        "between": {
            "session": "filled",
            "starts_at": START,
            "booked": ["first"],
            "live_offers": [("first", START)],
        },
        "refusals": [],
        "filled": True,
    }


async def test_matching_session_amended_races_offer_accepted_of_the_old_offer(
    matching: Service, region: str
) -> None:
    """A new time × the acceptance of the offer of the old time.

    Amended first: the old offer is withdrawn, its acceptance gets ``offer.refused``,
    and the session is planned afresh. Accepted first: booked, then released by the
    amendment, then planned afresh. Either way: the session is open at its new time,
    nobody holds the old offer or a booking, and the new time is offered (to the same
    GP, who never said no to it).
    """

    async def scenario(region: str, a_first: bool) -> Ended:
        m = Matching(matching, region)
        session, offer = await m.offered_session()
        sid = session.session_id
        between = await race(
            a_first,
            m.step("session.amended", _amended(session, MOVED)),
            m.step("offer.accepted", _accepted(offer)),
            lambda: m.state(sid),
        )
        state = await m.state(sid) | {"old_offer": await m.offer_status(offer["id"])}
        seen = {
            "between": between,
            "refusals": await m.refusals(offer["id"]),
            "filled": "session.filled" in await m.published(sid),
        }
        return Ended(state, seen)

    a_first, b_first = await both_orders(scenario, region)
    assert a_first.state == {
        "session": "open",
        "starts_at": MOVED,
        "booked": [],
        "live_offers": [("first", MOVED)],
        "old_offer": "withdrawn",
    }
    assert a_first.seen["refusals"] == [WITHDRAWN_REFUSAL]
    assert not a_first.seen["filled"]
    assert a_first.seen["between"]["live_offers"] == [("first", MOVED)]
    assert b_first.seen["refusals"] == []
    assert b_first.seen["filled"]
    assert b_first.seen["between"]["booked"] == ["first"]


@pytest.mark.parametrize("closing", ["session.cancelled", "session.unfilled"])
async def test_matching_session_closed_races_booking_cancelled(
    matching: Service, region: str, closing: str
) -> None:
    """Cancelled (or started unfilled) × the booked clinician giving the booking up.

    Closed first: the closing deletes the booking, and the clinician's cancellation
    finds nothing and does not reopen the session. Booking cancelled first: the session
    reopens (and is offered to a standby GP), then closes. Either way: the session is
    closed, nobody is booked and no offer is live.
    """

    async def scenario(region: str, a_first: bool) -> Ended:
        m = Matching(matching, region)
        session, offer = await m.offered_session()
        sid = session.session_id
        await m.deliver("offer.accepted", _accepted(offer))
        await m.clinician("standby")  # free too: a reopened session is offered to them
        assert (await m.state(sid))["booked"] == ["first"]
        between = await race(
            a_first,
            m.step(closing, _closed(closing, session, released=offer["clinician_id"])),
            m.step("booking.cancelled", _booking_cancelled(offer)),
            lambda: m.state(sid),
        )
        return Ended(await m.state(sid), {"between": between})

    a_first, b_first = await both_orders(scenario, region)
    status = closing.removeprefix("session.")
    closed = {"session": status, "starts_at": START, "booked": [], "live_offers": []}
    assert a_first.state == closed
    assert a_first.seen["between"] == closed
    assert b_first.seen["between"] == {
        "session": "open",
        "starts_at": START,
        "booked": [],
        "live_offers": [("standby", START)],
    }


async def test_matching_session_amended_races_booking_cancelled(
    matching: Service, region: str
) -> None:
    """A new time × the booked clinician giving the booking (of the old time) up.

    Amended first: the booking is released and the new time planned; the clinician's
    cancellation then finds nothing. Cancelled first: the session reopens, then moves.
    Either way the session is open at its new time, nobody is booked, and the same GP
    is offered the new time: giving up the old time is not saying no to the new one.
    """

    async def scenario(region: str, a_first: bool) -> Ended:
        m = Matching(matching, region)
        session, offer = await m.offered_session()
        sid = session.session_id
        await m.deliver("offer.accepted", _accepted(offer))
        assert (await m.state(sid))["booked"] == ["first"]
        await race(
            a_first,
            m.step("session.amended", _amended(session, MOVED)),
            m.step("booking.cancelled", _booking_cancelled(offer)),
            lambda: m.state(sid),
        )
        return Ended(await m.state(sid))

    a_first, _ = await both_orders(scenario, region)
    assert a_first.state == {
        "session": "open",
        "starts_at": MOVED,
        "booked": [],
        "live_offers": [("first", MOVED)],
    }


async def test_matching_stream_reorder_session_cancelled_before_posted(
    matching: Service, region: str
) -> None:
    """After a broker loss: ``session.cancelled`` handled before its ``session.posted``.

    In order: posted, offered to a free GP, cancelled (offer withdrawn). Cancellation
    first: it leaves a tombstone (status cancelled) and the late post inserts nothing,
    so nothing is ever offered. Either way: cancelled, nobody booked, no offer live.
    """

    async def scenario(region: str, a_first: bool) -> Ended:
        m = Matching(matching, region)
        await m.clinician("first")
        session = session_posted(START)
        sid = session.session_id
        await race(
            a_first,
            m.step("session.posted", session),
            m.step("session.cancelled", _closed("session.cancelled", session)),
            lambda: m.state(sid),
        )
        offered_ever = await matching.pool.fetchval(
            "SELECT count(*) FROM offers WHERE session_id = $1", sid
        )
        return Ended(await m.state(sid), {"offers_made": offered_ever})

    a_first, b_first = await both_orders(scenario, region)
    assert a_first.state == {
        "session": "cancelled",
        "starts_at": START,
        "booked": [],
        "live_offers": [],
    }
    assert a_first.seen == {"offers_made": 1}
    assert b_first.seen == {"offers_made": 0}


async def test_matching_stream_reorder_session_amended_after_cancelled(
    matching: Service, region: str
) -> None:
    """After a broker loss: ``session.amended`` handled after the ``session.cancelled``
    that followed it.

    The amendment updates the details but never reopens a cancelled session. Either
    way: cancelled, at the amended time, nobody booked, no offer live.
    """

    async def scenario(region: str, a_first: bool) -> Ended:
        m = Matching(matching, region)
        session, _ = await m.offered_session()
        amended = _amended(session, MOVED)
        sid = session.session_id
        between = await race(
            a_first,
            m.step("session.amended", amended),
            m.step("session.cancelled", _closed("session.cancelled", amended)),
            lambda: m.state(sid),
        )
        return Ended(await m.state(sid), {"between": between["session"]})

    a_first, b_first = await both_orders(scenario, region)
    assert a_first.state == {
        "session": "cancelled",
        "starts_at": MOVED,
        "booked": [],
        "live_offers": [],
    }
    assert (a_first.seen, b_first.seen) == ({"between": "open"}, {"between": "cancelled"})


async def test_matching_stream_reorder_booking_cancelled_before_offer_accepted(
    matching: Service, region: str
) -> None:
    """After a broker loss: ``booking.cancelled`` handled before its ``offer.accepted``.

    In order: booked, then given up (offer cancelled, session open again). Cancellation
    first: the offer is marked cancelled and the late acceptance is ignored, with no
    ``offer.refused`` (the bank already shows the clinician's cancellation). Either
    way: the session is open, nobody is booked, the offer reads cancelled.
    """

    async def scenario(region: str, a_first: bool) -> Ended:
        m = Matching(matching, region)
        session, offer = await m.offered_session()
        sid = session.session_id
        between = await race(
            a_first,
            m.step("offer.accepted", _accepted(offer)),
            m.step("booking.cancelled", _booking_cancelled(offer)),
            lambda: m.state(sid),
        )
        state = await m.state(sid) | {"offer": await m.offer_status(offer["id"])}
        seen = {"between": between["booked"], "refusals": await m.refusals(offer["id"])}
        return Ended(state, seen)

    a_first, b_first = await both_orders(scenario, region)
    assert a_first.state == {
        "session": "open",
        "starts_at": START,
        "booked": [],
        "live_offers": [],
        "offer": "cancelled",
    }
    assert a_first.seen == {"between": ["first"], "refusals": []}
    assert b_first.seen == {"between": [], "refusals": []}


async def test_matching_stream_reorder_booking_cancelled_before_offer_accepted_with_standby(
    matching: Service, region: str
) -> None:
    """As the reorder above, with a second GP free: in order, the booking given up is
    re-planned at once and offered to the standby GP; the reordered cancellation should
    do the same, so that either way the session is open and offered to the standby."""

    async def scenario(region: str, a_first: bool) -> Ended:
        m = Matching(matching, region)
        session, offer = await m.offered_session()
        await m.clinician("standby")
        sid = session.session_id
        await race(
            a_first,
            m.step("offer.accepted", _accepted(offer)),
            m.step("booking.cancelled", _booking_cancelled(offer)),
            lambda: m.state(sid),
        )
        return Ended(await m.state(sid))

    a_first, _ = await both_orders(scenario, region)
    assert a_first.state == {
        "session": "open",
        "starts_at": START,
        "booked": [],
        "live_offers": [("standby", START)],
    }


async def test_matching_stream_reorder_availability_withdrawn_before_offered(
    matching: Service, region: str
) -> None:
    """After a broker loss: ``availability.withdrawn`` handled before its
    ``availability.offered``.

    In order: the window is planned into an offer, then withdrawn (offer withdrawn).
    Withdrawal first: a ``withdrawn_windows`` tombstone keeps the late window out of
    planning. Either way: the session is open with no live offer, and the window is
    not planned from.
    """

    async def scenario(region: str, a_first: bool) -> Ended:
        m = Matching(matching, region)
        session = session_posted(START)
        sid = session.session_id
        await m.deliver("session.posted", session)
        clinician, window_id = uuid.uuid4(), uuid.uuid4()
        m.names[clinician] = "first"
        between = await race(
            a_first,
            m.step("availability.offered", _window(clinician, window_id)),
            m.step(
                "availability.withdrawn",
                AvailabilityWithdrawn(availability_id=window_id, clinician_id=clinician),
            ),
            lambda: m.state(sid),
        )
        usable = await matching.pool.fetchval(
            "SELECT count(*) FROM availability WHERE id = $1 AND NOT withdrawn", window_id
        )
        return Ended(await m.state(sid) | {"usable_windows": usable}, {"between": between})

    a_first, b_first = await both_orders(scenario, region)
    assert a_first.state == {
        "session": "open",
        "starts_at": START,
        "booked": [],
        "live_offers": [],
        "usable_windows": 0,
    }
    assert a_first.seen["between"]["live_offers"] == [("first", START)]
    assert b_first.seen["between"]["live_offers"] == []


# ---------------------------------------------------------------------------------------
# Bank
# ---------------------------------------------------------------------------------------


def _bank_cancelled(offer: SessionOffered) -> SessionCancelled:
    """Vacancies' cancellation of the offered session (nobody booked when it was said)."""
    return SessionCancelled(
        session_id=offer.session_id,
        organisation=offer.organisation,
        sector=offer.sector,
        reason="Practice closed",
        late=False,
        released_clinician_id=None,
        starts_at=offer.starts_at,
        ends_at=offer.ends_at,
    )


def _bank_amended(offer: SessionOffered, starts_at: datetime) -> SessionAmended:
    """Vacancies' amendment of the offered session to a new time."""
    return SessionAmended(
        session_id=offer.session_id,
        organisation=offer.organisation,
        posted_by=offer.organisation,
        site_name=offer.site_name,
        sector=offer.sector,
        role=offer.role,
        skills=[],
        rate_pence_per_hour=offer.rate_pence_per_hour,
        urgency=offer.urgency,
        starts_at=starts_at,
        ends_at=starts_at + (offer.ends_at - offer.starts_at),
        latitude=offer.latitude,
        longitude=offer.longitude,
        released_clinician_id=None,
    )


ORG_CANCELLED = "The organisation cancelled the session: Practice closed"
LIVE_IN_BANK = ("offered", "accepted", "booked")
ORG_RESHAPED = "The organisation changed the session's time or role; you are not booked."


class Bank:
    """One scenario run's clinician in the bank, and reading what they see."""

    def __init__(self, service: Service, region: str) -> None:
        self.service = service
        self.region = region
        self.clinician = Clinician(
            id=uuid.uuid4(),
            display_name="Priya Shah",
            profession=Profession.PHARMACIST,
            home_sector=Sector.COMMUNITY_PHARMACY,
            region=region,
            register="GPhC",
            register_number="2012345",
        )

    async def register(self) -> None:
        async with self.service.pool.acquire() as conn, conn.transaction():
            await add_clinician(conn, self.clinician)

    def step(self, event_type: str, data: BaseModel) -> Step:
        async def go() -> None:
            await self.service.deliver(event_type, data, self.region)

        return go

    async def accept(self, offer_id: uuid.UUID) -> None:
        """The clinician accepts the offer in the app (the API's own use case)."""
        async with self.service.pool.acquire() as conn, conn.transaction():
            await answer_offer(
                conn,
                clinician=self.clinician,
                offer_id=offer_id,
                accept=True,
                emitter=self.service.emitter,
            )

    async def offers(self, session_id: uuid.UUID, names: dict[uuid.UUID, str]) -> dict[str, Any]:
        """Each of the session's offers the clinician can see: (status, note shown)."""
        rows = await bank_repository.offers_of(
            self.service.pool,
            self.clinician.id,
            ["offered", "accepted", "booked", "refused", "withdrawn", "cancelled", "declined"],
        )
        return {
            names[r["id"]]: (r["status"], r["refusal"])
            for r in rows
            if r["session_id"] == session_id
        }


async def test_bank_session_cancelled_races_session_offered(bank: Service, region: str) -> None:
    """Cancelled (from vacancies) × an offer of the session (from matching).

    Cancellation first: it leaves a tombstone (``session_news``) and the late offer is
    not shown. Offer first: shown, then withdrawn with the organisation's note. Either
    way: no live offer of a cancelled session.
    """

    async def scenario(region: str, a_first: bool) -> Ended:
        b = Bank(bank, region)
        await b.register()
        offer = offered(b.clinician.id)
        names = {offer.offer_id: "offer"}
        await race(
            a_first,
            b.step("session.cancelled", _bank_cancelled(offer)),
            b.step("session.offered", offer),
            lambda: b.offers(offer.session_id, names),
        )
        shown = await b.offers(offer.session_id, names)
        live = [name for name, (status, _) in shown.items() if status in LIVE_IN_BANK]
        return Ended({"live": live}, {"shown": shown})

    a_first, b_first = await both_orders(scenario, region)
    assert a_first.state == {"live": []}
    assert a_first.seen == {"shown": {}}
    assert b_first.seen == {"shown": {"offer": ("withdrawn", ORG_CANCELLED)}}


async def test_bank_session_cancelled_races_session_filled(bank: Service, region: str) -> None:
    """Cancelled × matching's fill of the clinician's accepted offer.

    Cancellation first: the acceptance is closed as cancelled, and the late fill (which
    lands only on an offer still offered or accepted) books nothing. Fill first: booked,
    then cancelled. Either way: the offer reads cancelled, with the organisation's reason.
    """

    async def scenario(region: str, a_first: bool) -> Ended:
        b = Bank(bank, region)
        await b.register()
        offer = offered(b.clinician.id)
        names = {offer.offer_id: "offer"}
        await b.step("session.offered", offer)()
        await b.accept(offer.offer_id)
        between = await race(
            a_first,
            b.step("session.cancelled", _bank_cancelled(offer)),
            b.step("session.filled", filled(offer)),
            lambda: b.offers(offer.session_id, names),
        )
        return Ended(await b.offers(offer.session_id, names), {"between": between})

    a_first, b_first = await both_orders(scenario, region)
    assert a_first.state == {"offer": ("cancelled", ORG_CANCELLED)}
    assert a_first.seen == {"between": {"offer": ("cancelled", ORG_CANCELLED)}}
    assert b_first.seen == {"between": {"offer": ("booked", None)}}


async def test_bank_session_amended_races_session_offered_of_the_old_shape(
    bank: Service, region: str
) -> None:
    """A new time (from vacancies) × an offer of the session at its old time.

    Amendment first: the new time is recorded and the old-shaped offer is not shown.
    Offer first: shown, then withdrawn as it no longer matches. Either way: no live
    offer of the session as it stood before, while an offer of the new time, made
    afterwards, is shown.
    """

    async def scenario(region: str, a_first: bool) -> Ended:
        b = Bank(bank, region)
        await b.register()
        old = offered(b.clinician.id)
        amended = _bank_amended(old, old.starts_at + timedelta(hours=2))
        new = old.model_copy(
            update={
                "offer_id": uuid.uuid4(),
                "starts_at": amended.starts_at,
                "ends_at": amended.ends_at,
            }
        )
        names = {old.offer_id: "old", new.offer_id: "new"}
        await race(
            a_first,
            b.step("session.amended", amended),
            b.step("session.offered", old),
            lambda: b.offers(old.session_id, names),
        )
        await b.step("session.offered", new)()  # matching's re-plan of the new time
        shown = await b.offers(old.session_id, names)
        live = {name: status for name, (status, _) in shown.items() if status in LIVE_IN_BANK}
        return Ended({"live": live}, {"old": shown.get("old")})

    a_first, b_first = await both_orders(scenario, region)
    assert a_first.state == {"live": {"new": "offered"}}
    assert a_first.seen == {"old": None}
    assert b_first.seen == {
        "old": ("withdrawn", "The organisation changed the session before you answered.")
    }


@pytest.mark.parametrize("news", ["session.cancelled", "session.amended"])
async def test_bank_organisation_news_races_offer_refused(
    bank: Service, region: str, news: str
) -> None:
    """Cancelled or amended (from vacancies) × matching's refusal of the acceptance.

    News first: the refusal changes only an offer still offered or accepted, so the
    organisation's news stands. Refusal first: refused, and the news changes nothing
    more. Either way: the clinician is not booked, holds no live offer, and is shown why.
    """
    refusal = WITHDRAWN_REFUSAL

    async def scenario(region: str, a_first: bool) -> Ended:
        b = Bank(bank, region)
        await b.register()
        offer = offered(b.clinician.id)
        names = {offer.offer_id: "offer"}
        await b.step("session.offered", offer)()
        await b.accept(offer.offer_id)
        news_data: BaseModel = (
            _bank_cancelled(offer)
            if news == "session.cancelled"
            else _bank_amended(offer, offer.starts_at + timedelta(hours=2))
        )
        await race(
            a_first,
            b.step(news, news_data),
            b.step(
                "offer.refused",
                OfferRefused(
                    offer_id=offer.offer_id,
                    session_id=offer.session_id,
                    clinician_id=b.clinician.id,
                    reason=refusal,
                ),
            ),
            lambda: b.offers(offer.session_id, names),
        )
        [(status, note)] = (await b.offers(offer.session_id, names)).values()
        state = {"booked": status == "booked", "live": status in LIVE_IN_BANK, "told": bool(note)}
        return Ended(state, {"shown": (status, note)})

    a_first, b_first = await both_orders(scenario, region)
    assert a_first.state == {"booked": False, "live": False, "told": True}
    assert b_first.seen == {"shown": ("refused", refusal)}
    if news == "session.cancelled":
        assert a_first.seen == {"shown": ("cancelled", ORG_CANCELLED)}
    else:
        # An amendment of the time closes the acceptance of the old time at once (matching
        # releases it whatever vacancies knew), and the later refusal changes nothing.
        assert a_first.seen == {"shown": ("cancelled", ORG_RESHAPED)}


async def test_bank_session_amended_races_session_filled_of_the_old_shape(
    bank: Service, region: str
) -> None:
    """A new time (from vacancies, which had not yet heard of the fill, so it names no
    released clinician) × matching's ``session.filled`` of the offer of the old time.

    This is the bank's side of matching's "session.amended × offer.accepted" race,
    accepted first: matching books, then the amendment releases the booking and the
    session is planned afresh. The bank must not go on showing the clinician booked at
    the old time, in either order.
    """

    async def scenario(region: str, a_first: bool) -> Ended:
        b = Bank(bank, region)
        await b.register()
        offer = offered(b.clinician.id)
        names = {offer.offer_id: "offer"}
        await b.step("session.offered", offer)()
        await b.accept(offer.offer_id)
        await race(
            a_first,
            b.step("session.amended", _bank_amended(offer, offer.starts_at + timedelta(hours=2))),
            b.step("session.filled", filled(offer)),
            lambda: b.offers(offer.session_id, names),
        )
        [(status, _)] = (await b.offers(offer.session_id, names)).values()
        return Ended({"booked": status == "booked", "live": status in LIVE_IN_BANK})

    a_first, _ = await both_orders(scenario, region)
    assert a_first.state == {"booked": False, "live": False}


# ---------------------------------------------------------------------------------------
# Vacancies
# ---------------------------------------------------------------------------------------


class Vacancies:
    """One scenario run's practice, its posted session, and matching's news of it."""

    def __init__(self, service: Service, region: str) -> None:
        self.service = service
        self.region = region
        self.names: dict[uuid.UUID | None, str | None] = {None: None}
        self.organisation = Organisation(
            new_ods(),
            "Hilltop Surgery",
            Sector.GENERAL_PRACTICE,
            region,
            53.48,
            -2.24,
            True,
            callback_url="https://practice.invalid/fairshare",
        )
        self.session: StoredSession | None = None

    async def _receive(self, kind: str, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """A verified web hook delivery, handled by the intake the web hook runs."""
        async with self.service.pool.acquire() as conn, conn.transaction():
            return await intake.receive(
                conn,
                organisation=self.organisation,
                body=delivery(kind, data),
                emitter=self.service.emitter,
            )

    async def post(self) -> StoredSession:
        """Register the practice and post one GP session."""
        async with self.service.pool.acquire() as conn, conn.transaction():
            await add_organisation(conn, self.organisation)
        code, body = await self._receive("session.posted", session_data("rota-1"))
        assert code == 202, body
        self.session = await self.stored()
        return self.session

    async def stored(self) -> StoredSession:
        async with self.service.pool.acquire() as conn:
            found = await vacancies_repository.session_by_external_id(
                conn, organisation=self.organisation.ods_code, external_id="rota-1"
            )
        assert found is not None
        return found

    def practice_cancels(self) -> Step:
        async def go() -> None:
            code, body = await self._receive(
                "session.cancelled", {"external_id": "rota-1", "reason": "Practice closed"}
            )
            assert code == 200, body

        return go

    def practice_moves(self, starts_at: datetime) -> Step:
        async def go() -> None:
            assert self.session is not None
            length = self.session.details.ends_at - self.session.details.starts_at
            data = session_data("rota-1") | {
                "starts_at": starts_at.isoformat(),
                "ends_at": (starts_at + length).isoformat(),
            }
            code, body = await self._receive("session.posted", data)
            assert code == 200, body

        return go

    def step(self, *events: tuple[str, BaseModel]) -> Step:
        async def go() -> None:
            for event_type, data in events:
                await self.service.deliver(event_type, data, self.region)

        return go

    def offer(self, name: str) -> tuple[uuid.UUID, uuid.UUID]:
        """A new offer id and the clinician it is made to, named for comparison."""
        offer_id, clinician = uuid.uuid4(), uuid.uuid4()
        self.names[offer_id] = name
        self.names[clinician] = f"clinician of {name}"
        return offer_id, clinician

    def offered(self, offer_id: uuid.UUID, clinician: uuid.UUID) -> SessionOffered:
        """Matching's offer of the session, at the time it was posted."""
        assert self.session is not None
        d = self.session.details
        return SessionOffered(
            offer_id=offer_id,
            session_id=self.session.id,
            clinician_id=clinician,
            organisation=self.organisation.ods_code,
            sector=Sector.GENERAL_PRACTICE,
            role=Role.GP,
            site_name=self.organisation.name,
            latitude=53.48,
            longitude=-2.24,
            rate_pence_per_hour=None,
            urgency=Urgency.ROUTINE,
            starts_at=d.starts_at,
            ends_at=d.ends_at,
            expires_at=datetime.now(UTC) + timedelta(hours=4),
            reasons=["Free for the whole session."],
        )

    def filled(self, offer_id: uuid.UUID, clinician: uuid.UUID) -> SessionFilled:
        """Matching's fill of the session by an accepted offer, at the posted time."""
        assert self.session is not None
        d = self.session.details
        return SessionFilled(
            session_id=self.session.id,
            offer_id=offer_id,
            clinician_id=clinician,
            organisation=self.organisation.ods_code,
            sector=Sector.GENERAL_PRACTICE,
            clinician_home_sector=Sector.GENERAL_PRACTICE,
            starts_at=d.starts_at,
            ends_at=d.ends_at,
        )

    def booking_cancelled(self, offer_id: uuid.UUID, clinician: uuid.UUID) -> BookingCancelled:
        """The bank's word that the clinician gave the booking up."""
        assert self.session is not None
        return BookingCancelled(
            offer_id=offer_id,
            session_id=self.session.id,
            clinician_id=clinician,
            reason="Family emergency",
            late=False,
        )

    async def state(self) -> dict[str, Any]:
        """The session's status, how far it moved since posted, who is booked and by
        which offer."""
        assert self.session is not None
        row = await self.service.pool.fetchrow(
            "SELECT status, starts_at, clinician_id, offer_id FROM sessions WHERE id = $1",
            self.session.id,
        )
        assert row is not None
        return {
            "status": row["status"],
            "moved_by": row["starts_at"] - self.session.details.starts_at,
            "clinician": self.names.get(row["clinician_id"], "someone unknown"),
            "booked_offer": self.names.get(row["offer_id"], "unknown offer"),
        }

    async def callbacks(self) -> list[tuple[str, str, str | None]]:
        """The practice's callbacks about the session: (type, status, clinician named)."""
        assert self.session is not None
        rows = await self.service.pool.fetch(
            "SELECT event_type, payload FROM callbacks WHERE session_id = $1 ORDER BY id",
            self.session.id,
        )
        out = []
        for r in rows:
            payload = r["payload"] if isinstance(r["payload"], dict) else json.loads(r["payload"])
            data = payload["data"]
            clinician = data.get("clinician_id")
            named = self.names.get(uuid.UUID(clinician), "someone unknown") if clinician else None
            out.append((r["event_type"], data["status"], named))
        return out


async def test_vacancies_booking_cancelled_races_session_filled_of_the_same_offer(
    vacancies: Service, region: str
) -> None:
    """The bank's ``booking.cancelled`` of offer X × matching's ``session.filled`` by X.

    Cancellation first: X is remembered (``cancelled_offers``) and its late fill books
    nobody. Fill first: filled by X's clinician, then reopened, and the practice gets
    ``session.cancelled_by_clinician``. Either way: not booked by the clinician who
    cancelled (nor by anyone).
    """

    async def scenario(region: str, a_first: bool) -> Ended:
        v = Vacancies(vacancies, region)
        await v.post()
        x = v.offer("X")
        await v.step(("session.offered", v.offered(*x)))()
        between = await race(
            a_first,
            v.step(("booking.cancelled", v.booking_cancelled(*x))),
            v.step(("session.filled", v.filled(*x))),
            v.state,
        )
        end = await v.state()
        state = {"clinician": end["clinician"], "booked_offer": end["booked_offer"]}
        state["filled"] = end["status"] == "filled"
        return Ended(state, {"between": between["clinician"], "callbacks": await v.callbacks()})

    a_first, b_first = await both_orders(scenario, region)
    assert a_first.state == {"clinician": None, "booked_offer": None, "filled": False}
    assert a_first.seen == {"between": None, "callbacks": [("session.offered", "offered", None)]}
    assert b_first.seen == {
        "between": "clinician of X",
        "callbacks": [
            ("session.offered", "offered", None),
            ("session.filled", "filled", "clinician of X"),
            ("session.cancelled_by_clinician", "open", None),
        ],
    }


async def test_vacancies_booking_cancelled_races_session_filled_of_the_replacement(
    vacancies: Service, region: str
) -> None:
    """After X filled the session: the bank's ``booking.cancelled`` of X × matching's
    offer and ``session.filled`` of the replacement offer Y.

    X's cancellation first: the session reopens, then Y offers and fills it. Y's fill
    first: it replaces X's booking, and X's late cancellation, not matching the booking
    (Y), is only remembered. Either way: filled by Y's clinician, and the practice's
    last callback names them.
    """

    async def scenario(region: str, a_first: bool) -> Ended:
        v = Vacancies(vacancies, region)
        await v.post()
        x, y = v.offer("X"), v.offer("Y")
        await v.step(("session.offered", v.offered(*x)), ("session.filled", v.filled(*x)))()
        between = await race(
            a_first,
            v.step(("booking.cancelled", v.booking_cancelled(*x))),
            v.step(("session.offered", v.offered(*y)), ("session.filled", v.filled(*y))),
            v.state,
        )
        callbacks = await v.callbacks()
        state = await v.state() | {"last_callback": callbacks[-1]}
        return Ended(state, {"between": between["clinician"]})

    a_first, b_first = await both_orders(scenario, region)
    assert a_first.state == {
        "status": "filled",
        "moved_by": timedelta(0),
        "clinician": "clinician of Y",
        "booked_offer": "Y",
        "last_callback": ("session.filled", "filled", "clinician of Y"),
    }
    assert (a_first.seen, b_first.seen) == (
        {"between": None},
        {"between": "clinician of Y"},
    )


@pytest.mark.parametrize(
    ("news", "word"),
    [
        ("session.offered", "cancellation"),
        ("session.filled", "cancellation"),
        ("session.offered", "amendment"),
        ("session.filled", "amendment"),
    ],
)
async def test_vacancies_matching_news_races_the_practices_own_word(
    vacancies: Service, region: str, news: str, word: str
) -> None:
    """Matching's ``session.offered`` / ``session.filled`` × the practice cancelling the
    session, or moving it to a new time, through its web hook.

    The practice first: an offer or fill of a cancelled session, or of its earlier
    time, is ignored. Matching first: the cancellation or amendment overrides it (a
    moved session is open again, its clinician released). Either way the practice's
    word stands: cancelled, or open at the new time with nobody booked.
    """

    async def scenario(region: str, a_first: bool) -> Ended:
        v = Vacancies(vacancies, region)
        session = await v.post()
        new_start = session.details.starts_at + timedelta(hours=3)
        x = v.offer("X")
        events: list[tuple[str, BaseModel]] = []
        if news == "session.filled":
            await v.step(("session.offered", v.offered(*x)))()
            events.append(("session.filled", v.filled(*x)))
        else:
            events.append(("session.offered", v.offered(*x)))
        practice = v.practice_cancels() if word == "cancellation" else v.practice_moves(new_start)
        await race(a_first, practice, v.step(*events), v.state)
        end = await v.state()
        state = {"status": end["status"], "moved_by": end["moved_by"]}
        if word == "amendment":
            state |= {"clinician": end["clinician"], "booked_offer": end["booked_offer"]}
        return Ended(state)

    a_first, _ = await both_orders(scenario, region)
    if word == "cancellation":
        assert a_first.state == {"status": "cancelled", "moved_by": timedelta(0)}
    else:
        assert a_first.state == {
            "status": "open",
            "moved_by": timedelta(hours=3),
            "clinician": None,
            "booked_offer": None,
        }


async def test_vacancies_redelivered_booking_cancelled_is_handled_once(
    vacancies: Service, region: str
) -> None:
    """A duplicate (the same event id again, as after a broker loss): the inbox drops
    it, so the practice hears of the clinician's cancellation once."""
    v = Vacancies(vacancies, region)
    await v.post()
    x = v.offer("X")
    await v.step(("session.offered", v.offered(*x)), ("session.filled", v.filled(*x)))()
    envelope = new_envelope(
        v.booking_cancelled(*x),
        event_type="booking.cancelled",
        schema_version=1,
        region=region,
        producer="bank",
    )
    message = (
        topic_for("booking.cancelled", vacancies.prefix),
        region.encode(),
        envelope.model_dump_json().encode(),
    )
    assert await vacancies.consumer.handle(*message) is True
    assert await vacancies.consumer.handle(*message) is False
    kinds = [kind for kind, _, _ in await v.callbacks()]
    assert kinds.count("session.cancelled_by_clinician") == 1


async def test_vacancies_a_run_of_unmatched_news_ends_as_one_by_one(
    vacancies: Service, region: str
) -> None:
    """Matching's ``session.unmatched`` for many sessions in one fetch (a plan leaves
    thousands at once) is handled as a run, in a few statements: it must end exactly
    as handling each alone, in order. An offered session twice (reopened, then told
    again), an open one, a filled one (keeps the reason, no callback), and a session
    not posted here."""

    async def scenario(region: str, as_run: bool) -> Ended:
        offered_v, open_v, filled_v = (Vacancies(vacancies, region) for _ in range(3))
        for v in (offered_v, open_v, filled_v):
            await v.post()
        await offered_v.step(("session.offered", offered_v.offered(*offered_v.offer("X"))))()
        y = filled_v.offer("Y")
        await filled_v.step(
            ("session.offered", filled_v.offered(*y)), ("session.filled", filled_v.filled(*y))
        )()

        def unmatched(v: Vacancies | None, why: str) -> Envelope[Any]:
            session_id = v.session.id if v is not None and v.session else uuid.uuid4()
            news = SessionUnmatched(
                session_id=session_id,
                organisation=v.organisation.ods_code if v else "Z99999",
                why=why,
                detail=f"Said as {why}.",
            )
            return new_envelope(
                news,
                event_type="session.unmatched",
                schema_version=1,
                region=region,
                producer="matching",
            )

        news = [
            unmatched(offered_v, "declined_by_all"),
            unmatched(open_v, "no_eligible_clinician"),
            unmatched(None, "no_eligible_clinician"),
            unmatched(filled_v, "clinicians_taken"),
            unmatched(offered_v, "clinicians_taken"),
        ]
        topic = topic_for("session.unmatched", vacancies.prefix)
        bodies = [e.model_dump_json().encode() for e in news]
        if as_run:
            records = [
                ConsumerRecord(topic, 0, i, 0, 0, region.encode(), b, None, 0, 0, [])
                for i, b in enumerate(bodies)
            ]
            await vacancies.consumer.handle_batch(records)
        else:
            for body in bodies:
                await vacancies.consumer.handle(topic, region.encode(), body)
        assert not vacancies.dead_letters.sent
        ended: dict[str, Any] = {}
        for name, v in (("offered", offered_v), ("open", open_v), ("filled", filled_v)):
            assert v.session is not None
            why = await vacancies.pool.fetchval(
                "SELECT unmatched_why FROM sessions WHERE id = $1", v.session.id
            )
            ended[name] = {**(await v.state()), "why": why, "callbacks": await v.callbacks()}
        return Ended(ended)

    as_run = await scenario(region, True)
    one_by_one = await scenario(_fresh_region(region), False)
    assert as_run.state == one_by_one.state
    assert as_run.state["offered"]["status"] == "open"
    assert as_run.state["offered"]["why"] == "clinicians_taken"
    assert as_run.state["offered"]["callbacks"][-2:] == [
        ("session.unmatched", "open", None),
        ("session.unmatched", "open", None),
    ]
    assert as_run.state["open"]["callbacks"][-1] == ("session.unmatched", "open", None)
    assert as_run.state["filled"]["status"] == "filled"
    assert as_run.state["filled"]["why"] == "clinicians_taken"
    assert "session.unmatched" not in {kind for kind, _, _ in as_run.state["filled"]["callbacks"]}


# ---------------------------------------------------------------------------------------
# Monitor
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("later_stage", ["session.offered", "session.filled"])
async def test_monitor_session_posted_races_later_stages(
    monitor: Service, region: str, later_stage: str
) -> None:
    """``session.posted`` (vacancies) × ``session.offered`` or ``session.filled``
    (matching): each session is counted once per stage it reached, whichever event
    arrives first, so the counts are the same either way."""

    async def scenario(region: str, a_first: bool) -> Ended:
        session = session_posted(START)
        offer = SessionOffered(
            offer_id=uuid.uuid4(),
            session_id=session.session_id,
            clinician_id=uuid.uuid4(),
            organisation=session.organisation,
            sector=session.sector,
            role=session.role,
            site_name=session.site_name,
            latitude=session.latitude,
            longitude=session.longitude,
            rate_pence_per_hour=session.rate_pence_per_hour,
            urgency=session.urgency,
            starts_at=session.starts_at,
            ends_at=session.ends_at,
            expires_at=datetime.now(UTC) + timedelta(hours=4),
            reasons=["Free for the whole session."],
        )
        later: BaseModel = offer
        if later_stage == "session.filled":
            later = SessionFilled(
                session_id=session.session_id,
                offer_id=offer.offer_id,
                clinician_id=offer.clinician_id,
                organisation=session.organisation,
                sector=session.sector,
                clinician_home_sector=Sector.GENERAL_PRACTICE,
                starts_at=session.starts_at,
                ends_at=session.ends_at,
            )

        async def counts() -> dict[str, tuple[int, int, int]]:
            rows = await monitor.pool.fetch(
                "SELECT sector, posted, offered, filled FROM sector_counts WHERE region = $1",
                region,
            )
            return {r["sector"]: (r["posted"], r["offered"], r["filled"]) for r in rows}

        async def posted() -> None:
            await monitor.deliver("session.posted", session, region)

        async def progressed() -> None:
            # Twice, as two distinct events (a second offer after the first lapsed).
            await monitor.deliver(later_stage, later, region)
            await monitor.deliver(later_stage, later, region)

        between = await race(a_first, posted, progressed, counts)
        return Ended(await counts(), {"between": between})

    a_first, b_first = await both_orders(scenario, region)
    expected = (1, 1, 0) if later_stage == "session.offered" else (1, 0, 1)
    assert a_first.state == {"general_practice": expected}
    assert a_first.seen == {"between": {"general_practice": (1, 0, 0)}}
    assert b_first.seen == {"between": {"general_practice": (expected[0] - 1, *expected[1:])}}
