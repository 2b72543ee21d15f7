"""The clinician's timesheets: the pure rules. No I/O.

After a booked session ends its clinician confirms what they worked (pre-filled from the
booking, so one call when nothing changed); the practice approves or queries it through
vacancies, or it is approved automatically when the practice does not answer in time. A
query is answered by a correction: the same timesheet, one revision later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

# How far the hours worked may stray from the booking: a clinician may start early or
# finish late, but a timesheet 3 hours off the booking is a mistake, not a long day.
SLACK = timedelta(hours=3)
# Longest span anyone may claim: the session limit vacancies enforces (13 h).
MAX_SPAN = timedelta(hours=13)


class PayState(StrEnum):
    """Where a worked session stands on its way to pay."""

    WORKED = "worked"  # ended; the clinician has not confirmed it yet
    SUBMITTED = "submitted"  # confirmed; waiting for the practice (or the period to pass)
    APPROVED = "approved"  # approved by the practice, or automatically
    QUERIED = "queried"  # the practice asked about it; the clinician may correct it


class TimesheetRefused(Exception):  # noqa: N818 - a refusal, not a crash
    """The timesheet can't be taken; ``status`` is the HTTP answer, ``errors`` name fields."""

    def __init__(self, status: int, detail: str, errors: list[tuple[str, str]] | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []


@dataclass(frozen=True, slots=True)
class Worked:
    """What a clinician says they worked."""

    started_at: datetime
    ended_at: datetime
    break_minutes: int
    note: str | None


def prefilled(booked_start: datetime, booked_end: datetime) -> Worked:
    """The booking as it was planned: what one call with nothing changed submits."""
    return Worked(booked_start, booked_end, 0, None)


def check_worked(
    worked: Worked, *, booked_start: datetime, booked_end: datetime, now: datetime
) -> Worked:
    """``worked`` if it can stand for this booking now; TimesheetRefused names each problem."""
    if now < booked_end:
        raise TimesheetRefused(409, "The session has not ended yet; confirm it once it has.")
    errors: list[tuple[str, str]] = []
    span = worked.ended_at - worked.started_at
    if span <= timedelta(0):
        errors.append(("ended_at", "must be after started_at"))
    elif span > MAX_SPAN:
        errors.append(("ended_at", "must be at most 13 hours after started_at"))
    elif worked.break_minutes * 60 >= span.total_seconds():
        errors.append(("break_minutes", "must be shorter than the time worked"))
    if abs(worked.started_at - booked_start) > SLACK:
        errors.append(("started_at", "must be within 3 hours of the booked start"))
    if abs(worked.ended_at - booked_end) > SLACK:
        errors.append(("ended_at", "must be within 3 hours of the booked end"))
    if worked.ended_at > now:
        errors.append(("ended_at", "must not be in the future"))
    if errors:
        raise TimesheetRefused(422, "The timesheet has invalid fields.", errors)
    return worked


def may_submit(state: PayState | None) -> int:
    """The next revision's number rule: 1 for a first submission, a correction only after a
    query; anything else is refused (409)."""
    if state is None or state is PayState.WORKED:
        return 1
    if state is PayState.QUERIED:
        return 0  # the caller adds one to the revision it holds
    if state is PayState.SUBMITTED:
        raise TimesheetRefused(409, "Already submitted; the practice has not answered yet.")
    raise TimesheetRefused(409, "Already approved; it can't be changed.")


def after_answer(
    state: PayState, revision: int, *, answer: PayState, answered_revision: int
) -> PayState:
    """The state once the practice's answer (approved or queried) about
    ``answered_revision`` is heard, in whatever order answers arrive.

    An answer about an older revision is stale (the clinician has corrected it since);
    approval is final, so a query heard after it changes nothing; the same answer twice
    is the same state.
    """
    if answered_revision != revision:
        return state
    if answer is PayState.QUERIED and state is not PayState.SUBMITTED:
        return state  # approved already (final), or queried already
    return answer
