"""Timesheets: confirm a worked session's hours, and see each session's pay state."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from services.bank import timesheet_store
from services.bank.api import INVALID, SIGNED_IN, WITH_BODY, problem
from services.bank.api.auth import Me, runtime_of
from services.bank.timesheets import TimesheetRefused
from shared.events.timesheets import NOTE_MAX
from shared.http.problems import Problem
from shared.validation import Instant, Text

router = APIRouter(prefix="/api", tags=["timesheets and pay"], responses=SIGNED_IN)


class TimesheetIn(BaseModel):
    """What you worked, where it differs from the booking; leave out what didn't change."""

    model_config = ConfigDict(extra="forbid")

    started_at: Instant | None = Field(
        default=None, description="When you started (default: the booked start)."
    )
    ended_at: Instant | None = Field(
        default=None, description="When you finished (default: the booked end)."
    )
    break_minutes: int | None = Field(
        default=None, ge=0, le=600, description="Unpaid break, minutes (default: none)."
    )
    note: Text | None = Field(
        default=None, max_length=NOTE_MAX, description="A note for the practice, if any."
    )


@router.get("/timesheets", summary="My worked sessions and their pay state")
async def my_timesheets(request: Request, me: Me) -> list[dict[str, Any]]:
    """Every booked session that has ended, newest first: worked (not yet confirmed),
    submitted, approved (when, by whom or automatically) or queried (why)."""
    rows = await timesheet_store.worked_sessions(
        runtime_of(request).pool, me.id, now=datetime.now(UTC)
    )
    return [timesheet_store.pay_json(r) for r in rows]


@router.get(
    "/bookings/{offer_id}/timesheet",
    summary="One booking's timesheet, pre-filled from the booking",
    responses={**INVALID, 404: problem("No such booking for you.")},
)
async def my_timesheet(request: Request, me: Me, offer_id: uuid.UUID) -> dict[str, Any]:
    """The timesheet as submitted, or the booking's times if not yet submitted."""
    row = await timesheet_store.worked_session(runtime_of(request).pool, me.id, offer_id)
    if row is None:
        raise Problem(404, "No such booking for you.")
    return timesheet_store.pay_json(row)


@router.post(
    "/bookings/{offer_id}/timesheet",
    summary="Confirm the hours of a worked session",
    status_code=201,
    responses={
        **WITH_BODY,
        404: problem("No such booking for you."),
        409: problem("Not ended yet, already submitted and not queried, or approved."),
    },
)
async def submit_timesheet(
    request: Request, me: Me, offer_id: uuid.UUID, body: TimesheetIn | None = None
) -> dict[str, Any]:
    """Confirm what you worked; send nothing (or `{}`) if it went as booked. After a query,
    send it again corrected. The practice is asked to approve it."""
    runtime = runtime_of(request)
    changes = body.model_dump(exclude_none=True) if body else {}
    try:
        async with runtime.pool.acquire() as conn, conn.transaction():
            row = await timesheet_store.submit(
                conn,
                clinician=me,
                offer_id=offer_id,
                changes=changes,
                emitter=runtime.emitter,
                now=datetime.now(UTC),
            )
    except TimesheetRefused as exc:
        errors = [{"field": f, "message": m} for f, m in exc.errors]
        raise Problem(exc.status, exc.detail, errors=errors) from exc
    return timesheet_store.pay_json(row)
