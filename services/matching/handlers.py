"""Kafka adapter: each relevant event updates what matching knows, then re-plans."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog

from services.matching import ledger, planning, repository
from services.matching.domain import Window
from services.matching.plan_worker import PlanWorker
from services.matching.policy import next_round_after
from services.matching.ports import MatchingRepository
from shared.db.types import Conn
from shared.events import (
    AvailabilityOffered,
    AvailabilityWithdrawn,
    BookingCancelled,
    ClinicianTransferred,
    Envelope,
    OfferAccepted,
    OfferDeclined,
    SessionAmended,
    SessionCancelled,
    SessionPosted,
    SessionUnfilled,
)
from shared.messaging.consumer import Handler, Typed
from shared.messaging.emitter import Emitter
from shared.runtime import Runtime

log = structlog.get_logger(__name__)

Closing = SessionCancelled | SessionUnfilled


def handlers(
    emitter: Emitter, *, debounce_s: float = 0.2, repo: MatchingRepository = repository
) -> dict[str, Handler]:
    """Event type → handler, for the service's consumer.

    Handlers record what changed and ask for a re-plan of the stretch of time it
    touches; the planner runs it once the region's first request falls due, so a burst
    of events (a batch of 500 sessions) is planned together, not one by one. ``repo``
    is the SQL repository in the service (an in-memory one in the unit tests).
    """

    async def plan_soon(conn: Conn, region: str, span: repository.Span) -> None:
        due = datetime.now(UTC) + timedelta(seconds=debounce_s)
        await repo.request_plan(conn, region, span, due_at=due)

    async def on_session_posted(conn: Conn, envelope: Envelope[SessionPosted]) -> None:
        data = envelope.data
        await repo.insert_session(conn, envelope.region, data)
        await plan_soon(conn, envelope.region, (data.starts_at, data.ends_at))

    async def on_availability_offered(conn: Conn, envelope: Envelope[AvailabilityOffered]) -> None:
        data = envelope.data
        window = Window(
            clinician_id=data.clinician_id,
            profession=data.profession,
            home_sector=data.home_sector,
            starts_at=data.starts_at,
            ends_at=data.ends_at,
            skills=frozenset(data.skills),
            latitude=data.latitude,
            longitude=data.longitude,
            travel_km=data.travel_km,
            wtr_opt_out=data.wtr_opt_out,
            self_employed=data.self_employed,
        )
        await repo.insert_window(
            conn, region=envelope.region, availability_id=data.availability_id, window=window
        )
        await plan_soon(conn, envelope.region, (data.starts_at, data.ends_at))

    async def on_offer_accepted(conn: Conn, envelope: Envelope[OfferAccepted]) -> None:
        await planning.confirm(conn, envelope=envelope, emitter=emitter, repo=repo)

    async def on_session_amended(conn: Conn, envelope: Envelope[SessionAmended]) -> None:
        """A changed time, role or skills voids bookings and offers: plan it afresh."""
        data = envelope.data
        before = await repo.session_span(conn, data.session_id)
        if await repo.update_session(conn, envelope.region, data):
            await repo.release(conn, data.session_id, status="open")
            await ledger.session_released(
                conn,
                region=envelope.region,
                session_id=data.session_id,
                why="session_amended",
                emitter=emitter,
                cause=envelope,
                repo=repo,
            )
            # Its clinician is free at the old time; the session needs one at the new.
            await plan_soon(conn, envelope.region, _union(before, (data.starts_at, data.ends_at)))

    async def on_session_closed(conn: Conn, envelope: Envelope[Closing]) -> None:
        """Cancelled or started unfilled: nothing more to offer, and its clinician is free."""
        status = "cancelled" if envelope.type == "session.cancelled" else "unfilled"
        await repo.close_session(conn, envelope.region, envelope.data, status=status)
        await ledger.session_released(
            conn,
            region=envelope.region,
            session_id=envelope.data.session_id,
            why=f"session_{status}",
            emitter=emitter,
            cause=envelope,
            repo=repo,
        )
        await plan_soon(conn, envelope.region, (envelope.data.starts_at, envelope.data.ends_at))

    async def on_booking_cancelled(conn: Conn, envelope: Envelope[BookingCancelled]) -> None:
        """The clinician gave it up: offer the session to someone else."""
        data = envelope.data
        if await repo.cancel_booking(conn, data.offer_id, data.clinician_id):
            await ledger.session_released(
                conn,
                region=envelope.region,
                session_id=data.session_id,
                why="booking_cancelled",
                emitter=emitter,
                cause=envelope,
                repo=repo,
            )
            await plan_soon(conn, envelope.region, await repo.offer_span(conn, data.offer_id))

    async def on_availability_withdrawn(
        conn: Conn, envelope: Envelope[AvailabilityWithdrawn]
    ) -> None:
        """Time taken back: its unanswered offers go to someone else."""
        data = envelope.data
        span = await repo.withdraw_window(conn, data.availability_id, data.clinician_id)
        if span and await repo.withdraw_offers_within(conn, data.clinician_id, *span):
            await plan_soon(conn, envelope.region, span)

    async def on_offer_declined(conn: Conn, envelope: Envelope[OfferDeclined]) -> None:
        """No thank you: cascade to the next eligible clinician."""
        data = envelope.data
        if await repo.decline(conn, data.offer_id, data.clinician_id):
            await plan_soon(conn, envelope.region, await repo.offer_span(conn, data.offer_id))

    async def on_clinician_transferred(
        conn: Conn, envelope: Envelope[ClinicianTransferred]
    ) -> None:
        """A permanent move between sectors: into the ledger, and plan with the new home."""
        await ledger.transferred(conn, envelope=envelope, emitter=emitter, repo=repo)
        await plan_soon(conn, envelope.region, None)

    # Each handler takes its event's own model (what ``parse`` validated ``data`` as);
    # ``Typed`` checks the registration at run time. The two closings share a handler
    # of either model, each registration checking its own.
    return {
        "clinician.transferred": Typed(ClinicianTransferred, on_clinician_transferred),
        "availability.withdrawn": Typed(AvailabilityWithdrawn, on_availability_withdrawn),
        "offer.declined": Typed(OfferDeclined, on_offer_declined),
        "session.posted": Typed(SessionPosted, on_session_posted),
        "session.amended": Typed(SessionAmended, on_session_amended),
        "session.cancelled": Typed[Closing](SessionCancelled, on_session_closed),
        "session.unfilled": Typed[Closing](SessionUnfilled, on_session_closed),
        "availability.offered": Typed(AvailabilityOffered, on_availability_offered),
        "offer.accepted": Typed(OfferAccepted, on_offer_accepted),
        "booking.cancelled": Typed(BookingCancelled, on_booking_cancelled),
    }


def _union(a: repository.Span, b: repository.Span) -> repository.Span:
    if a is None or b is None:
        return a or b
    return (min(a[0], b[0]), max(a[1], b[1]))


async def plan_due(
    runtime: Runtime, worker: PlanWorker | None = None, pacer: planning.Pacer | None = None
) -> int:
    """Run every region's re-plan that has fallen due (and that ``pacer`` allows);
    return how many offers were made."""
    made = 0
    for region in await repository.due_plan_regions(runtime.pool, datetime.now(UTC)):
        if pacer is not None and not pacer.ready(region):
            continue
        started = time.monotonic()
        try:
            made += await planning.run_request_detached(
                runtime.pool, region=region, emitter=runtime.emitter, worker=worker
            )
        finally:
            if pacer is not None:
                pacer.record(region, time.monotonic() - started)
    return made


async def plan_due_forever(
    runtime: Runtime,
    poll_s: float,
    worker: PlanWorker | None = None,
    pacer: planning.Pacer | None = None,
) -> None:
    """The debounced planner: a cheap poll for requests that have fallen due."""
    while True:
        await asyncio.sleep(poll_s)
        try:
            await plan_due(runtime, worker, pacer)
        except Exception:  # the request is asked for again and retried next poll
            log.exception("planning failed")


async def sweep_forever(
    runtime: Runtime, every_s: float, full_every_s: float, worker: PlanWorker | None = None
) -> None:
    """Plan again where offers have expired, every ``every_s``; every region whole, every
    ``full_every_s``.

    Events ask for the stretch of time they touch; an offer expiring is no event, so
    the sweep asks for its stretch. Planning every region whole on every sweep kept a
    core busy re-planning thousands of sessions nothing had changed for; the rare full
    sweep remains for what no stretch captures (cap room freed far away in time, or a
    request lost with a crash).

    Once a day, when the clock passes ``next_round_after`` the last round (the first
    counted from now), comes the daily planning round (``daily_round``).
    """
    last = last_round = datetime.now(UTC)
    last_full = time.monotonic()
    while True:
        await asyncio.sleep(every_s)
        try:
            now = datetime.now(UTC)
            expired = await repository.expired_offer_spans(runtime.pool, after=last, until=now)
            if expired:
                async with runtime.pool.acquire() as conn, conn.transaction():
                    for region, span in expired.items():
                        await repository.request_plan(conn, region, span, due_at=now)
            last = now
            # Alerts follow the window as it slides; the ledger's repairs are published.
            await ledger.keep_current(runtime.pool, emitter=runtime.emitter, now=now)
            if now >= next_round_after(last_round):
                # Once, even if it fails: the full sweep plans the same regions anyway.
                last_round = now
                await daily_round(runtime.pool, emitter=runtime.emitter, now=now, worker=worker)
            if time.monotonic() - last_full < full_every_s:
                continue
            last_full = time.monotonic()
            for region in await repository.regions_with_open_sessions(runtime.pool, now):
                made = await planning.replan_detached(
                    runtime.pool, region=region, emitter=runtime.emitter, worker=worker
                )
                if made:
                    log.info("full sweep made offers", region=region, offers=made)
        except Exception:  # a failed sweep is retried at the next tick
            log.exception("sweep failed")


async def daily_round(
    pool: asyncpg.Pool, *, emitter: Emitter, now: datetime, worker: PlanWorker | None = None
) -> int:
    """The daily planning round (``policy.ROUND_HOUR``, UK time): every region whose
    policy holds offers back (``hold_beyond_h``) and has open sessions is planned whole,
    so the sessions that have come within its hold since are planned together. Return
    how many offers were made."""
    made = 0
    for region in await repository.regions_holding(pool, now):
        offers = await planning.replan_detached(pool, region=region, emitter=emitter, worker=worker)
        log.info("daily round", region=region, offers=offers)
        made += offers
    return made
