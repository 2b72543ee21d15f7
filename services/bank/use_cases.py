"""The bank's use cases: offer time, accept an offer. Plain functions over a connection."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg

from services.bank import repository
from services.bank.domain import Clinician, OfferStatus, check_acceptance
from shared.db.types import Conn
from shared.events import AvailabilityOffered, OfferAccepted
from shared.messaging.emitter import Emitter


class WindowOverlaps(Exception):  # noqa: N818 - a refusal, not a crash
    """The new window overlaps one the clinician already offered."""


async def offer_availability(
    conn: Conn,
    *,
    clinician: Clinician,
    starts_at: datetime,
    ends_at: datetime,
    emitter: Emitter,
) -> uuid.UUID:
    """Store a window and tell matching about it, in one transaction."""
    availability_id = uuid.uuid4()
    try:
        async with conn.transaction():
            await repository.insert_availability(
                conn,
                availability_id=availability_id,
                clinician_id=clinician.id,
                starts_at=starts_at,
                ends_at=ends_at,
            )
    except asyncpg.ExclusionViolationError as exc:
        raise WindowOverlaps from exc
    await emitter.emit(
        conn,
        AvailabilityOffered(
            availability_id=availability_id,
            clinician_id=clinician.id,
            profession=clinician.profession,
            home_sector=clinician.home_sector,
            skills=sorted(clinician.skills),
            starts_at=starts_at,
            ends_at=ends_at,
        ),
        region=clinician.region,
    )
    return availability_id


async def accept_offer(
    conn: Conn,
    *,
    clinician: Clinician,
    offer_id: uuid.UUID,
    emitter: Emitter,
    now: datetime | None = None,
) -> None:
    """Accept an offer for ``clinician``; OfferRefused (nothing changed) if they may not."""
    offer = check_acceptance(
        await repository.offer_for_update(conn, offer_id),
        clinician_id=clinician.id,
        now=now or datetime.now(UTC),
    )
    await repository.set_offer_status(conn, offer.id, OfferStatus.ACCEPTED)
    await emitter.emit(
        conn,
        OfferAccepted(offer_id=offer.id, session_id=offer.session_id, clinician_id=clinician.id),
        region=clinician.region,
    )
