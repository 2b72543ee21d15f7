"""Timesheets in the vacancies service: take the bank's submissions (and tell the
practice), take the practice's answers, approve overdue ones, and read them back.

Each change and its event (or callback) commit in one transaction."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog

from services.vacancies import repository
from services.vacancies.notify import notify
from services.vacancies.repository import Db
from services.vacancies.settings import VacanciesSettings
from services.vacancies.timesheets import (
    Answer,
    AnswerRefused,
    SheetState,
    after_answer,
    approval_due,
    is_due,
    takes_submission,
)
from shared.db.types import Conn
from shared.events import Envelope, TimesheetApproved, TimesheetQueried, TimesheetSubmitted
from shared.messaging.consumer import Handler
from shared.messaging.emitter import Emitter
from shared.runtime import Runtime

log = structlog.get_logger(__name__)


def sheet_json(row: Any) -> dict[str, Any]:
    """A timesheet as the practice sees it (read API and callbacks)."""
    state = SheetState(row["state"])
    return {
        "timesheet_id": str(row["id"]),
        "session_id": str(row["session_id"]),
        "clinician_id": str(row["clinician_id"]),
        "revision": row["revision"],
        "state": state.value,
        "started_at": row["started_at"].isoformat(),
        "ended_at": row["ended_at"].isoformat(),
        "break_minutes": row["break_minutes"],
        "note": row["note"],
        "submitted_at": row["submitted_at"].isoformat(),
        "approve_by": row["due_at"].isoformat(),
        "approved_at": row["answered_at"].isoformat() if state is SheetState.APPROVED else None,
        "approved_by": row["answered_by"] if state is SheetState.APPROVED else None,
        "approved_automatically": row["automatic"] if state is SheetState.APPROVED else None,
        "queried_at": row["answered_at"].isoformat() if state is SheetState.QUERIED else None,
        "query_reason": row["query_reason"] if state is SheetState.QUERIED else None,
    }


def submitted_handler(callback_window: timedelta, period: timedelta) -> Handler:
    """The handler of ``timesheet.submitted``, with the ICB's approval period."""

    async def on_submitted(conn: Conn, envelope: Envelope[Any]) -> None:
        """A clinician confirmed a session of ours: keep it and ask the practice."""
        data: TimesheetSubmitted = envelope.data
        session = await repository.session_by_id(conn, data.session_id)
        if session is None:
            return  # not posted through this service
        held = await conn.fetchrow(
            "SELECT state, revision FROM timesheets WHERE offer_id = $1 FOR UPDATE", data.offer_id
        )
        if not takes_submission(
            held["revision"] if held else None,
            state=SheetState(held["state"]) if held else None,
            revision=data.revision,
        ):
            return
        row = await conn.fetchrow(
            "INSERT INTO timesheets (id, offer_id, session_id, organisation, region,"
            " clinician_id, revision, started_at, ended_at, break_minutes, note, submitted_at,"
            " due_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
            " ON CONFLICT (offer_id) DO UPDATE SET revision = EXCLUDED.revision,"
            " started_at = EXCLUDED.started_at, ended_at = EXCLUDED.ended_at,"
            " break_minutes = EXCLUDED.break_minutes, note = EXCLUDED.note,"
            " submitted_at = EXCLUDED.submitted_at, due_at = EXCLUDED.due_at,"
            " state = 'submitted', answered_at = NULL, answered_by = NULL, automatic = false,"
            " query_reason = NULL RETURNING *",
            data.timesheet_id,
            data.offer_id,
            session.id,
            session.organisation,
            envelope.region,
            data.clinician_id,
            data.revision,
            data.started_at,
            data.ended_at,
            data.break_minutes,
            data.note,
            data.submitted_at,
            approval_due(datetime.now(UTC), period),
        )
        await notify(
            conn, session, "timesheet.submitted", window=callback_window, extra=_extra(row)
        )

    return on_submitted


def _extra(row: Any) -> dict[str, Any]:
    """A callback's timesheet fields (the session's own come from ``callback_body``)."""
    sheet = sheet_json(row)
    del sheet["session_id"]
    sheet["timesheet_state"] = sheet.pop("state")
    return sheet


