"""Kafka adapter: what matching and the bank tell us about our sessions."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from services.vacancies import callback_store, repository, timesheet_store
from services.vacancies.domain import (
    FINAL,
    Organisation,
    SessionStatus,
    StoredSession,
    after_event,
)
from services.vacancies.notify import callback_body, notify
from shared.db.types import Conn
from shared.events import BookingCancelled, Envelope, SessionUnmatched
from shared.events.contracts import CANCELLATION_REASON_WORDS
from shared.messaging.consumer import Batched, Handler, ManyHandler


def cancelled_by_clinician(data: BookingCancelled) -> dict[str, Any]:
    """What ``session.cancelled_by_clinician`` tells the practice: whether it was late, and
    why: the category always, the clinician's own words only when they chose to share
    them (``reason_text``). An event from before categories carried the words in
    ``reason`` without that choice: they are not passed on. ``reason`` here is the
    category in plain words, followed by the shared words, for systems that show one line.
    """
    words = CANCELLATION_REASON_WORDS[data.reason_category]
    extra: dict[str, Any] = {
        "late": data.late,
        "reason_category": data.reason_category.value,
        "reason": words,
    }
    if data.reason_text:
        extra["reason_text"] = data.reason_text
        extra["reason"] = f"{words}: {data.reason_text}"
    return extra


def handlers(
    callback_window: timedelta, approval_period: timedelta = timedelta(hours=72)
) -> dict[str, Handler]:
    """Event type → handler, for the service's consumer (``approval_period``: the ICB's
    period for answering a timesheet, the setting ``timesheet_approval_hours``)."""

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
            extra=cancelled_by_clinician(data),
        )

    return {
        "session.unmatched": Batched(unmatched_handler(callback_window)),
        "session.offered": on_progress,
        "session.filled": on_progress,
        "booking.cancelled": on_booking_cancelled,
        "timesheet.submitted": timesheet_store.submitted_handler(callback_window, approval_period),
    }


def unmatched_handler(callback_window: timedelta) -> ManyHandler:
    """The handler of ``session.unmatched``, a run of events at a time."""

    async def on_unmatched(conn: Conn, envelopes: list[Envelope[Any]]) -> None:
        """Matching left sessions of ours without a live offer, and says why.

        Matching publishes this only once no offer of the session is live (its stream
        keeps ``session.offered`` before it), so an offered session whose offer was
        declined or expired is open again: it reads ``open`` with the reason, and the
        practice is told (``session.unmatched``). A filled, cancelled or unfilled one
        only keeps the reason: a booking is released here by the bank's
        ``booking.cancelled`` or the practice's own word, never by matching's news.

        Taken a run at a time (one plan can leave thousands of sessions unmatched at
        once): the same outcome as one by one in order, in a few statements.
        """
        told: list[SessionUnmatched] = [e.data for e in envelopes]
        sessions = await repository.sessions_by_ids(conn, list({d.session_id for d in told}))
        reasons: dict[uuid.UUID, tuple[str | None, str | None]] = {}
        reopened: dict[uuid.UUID, StoredSession] = {}
        organisations: dict[str, Organisation | None] = {}
        callbacks: list[callback_store.NewCallback] = []
        for data in told:
            session = sessions.get(data.session_id)
            if session is None:
                continue  # not posted through this service
            reasons[session.id] = (data.why, data.detail)  # the last word stands
            if session.status not in (SessionStatus.OPEN, SessionStatus.OFFERED):
                continue
            if session.status is SessionStatus.OFFERED:
                session = replace(session, status=SessionStatus.OPEN)
                sessions[session.id] = reopened[session.id] = session
            if session.organisation not in organisations:
                organisations[session.organisation] = await repository.organisation(
                    conn, session.organisation
                )
            organisation = organisations[session.organisation]
            if organisation is None or not organisation.callback_url:
                continue
            callbacks.append(
                callback_store.NewCallback(
                    organisation=session.organisation,
                    session_id=session.id,
                    event_type="session.unmatched",
                    payload=callback_body(
                        session, "session.unmatched", {"why": data.why, "detail": data.detail}
                    ),
                    give_up_at=datetime.now(UTC) + callback_window,
                )
            )
        await repository.set_unmatched_many(conn, reasons)
        for session in reopened.values():
            await repository.save_session(conn, session)
        await callback_store.enqueue_many(conn, callbacks)

    return on_unmatched
