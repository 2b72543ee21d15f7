"""The bank's timesheets in PostgreSQL: submit (with its event, in one transaction), hear
the practice's answers, and read each worked session's pay state."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from services.bank.domain import Clinician
from services.bank.repository import Db
from services.bank.timesheets import (
    PayState,
    TimesheetRefused,
    Worked,
    after_answer,
    check_worked,
    may_submit,
    prefilled,
)
from shared.db.types import Conn
from shared.events import Envelope, TimesheetApproved, TimesheetQueried, TimesheetSubmitted
from shared.messaging.emitter import Emitter

_SESSIONS = (
    "SELECT o.id AS offer_id, o.session_id, o.organisation, o.site_name, o.role,"
    " o.starts_at, o.ends_at, o.rate_pence_per_hour, t.id AS timesheet_id, t.revision,"
    " t.started_at, t.ended_at, t.break_minutes, t.note, t.state, t.submitted_at,"
    " t.answered_at, t.answered_by, t.automatic, t.query_reason"
    " FROM offers o LEFT JOIN timesheets t ON t.offer_id = o.id"
    " WHERE o.clinician_id = $1 AND o.status = 'booked'"
)


async def worked_sessions(db: Db, clinician_id: uuid.UUID, *, now: datetime) -> list[Any]:
    """The clinician's booked sessions that have ended, newest first, with timesheets."""
    rows: list[Any] = await db.fetch(
        _SESSIONS + " AND o.ends_at <= $2 ORDER BY o.starts_at DESC", clinician_id, now
    )
    return rows


async def worked_session(db: Db, clinician_id: uuid.UUID, offer_id: uuid.UUID) -> Any:
    """One of the clinician's bookings with its timesheet; None if not theirs or not booked."""
    return await db.fetchrow(_SESSIONS + " AND o.id = $2", clinician_id, offer_id)


def pay_json(row: Any) -> dict[str, Any]:
    """A booking's pay state, as the clinician's app shows it."""
    state = PayState(row["state"]) if row["state"] else PayState.WORKED
    sheet = prefilled(row["starts_at"], row["ends_at"])
    if row["timesheet_id"] is not None:
        sheet = Worked(row["started_at"], row["ended_at"], row["break_minutes"], row["note"])
    return {
        "offer_id": str(row["offer_id"]),
        "session_id": str(row["session_id"]),
        "organisation": row["organisation"],
        "site_name": row["site_name"],
        "role": row["role"],
        "booked_starts_at": row["starts_at"].isoformat(),
        "booked_ends_at": row["ends_at"].isoformat(),
        "rate_pence_per_hour": row["rate_pence_per_hour"],
        "pay_state": state.value,
        "timesheet_id": str(row["timesheet_id"]) if row["timesheet_id"] else None,
        "revision": row["revision"],
        "started_at": sheet.started_at.isoformat(),
        "ended_at": sheet.ended_at.isoformat(),
        "break_minutes": sheet.break_minutes,
        "note": sheet.note,
        "submitted_at": row["submitted_at"].isoformat() if row["submitted_at"] else None,
        "approved_at": (row["answered_at"].isoformat() if state is PayState.APPROVED else None),
        "approved_by": row["answered_by"] if state is PayState.APPROVED else None,
        "approved_automatically": row["automatic"] if state is PayState.APPROVED else None,
        "queried_at": row["answered_at"].isoformat() if state is PayState.QUERIED else None,
        "query_reason": row["query_reason"] if state is PayState.QUERIED else None,
    }


async def submit(
    conn: Conn,
    *,
    clinician: Clinician,
    offer_id: uuid.UUID,
    changes: dict[str, Any],
    emitter: Emitter,
    now: datetime,
) -> Any:
    """Store the clinician's timesheet for a booking and publish it, in one transaction.

    ``changes`` are the fields the clinician changed from the booking (none: it was worked
    as booked). A first submission, or a correction after a query; anything else 409.
    """
    # Locks the booking: two submissions at once queue here, and the second sees the first.
    booking = await conn.fetchrow(
        "SELECT * FROM offers WHERE id = $1 AND clinician_id = $2 AND status = 'booked' FOR UPDATE",
        offer_id,
        clinician.id,
    )
    if booking is None:
        raise TimesheetRefused(404, "No such booking for you.")
    current = await conn.fetchrow("SELECT * FROM timesheets WHERE offer_id = $1", offer_id)
    state = PayState(current["state"]) if current else None
    may_submit(state)
    base = prefilled(booking["starts_at"], booking["ends_at"])
    worked = check_worked(
        Worked(
            changes.get("started_at", base.started_at),
            changes.get("ended_at", base.ended_at),
            changes.get("break_minutes", base.break_minutes),
            changes.get("note", base.note),
        ),
        booked_start=booking["starts_at"],
        booked_end=booking["ends_at"],
        now=now,
    )
    timesheet_id = current["id"] if current else uuid.uuid4()
    revision = current["revision"] + 1 if current else 1
    await conn.execute(
        "INSERT INTO timesheets (id, offer_id, clinician_id, session_id, revision, started_at,"
        " ended_at, break_minutes, note, state, submitted_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'submitted', $10)"
        " ON CONFLICT (offer_id) DO UPDATE SET revision = EXCLUDED.revision,"
        " started_at = EXCLUDED.started_at, ended_at = EXCLUDED.ended_at,"
        " break_minutes = EXCLUDED.break_minutes, note = EXCLUDED.note, state = 'submitted',"
        " submitted_at = EXCLUDED.submitted_at, answered_at = NULL, answered_by = NULL,"
        " automatic = false, query_reason = NULL",
        timesheet_id,
        offer_id,
        clinician.id,
        booking["session_id"],
        revision,
        worked.started_at,
        worked.ended_at,
        worked.break_minutes,
        worked.note,
        now,
    )
    await emitter.emit(
        conn,
        TimesheetSubmitted(
            timesheet_id=timesheet_id,
            offer_id=offer_id,
            session_id=booking["session_id"],
            clinician_id=clinician.id,
            revision=revision,
            organisation=booking["organisation"],
            started_at=worked.started_at,
            ended_at=worked.ended_at,
            break_minutes=worked.break_minutes,
            note=worked.note,
            submitted_at=now,
        ),
        region=clinician.region,
    )
    return await worked_session(conn, clinician.id, offer_id)


async def hear_answer(conn: Conn, envelope: Envelope[Any]) -> None:
    """The practice approved or queried a timesheet (or it was approved automatically)."""
    data: TimesheetApproved | TimesheetQueried = envelope.data
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT state, revision FROM timesheets WHERE id = $1 FOR UPDATE", data.timesheet_id
    )
    if row is None:
        return  # not a timesheet of this bank's
    answer = PayState.APPROVED if isinstance(data, TimesheetApproved) else PayState.QUERIED
    before = PayState(row["state"])
    after = after_answer(before, row["revision"], answer=answer, answered_revision=data.revision)
    if after is before:
        return
    if isinstance(data, TimesheetApproved):
        at, by, automatic, reason = data.approved_at, data.approved_by, data.automatic, None
    else:
        at, by, automatic, reason = data.queried_at, data.queried_by, False, data.reason
    await conn.execute(
        "UPDATE timesheets SET state = $2, answered_at = $3, answered_by = $4, automatic = $5,"
        " query_reason = $6 WHERE id = $1",
        data.timesheet_id,
        after.value,
        at,
        by,
        automatic,
        reason,
    )