async def answer(
    conn: Conn,
    *,
    organisation: str,
    timesheet_id: uuid.UUID,
    given: Answer,
    by: str | None,
    reason: str | None,
    revision: int | None,
    emitter: Emitter,
    now: datetime,
) -> dict[str, Any]:
    """The practice approves or queries one of its timesheets; publish it. Another
    organisation's timesheet is 404, exactly like a missing one."""
    row = await conn.fetchrow(
        "SELECT * FROM timesheets WHERE id = $1 AND organisation = $2 FOR UPDATE",
        timesheet_id,
        organisation,
    )
    if row is None:
        raise AnswerRefused(404, "No such timesheet of yours.")
    state = after_answer(
        SheetState(row["state"]), given, revision=row["revision"], answered_revision=revision
    )
    if state is None:
        return {"outcome": "unchanged", **sheet_json(row)}
    row = await _settle(conn, row, state, by=by, reason=reason, now=now, emitter=emitter)
    return {"outcome": state.value, **sheet_json(row)}


async def _settle(
    conn: Conn,
    row: Any,
    state: SheetState,
    *,
    by: str | None,
    reason: str | None,
    now: datetime,
    emitter: Emitter,
    automatic: bool = False,
) -> Any:
    updated = await conn.fetchrow(
        "UPDATE timesheets SET state = $2, answered_at = $3, answered_by = $4, automatic = $5,"
        " query_reason = $6 WHERE id = $1 RETURNING *",
        row["id"],
        state.value,
        now,
        by,
        automatic,
        reason,
    )
    ref = {
        "timesheet_id": row["id"],
        "offer_id": row["offer_id"],
        "session_id": row["session_id"],
        "clinician_id": row["clinician_id"],
        "revision": row["revision"],
    }
    if state is SheetState.APPROVED:
        event: TimesheetApproved | TimesheetQueried = TimesheetApproved(
            **ref, approved_at=now, approved_by=by, automatic=automatic
        )
    else:
        assert reason is not None
        event = TimesheetQueried(**ref, queried_at=now, queried_by=by, reason=reason)
    await emitter.emit(conn, event, region=row["region"])
    return updated


async def approve_overdue(
    conn: Conn, emitter: Emitter, *, callback_window: timedelta, now: datetime
) -> int:
    """Approve every timesheet left unanswered past its time, tell the practice, publish."""
    rows = await conn.fetch(
        "SELECT * FROM timesheets WHERE state = 'submitted' AND due_at <= $1"
        " ORDER BY due_at LIMIT 500 FOR UPDATE SKIP LOCKED",
        now,
    )
    approved = 0
    for row in rows:
        if not is_due(SheetState(row["state"]), row["due_at"], now=now):
            continue
        updated = await _settle(
            conn,
            row,
            SheetState.APPROVED,
            by=None,
            reason=None,
            now=now,
            emitter=emitter,
            automatic=True,
        )
        session = await repository.session_by_id(conn, row["session_id"])
        if session is not None:
            await notify(
                conn,
                session,
                "timesheet.approved",
                window=callback_window,
                extra=_extra(updated),
            )
        approved += 1
    return approved


async def approve_overdue_forever(runtime: Runtime, settings: VacanciesSettings) -> None:
    """Approve overdue timesheets every ``timesheet_sweep_s`` seconds."""
    window = timedelta(seconds=settings.callback_window_s)
    while True:
        try:
            async with runtime.pool.acquire() as conn, conn.transaction():
                approved = await approve_overdue(
                    conn, runtime.emitter, callback_window=window, now=datetime.now(UTC)
                )
            if approved:
                log.info("timesheets approved automatically", count=approved)
        except Exception:  # a failed sweep is retried at the next tick
            log.exception("timesheet approval sweep failed")
        await asyncio.sleep(settings.timesheet_sweep_s)


async def list_for(
    db: Db, organisation: str, *, state: str | None, limit: int
) -> list[asyncpg.Record]:
    """An organisation's timesheets, newest session first."""
    rows: list[asyncpg.Record] = await db.fetch(
        "SELECT * FROM timesheets WHERE organisation = $1 AND ($2::text IS NULL OR state = $2)"
        " ORDER BY started_at DESC LIMIT $3",
        organisation,
        state,
        limit,
    )
    return rows


async def one_for(db: Db, organisation: str, timesheet_id: uuid.UUID) -> asyncpg.Record | None:
    """One of an organisation's timesheets; None if missing or someone else's."""
    row: asyncpg.Record | None = await db.fetchrow(
        "SELECT * FROM timesheets WHERE id = $1 AND organisation = $2", timesheet_id, organisation
    )
    return row
