"""Kafka adapter: what matching and the bank tell us about our sessions."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from services.vacancies import repository
from services.vacancies.domain import SessionStatus, after_event
from services.vacancies.notify import notify
from shared.db.types import Conn
from shared.events import BookingCancelled, Envelope, SessionUnmatched
from shared.messaging.consumer import Handler


def handlers(callback_window: timedelta) -> dict[str, Handler]:
    """Event type → handler, for the service's consumer."""

    async def on_progress(conn: Conn, envelope: Envelope[Any]) -> None:
        """A session of ours was offered or filled."""
        data = envelope.data
        session = await repository.session_by_id(conn, data.session_id)
        if session is None:
            return  # not posted through this service
        if (data.starts_at, data.ends_at) != (session.details.starts_at, session.details.ends_at):
            return  # about the session before an amendment; matching re-plans the new one
        status = after_event(session.status, envelope.type)
        if status is session.status:
            return
        clinician = data.clinician_id if status is SessionStatus.FILLED else session.clinician_id
        updated = replace(session, status=status, clinician_id=clinician)
        await repository.save_session(conn, updated)
        extra: dict[str, Any] = {}
        if status is SessionStatus.FILLED:
            extra["clinician_id"] = str(data.clinician_id)
        else:
            extra["offer_expires_at"] = data.expires_at.isoformat()
        await notify(conn, updated, envelope.type, window=callback_window, extra=extra)

    async def on_booking_cancelled(conn: Conn, envelope: Envelope[Any]) -> None:
        """The booked clinician cancelled: the session is open again, and we say so."""
        data: BookingCancelled = envelope.data
        session = await repository.session_by_id(conn, data.session_id)
        if session is None or session.clinician_id != data.clinician_id:
            return
        status = after_event(session.status, envelope.type)
        if status is session.status:
            return
        updated = replace(session, status=status, clinician_id=None)
        await repository.save_session(conn, updated)
        await notify(
            conn,
            updated,
            "session.cancelled_by_clinician",
            window=callback_window,
            extra={"reason": data.reason, "late": data.late},
        )

    async def on_unmatched(conn: Conn, envelope: Envelope[Any]) -> None:
        """Matching says why a session of ours has no offer: kept for when it goes unfilled."""
        data: SessionUnmatched = envelope.data
        await repository.set_unmatched(conn, data.session_id, data.why, data.detail)

    return {
        "session.unmatched": on_unmatched,
        "session.offered": on_progress,
        "session.filled": on_progress,
        "booking.cancelled": on_booking_cancelled,
    }
