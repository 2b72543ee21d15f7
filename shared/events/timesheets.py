"""Timesheet contracts: a worked session confirmed by its clinician, then approved or
queried by the practice (or approved automatically when it does not answer in time).

A timesheet is one booking's; each correction after a query is a new ``revision`` of it,
and an answer is about the revision it names, so a late answer to an old revision never
settles a newer one.
"""

from __future__ import annotations

import uuid

from pydantic import AwareDatetime, Field, model_validator

from shared.catalogue import OdsCode
from shared.events.contracts import _EventData

NOTE_MAX = 500
REASON_MAX = 500


class _TimesheetRef(_EventData):
    timesheet_id: uuid.UUID = Field(description="Fairshare's id of the timesheet (one a booking).")
    offer_id: uuid.UUID = Field(description="The accepted offer that made the booking.")
    session_id: uuid.UUID = Field(description="The session worked.")
    clinician_id: uuid.UUID = Field(description="Pseudonymous id of the clinician who worked it.")
    revision: int = Field(
        ge=1, description="1 for the first submission; one more for each correction after a query."
    )


class TimesheetSubmitted(_TimesheetRef):
    """A clinician confirmed the hours of a session they worked (v1); the practice is asked
    to approve it."""

    organisation: OdsCode = Field(description="ODS code of the organisation that booked it.")
    started_at: AwareDatetime = Field(description="When the clinician actually started.")
    ended_at: AwareDatetime = Field(description="When the clinician actually finished.")
    break_minutes: int = Field(ge=0, description="Unpaid break taken, minutes.")
    note: str | None = Field(
        max_length=NOTE_MAX,
        description="The clinician's note to the practice (e.g. why they stayed late), if any;"
        " the practice needs it to approve.",
    )
    submitted_at: AwareDatetime = Field(description="When the clinician submitted it.")

    @model_validator(mode="after")
    def _ends_after_start(self) -> TimesheetSubmitted:
        if self.ended_at <= self.started_at:
            msg = "ended_at must be after started_at"
            raise ValueError(msg)
        return self


class TimesheetApproved(_TimesheetRef):
    """The practice approved a timesheet, or nobody answered within the ICB's period and it
    was approved automatically (v1)."""

    approved_at: AwareDatetime = Field(description="When it was approved.")
    approved_by: str | None = Field(
        description="Who approved it, as the practice named them; null when automatic."
    )
    automatic: bool = Field(description="Approved because the practice did not answer in time.")


class TimesheetQueried(_TimesheetRef):
    """The practice queried a timesheet, with a reason the clinician sees (v1)."""

    queried_at: AwareDatetime = Field(description="When it was queried.")
    queried_by: str | None = Field(description="Who queried it, as the practice named them.")
    reason: str = Field(
        min_length=1, max_length=REASON_MAX, description="Why, in the practice's words."
    )
