"""The practice reads its timesheets back with its API key, like its sessions; it answers
them through the signed web hook (``timesheet_hooks``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from services.vacancies import timesheet_store
from services.vacancies.http import READ_ERRORS, Reader
from services.vacancies.timesheets import SheetState
from shared.http.problems import Problem
from shared.runtime import Runtime

router = APIRouter(tags=["timesheets"])


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


class TimesheetOut(BaseModel):
    """A clinician's timesheet for one of your sessions, and where it stands."""

    timesheet_id: uuid.UUID = Field(description="Fairshare's id; answer with it.")
    session_id: uuid.UUID = Field(description="The session worked.")
    clinician_id: uuid.UUID = Field(description="Pseudonymous id of the clinician.")
    revision: int = Field(description="1, and one more for each correction after a query.")
    state: SheetState = Field(description="submitted, approved or queried.")
    started_at: datetime = Field(description="When the clinician started.")
    ended_at: datetime = Field(description="When the clinician finished.")
    break_minutes: int = Field(description="Unpaid break, minutes.")
    note: str | None = Field(description="The clinician's note, if any.")
    submitted_at: datetime = Field(description="When it was (last) submitted.")
    approve_by: datetime = Field(
        description="Unanswered by then, it is approved automatically (the ICB's period)."
    )
    approved_at: datetime | None = Field(description="When it was approved.")
    approved_by: str | None = Field(description="Who approved it; null if automatic.")
    approved_automatically: bool | None = Field(description="Approved for want of an answer.")
    queried_at: datetime | None = Field(description="When it was queried.")
    query_reason: str | None = Field(description="Why it was queried.")


@router.get(
    "/organisations/{ods_code}/timesheets",
    summary="Timesheets for your sessions, to approve or query",
    responses=READ_ERRORS,
)
async def list_timesheets(
    request: Request,
    me: Reader,
    state: Annotated[SheetState | None, Query(description="Only this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 500,
) -> list[TimesheetOut]:
    """Newest session first."""
    rows = await timesheet_store.list_for(
        _runtime(request).pool, me.ods_code, state=state.value if state else None, limit=limit
    )
    return [TimesheetOut.model_validate(timesheet_store.sheet_json(r)) for r in rows]


@router.get(
    "/organisations/{ods_code}/timesheets/{timesheet_id}",
    summary="One timesheet for one of your sessions",
    responses=READ_ERRORS,
)
async def get_timesheet(request: Request, me: Reader, timesheet_id: uuid.UUID) -> TimesheetOut:
    """Another organisation's is 404, exactly like a missing one."""
    row = await timesheet_store.one_for(_runtime(request).pool, me.ods_code, timesheet_id)
    if row is None:
        raise Problem(404, "No such timesheet of yours.")
    return TimesheetOut.model_validate(timesheet_store.sheet_json(row))
