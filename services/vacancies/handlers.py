"""Kafka adapter: what matching and the bank tell us about our sessions."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from services.vacancies import repository
from services.vacancies.domain import FINAL, SessionStatus, after_event
from services.vacancies.notify import notify
from shared.db.types import Conn
from shared.events import BookingCancelled, Envelope, SessionUnmatched
from shared.messaging.consumer import Handler


def handlers(callback_window: timedelta) -> dict[str, Handler]:
    """Event type → handler, for the service's consumer."""

    async def on_progress(conn: Conn, envelope: Envelope[Any]) -> None:
        """A session of ours was offered or filled.

        Matching's events arrive in order, but the bank's cancellations race them
        (docs/ordering.md): a fill of an offer whose booking the clinician already gave
        up books nobody, and a fill by a new offer replaces the booking it follows.
        """
        data = envelope.data
        session = await repository.session_by_id(conn, data.session_id)
        if session is None:
            return  # not posted through this service
        if (data.starts_at, data.ends_at) != (session.details.starts_at, session.details.ends_at):
            return  # about the session before an amendment; matching re-plans the new one
        if envelope.type == "session.filled":
            if session.status in FINAL or await repository.offer_was_cancelled(conn, data.offer_id):
                return
            booked = await repository.booked_offer(conn, session.id)
            if session.status is SessionStatus.FILLED and booked == data.offer_id:
                return
            updated = replace(session, status=SessionStatus.FILLED, clinician_id=data.clinician_id)
            await repository.save_session(conn, updated)
            await repository.set_booked_offer(conn, session.id, data.offer_id)
            extra: dict[str, Any] = {"clinician_id": str(data.clinician_id)}
        else:
            status = after_event(session.status, envelope.type)
            if status is session.status:
                return
            updated = replace(session, status=status)
            await repository.save_session(conn, updated)
            # Offered now: matching's last reason for having no offer no longer stands.
            await repository.set_unmatched(conn, session.id, None, None)
            extra = {"offer_expires_at": data.expires_at.isoformat()}
        await notify(conn, updated, envelope.type, window=callback_window, extra=extra)

    async def on_booking_cancelled(conn: Conn, envelope: Envelope[Any]) -> None:
        """The booked clinician cancelled: the session is open again, and we say so."""
        data: BookingCancelled = envelope.data
        await repository.remember_cancelled_offer(conn, data.offer_id, data.session_id)
        session = await repository.session_by_id(conn, data.session_id)
        if session is None or session.status is not SessionStatus.FILLED:
            return
        booked = await repository.booked_offer(conn, session.id)
        if booked != data.offer_id and (
            booked is not None or session.clinician_id != data.clinician_id
        ):
            return  # a later offer's booking replaced this one already
        updated = replace(session, status=SessionStatus.OPEN, clinician_id=None)
        await repository.save_session(conn, updated)
        await notify(
            conn,
            updated,
            "session.cancelled_by_clinician",
            window=callback_window,
            extra={"reason": data.reason, "late": data.late},
        )

    async def on_unmatched(conn: Conn, envelope: Envelope[Any]) -> None:
        """Matching left a session of ours without a live offer, and says why.

        Matching publishes this only once no offer of the session is live (its stream
        keeps ``session.offered`` before it), so an offered session whose offer was
        declined or expired is open again: it reads ``open`` with the reason, and the
        practice is told (``session.unmatched``). A filled, cancelled or unfilled one
        only keeps the reason: a booking is released here by the bank's
        ``booking.cancelled`` or the practice's own word, never by matching's news.
        """
        data: SessionUnmatched = envelope.data
        session = await repository.session_by_id(conn, data.session_id)
        if session is None:
            return  # not posted through this service
        await repository.set_unmatched(conn, data.session_id, data.why, data.detail)
        if session.status not in (SessionStatus.OPEN, SessionStatus.OFFERED):
            return
        if session.status is SessionStatus.OFFERED:
            session = replace(session, status=SessionStatus.OPEN)
            await repository.save_session(conn, session)
        await notify(
            conn,
            session,
            "session.unmatched",
            window=callback_window,
            extra={"why": data.why, "detail": data.detail},
        )

    return {
        "session.unmatched": on_unmatched,
        "session.offered": on_progress,
        "session.filled": on_progress,
        "booking.cancelled": on_booking_cancelled,
    }
