"""The practice's side of timesheets: the pure rules. No I/O.

The bank sends each timesheet a clinician confirms; the practice approves or queries it
(a query needs a reason), and one left unanswered for the ICB's period is approved
automatically. Approval is final. A queried one waits for the clinician's correction:
the same timesheet, one revision later, which waits for an answer afresh. So each
revision is answered at most once either way, and the bank and vacancies always agree.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum


class SheetState(StrEnum):
    """Where a timesheet stands with the practice."""

    SUBMITTED = "submitted"
    APPROVED = "approved"
    QUERIED = "queried"


class Answer(StrEnum):
    """What the practice can say of a timesheet."""

    APPROVE = "approve"
    QUERY = "query"


class AnswerRefused(Exception):  # noqa: N818 - a refusal, not a crash
    """The answer can't be taken; ``status`` is the HTTP answer."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def approval_due(submitted_at: datetime, period: timedelta) -> datetime:
    """When a timesheet submitted at ``submitted_at`` is approved if nobody answers."""
    return submitted_at + period


def is_due(state: SheetState, due_at: datetime, *, now: datetime) -> bool:
    """Whether the sweep approves it now: still waiting, and its time has come."""
    return state is SheetState.SUBMITTED and now >= due_at


def takes_submission(current: int | None, *, state: SheetState | None, revision: int) -> bool:
    """Whether a submission of ``revision`` replaces what is held (``current``): the first,
    or a later revision of one not yet approved. A repeat or an older one changes nothing."""
    if current is None:
        return True
    return revision > current and state is not SheetState.APPROVED


def after_answer(
    state: SheetState, answer: Answer, *, revision: int, answered_revision: int | None
) -> SheetState | None:
    """The state the practice's answer leads to; None if it changes nothing (the same
    answer again). AnswerRefused (409) if it can't be given now."""
    if answered_revision is not None and answered_revision != revision:
        raise AnswerRefused(
            409, f"That is revision {answered_revision}; the timesheet is at revision {revision}."
        )
    if state is SheetState.APPROVED:
        if answer is Answer.APPROVE:
            return None
        raise AnswerRefused(409, "Already approved; it can't be queried now.")
    if state is SheetState.QUERIED:
        if answer is Answer.QUERY:
            return None
        # Approving what was queried would race the clinician's correction: the bank could
        # hold a revision vacancies then drops, and the two would never agree.
        raise AnswerRefused(409, "You queried it; answer the clinician's correction.")
    return SheetState.QUERIED if answer is Answer.QUERY else SheetState.APPROVED
