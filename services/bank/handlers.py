"""Kafka adapter: offers arrive from matching; bookings are confirmed by it."""

from __future__ import annotations

from typing import Any

from services.bank import repository, timesheet_store
from services.bank.domain import OfferStatus, distance_km
from shared.db.types import Conn
from shared.events import (
    Envelope,
    OfferRefused,
    SessionAmended,
    SessionCancelled,
    SessionFilled,
    SessionOffered,
)
from shared.messaging.consumer import Handler


async def on_session_offered(conn: Conn, envelope: Envelope[Any]) -> None:
    """Show a new offer to its clinician, with how far it is from their base."""
    data: SessionOffered = envelope.data
    clinician = await repository.clinician(conn, data.clinician_id)
    if clinician is None:
        return  # an offer to someone this bank doesn't hold: nothing to show
    if await repository.offer_is_stale(
        conn, data.session_id, starts_at=data.starts_at, ends_at=data.ends_at, role=data.role.value
    ):
        return  # made before matching heard of a cancellation or amendment we have seen
    await repository.insert_offer(
        conn,
        {
            "id": data.offer_id,
            "session_id": data.session_id,
            "clinician_id": data.clinician_id,
            "organisation": data.organisation,
            "sector": data.sector.value,
            "role": data.role.value,
            "starts_at": data.starts_at,
            "ends_at": data.ends_at,
            "expires_at": data.expires_at,
            # Working-time warnings (self-employed only) are shown with the reasons, so
            # the clinician weighs them before accepting.
            "reasons": [*data.reasons, *(f"Warning: {w}" for w in data.warnings)],
            "site_name": data.site_name,
            "latitude": data.latitude,
            "longitude": data.longitude,
            "distance_km": round(
                distance_km(clinician.latitude, clinician.longitude, data.latitude, data.longitude),
                1,
            ),
            "rate_pence_per_hour": data.rate_pence_per_hour,
            "urgency": data.urgency.value,
        },
    )
    # Wakes the clinician's open app (after commit, which is exactly when it may look).
    await repository.wake_app(conn, data.clinician_id)


async def on_session_filled(conn: Conn, envelope: Envelope[Any]) -> None:
    """Turn the accepted offer into a booking."""
    data: SessionFilled = envelope.data
    await repository.confirm_booking(conn, data.offer_id)


async def on_offer_refused(conn: Conn, envelope: Envelope[Any]) -> None:
    """Tell the clinician their acceptance could not be honoured, and why."""
    data: OfferRefused = envelope.data
    if await repository.refuse_offer(conn, data.offer_id, reason=data.reason):
        await repository.wake_app(conn, data.clinician_id)


async def on_session_amended(conn: Conn, envelope: Envelope[Any]) -> None:
    """Offers of the session as it stood before are withdrawn, and a booking the change
    released is no longer the clinician's; later offers of the old shape are not shown."""
    data: SessionAmended = envelope.data
    starts, ends, role = data.starts_at, data.ends_at, data.role.value
    await repository.hear_amended(conn, data.session_id, starts_at=starts, ends_at=ends, role=role)
    for clinician in await repository.close_reshaped_offers(
        conn, data.session_id, starts_at=starts, ends_at=ends, role=role
    ):
        await repository.wake_app(conn, clinician)
    if data.released_clinician_id is not None:
        for clinician in await repository.close_session_offers(
            conn,
            data.session_id,
            booked_to=OfferStatus.CANCELLED,
            note="The organisation changed the session's time or role; you are not booked.",
        ):
            await repository.wake_app(conn, clinician)


async def on_session_cancelled(conn: Conn, envelope: Envelope[Any]) -> None:
    """Tell whoever was booked or offered that the session is gone, and why."""
    data: SessionCancelled = envelope.data
    await repository.hear_cancelled(conn, data.session_id)
    reason = f": {data.reason}" if data.reason else "."
    for clinician in await repository.close_session_offers(
        conn,
        data.session_id,
        booked_to=OfferStatus.CANCELLED,
        note=f"The organisation cancelled the session{reason}",
    ):
        await repository.wake_app(conn, clinician)


def handlers() -> dict[str, Handler]:
    """Event type → handler, for the service's consumer."""
    return {
        "session.offered": on_session_offered,
        "session.filled": on_session_filled,
        "offer.refused": on_offer_refused,
        "session.amended": on_session_amended,
        "session.cancelled": on_session_cancelled,
        "timesheet.approved": timesheet_store.hear_answer,
        "timesheet.queried": timesheet_store.hear_answer,
    }
