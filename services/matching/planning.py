"""The matching use cases: re-plan a region, confirm an accepted offer."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from services.matching import repository
from services.matching.domain import offer_expiry, plan_offers
from shared.catalogue import Sector
from shared.db.types import Conn
from shared.events import Envelope, OfferAccepted, OfferRefused, SessionFilled, SessionOffered
from shared.messaging.emitter import Emitter

log = structlog.get_logger(__name__)


async def replan(
    conn: Conn,
    *,
    region: str,
    emitter: Emitter,
    cause: Envelope[Any] | None = None,
    now: datetime | None = None,
    span: repository.Span = None,
) -> int:
    """Offer every open session of ``region`` that can be offered; return how many.

    With a ``span``, only sessions overlapping it are planned (and only the windows and
    commitments overlapping it read): an event touches one stretch of time, and planning
    the whole region on every event grows with the square of its size. The periodic
    sweep still plans everything.
    """
    now = now or datetime.now(UTC)
    await repository.lock_region(conn, region)
    proposals = plan_offers(
        await repository.sessions_needing_offer(conn, region, now, span),
        await repository.windows(conn, region, now, span),
        await repository.commitments(conn, region, now, span),
        already_tried=await repository.tried_pairs(conn, region, span),
    )
    for proposal in proposals:
        offer_id = uuid.uuid4()
        expires_at = offer_expiry(now, proposal.session.starts_at)
        await repository.insert_offer(
            conn, offer_id=offer_id, region=region, proposal=proposal, expires_at=expires_at
        )
        session = proposal.session
        await emitter.emit(
            conn,
            SessionOffered(
                offer_id=offer_id,
                session_id=session.id,
                clinician_id=proposal.clinician_id,
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
                expires_at=expires_at,
                reasons=list(proposal.reasons),
            ),
            region=region,
            cause=cause,
        )
    return len(proposals)


async def confirm(conn: Conn, *, envelope: Envelope[Any], emitter: Emitter) -> bool:
    """Book an accepted offer if it still stands; True when the session is filled.

    An acceptance that can't be honoured (expired, session gone, clinician already
    booked at that time) is refused with ``offer.refused`` and the region re-planned.
    A lost race is refused by the database's constraints, whatever the timing.
    """
    data: OfferAccepted = envelope.data
    offer = await repository.offer_for_update(conn, data.offer_id)
    if offer is None or offer["clinician_id"] != data.clinician_id:
        log.warning("acceptance of an unknown offer ignored", offer_id=str(data.offer_id))
        return False
    if offer["status"] != "offered":
        # Already answered: a redelivery, or an acceptance after a refusal.
        log.info("acceptance ignored", offer_id=str(data.offer_id), status=offer["status"])
        return False
    # Judge expiry by when the clinician accepted, not by how late the event arrived.
    if offer["expires_at"] <= envelope.occurred_at:
        refusal = ("expired", "The offer had expired when you accepted it.")
    elif offer["session_status"] != "open":
        refusal = ("lost", "The session was filled or withdrawn before you accepted.")
    else:
        try:
            async with conn.transaction():
                await repository.book(conn, offer)
        except (asyncpg.ExclusionViolationError, asyncpg.UniqueViolationError):
            refusal = ("lost", "You are already booked at an overlapping time.")
        else:
            await _fill(conn, offer, envelope=envelope, emitter=emitter)
            return True
    await _refuse(conn, offer, refusal, envelope=envelope, emitter=emitter)
    return False


async def _refuse(
    conn: Conn,
    offer: asyncpg.Record,
    refusal: tuple[str, str],
    *,
    envelope: Envelope[Any],
    emitter: Emitter,
) -> None:
    status, reason = refusal
    await repository.set_offer_status(conn, offer["id"], status)
    await emitter.emit(
        conn,
        OfferRefused(
            offer_id=offer["id"],
            session_id=offer["session_id"],
            clinician_id=offer["clinician_id"],
            reason=reason,
        ),
        region=envelope.region,
        cause=envelope,
    )
    await replan(conn, region=envelope.region, emitter=emitter, cause=envelope)


async def _fill(
    conn: Conn, offer: asyncpg.Record, *, envelope: Envelope[Any], emitter: Emitter
) -> None:
    await repository.set_offer_status(conn, offer["id"], "accepted")
    await emitter.emit(
        conn,
        SessionFilled(
            session_id=offer["session_id"],
            offer_id=offer["id"],
            clinician_id=offer["clinician_id"],
            organisation=offer["organisation"],
            sector=Sector(offer["sector"]),
            clinician_home_sector=Sector(offer["clinician_home_sector"]),
            starts_at=offer["starts_at"],
            ends_at=offer["ends_at"],
        ),
        region=envelope.region,
        cause=envelope,
    )
