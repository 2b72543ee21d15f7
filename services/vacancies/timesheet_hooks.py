"""The practice's answers to timesheets, as signed web hook deliveries (like every other
change it makes): ``timesheet.approved`` and ``timesheet.queried``."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from services.vacancies import timesheet_store
from services.vacancies.domain import Organisation
from services.vacancies.timesheets import Answer, AnswerRefused
from shared.db.types import Conn
from shared.events.timesheets import REASON_MAX
from shared.http.problems import field_errors
from shared.messaging.emitter import Emitter
from shared.validation import Text

TYPES = ("timesheet.approved", "timesheet.queried")


class ApproveIn(BaseModel):
    """Which timesheet you approve, and who approved it."""

    model_config = ConfigDict(extra="forbid")

    timesheet_id: uuid.UUID = Field(description="The timesheet, from the callback or read API.")
    revision: int | None = Field(
        default=None,
        ge=1,
        description="The revision you read; if given and a correction has arrived since, 409.",
    )
    approved_by: Text | None = Field(
        default=None, max_length=200, description="Who approved it (shown to the clinician)."
    )


class QueryIn(BaseModel):
    """Which timesheet you query, and why (the clinician sees the reason)."""

    model_config = ConfigDict(extra="forbid")

    timesheet_id: uuid.UUID = Field(description="The timesheet, from the callback or read API.")
    revision: int | None = Field(
        default=None,
        ge=1,
        description="The revision you read; if given and a correction has arrived since, 409.",
    )
    reason: Text = Field(min_length=3, max_length=REASON_MAX, description="Why; required.")
    queried_by: Text | None = Field(default=None, max_length=200, description="Who asks.")


class TimesheetApprovedHook(BaseModel):
    """Approve a timesheet: the clinician's hours stand."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["timesheet.approved"]
    timestamp: AwareDatetime = Field(description="When your system produced the delivery.")
    data: ApproveIn


class TimesheetQueriedHook(BaseModel):
    """Query a timesheet, with a reason; the clinician may correct it."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["timesheet.queried"]
    timestamp: AwareDatetime = Field(description="When your system produced the delivery.")
    data: QueryIn


TimesheetDelivery = Annotated[
    TimesheetApprovedHook | TimesheetQueriedHook, Field(discriminator="type")
]
_DELIVERY: TypeAdapter[Any] = TypeAdapter(TimesheetDelivery)


def is_timesheet_delivery(body: bytes) -> bool:
    """Whether a verified delivery is a timesheet answer (cheap for every other kind)."""
    if b"timesheet." not in body:
        return False
    try:
        kind = json.loads(body).get("type")
    except (ValueError, AttributeError):
        return False
    return kind in TYPES


async def receive(
    conn: Conn, *, organisation: Organisation, body: bytes, emitter: Emitter
) -> tuple[int, dict[str, Any]]:
    """Apply a timesheet answer; the status and body to answer with."""
    try:
        hook = _DELIVERY.validate_json(body)
    except ValidationError as exc:
        return _problem(422, "The delivery has invalid fields.", field_errors(exc))
    data = hook.data
    try:
        body_out = await timesheet_store.answer(
            conn,
            organisation=organisation.ods_code,
            timesheet_id=data.timesheet_id,
            given=Answer.APPROVE if isinstance(data, ApproveIn) else Answer.QUERY,
            by=data.approved_by if isinstance(data, ApproveIn) else data.queried_by,
            reason=data.reason if isinstance(data, QueryIn) else None,
            revision=data.revision,
            emitter=emitter,
            now=datetime.now(UTC),
        )
    except AnswerRefused as exc:
        return _problem(exc.status, exc.detail, [])
    return 200, body_out


def _problem(status: int, detail: str, errors: list[dict[str, str]]) -> tuple[int, dict[str, Any]]:
    titles = {404: "Not found", 409: "Conflict", 422: "Unprocessable content"}
    return status, {
        "type": "about:blank",
        "title": titles.get(status, "Error"),
        "status": status,
        "detail": detail,
        "errors": errors,
    }
