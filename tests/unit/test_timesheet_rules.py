"""The pure timesheet rules: what a clinician may claim, when an unanswered timesheet is
approved, and answers heard in any order (twice, late, about an old revision)."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.bank.api.timesheets import TimesheetIn
from services.bank.timesheets import (
    PayState,
    TimesheetRefused,
    Worked,
    after_answer,
    check_worked,
    may_submit,
    prefilled,
)
from services.vacancies import timesheets as practice
from services.vacancies.timesheets import Answer, AnswerRefused, SheetState
from shared.events import TimesheetSubmitted

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
END = START + timedelta(hours=4)
LATER = END + timedelta(hours=1)


def _check(worked: Worked, now: datetime = LATER) -> Worked:
    return check_worked(worked, booked_start=START, booked_end=END, now=now)


def _fields(worked: Worked) -> list[str]:
    with pytest.raises(TimesheetRefused) as refused:
        _check(worked)
    assert refused.value.status == 422
    return [f for f, _ in refused.value.errors]


def test_the_booking_as_planned_passes_in_one_call() -> None:
    assert _check(prefilled(START, END)) == Worked(START, END, 0, None)


def test_a_late_finish_with_a_break_and_a_note_passes() -> None:
    worked = Worked(START, END + timedelta(minutes=40), 30, "Stayed for a home visit")
    assert _check(worked) == worked


@pytest.mark.parametrize(
    ("worked", "fields"),
    [
        (Worked(END, START, 0, None), ["ended_at"]),
        (Worked(START, START, 0, None), ["ended_at"]),
        (Worked(START, END, 240, None), ["break_minutes"]),
        (Worked(START - timedelta(hours=4), END, 0, None), ["started_at"]),
        (Worked(START, END + timedelta(hours=3, minutes=1), 0, None), ["ended_at"]),
        (Worked(START - timedelta(hours=3), END + timedelta(hours=11), 0, None), ["ended_at"]),
    ],
    ids=["ends-before-start", "no-time", "break-as-long", "far-early", "far-late", "over-13h"],
)
def test_impossible_or_far_fetched_hours_are_refused(worked: Worked, fields: list[str]) -> None:
    assert fields[0] in _fields(worked)


def test_a_session_not_yet_over_is_refused_and_the_future_cannot_be_claimed() -> None:
    with pytest.raises(TimesheetRefused) as refused:
        _check(prefilled(START, END), now=END - timedelta(minutes=1))
    assert refused.value.status == 409
    with pytest.raises(TimesheetRefused) as future:
        _check(Worked(START, END + timedelta(hours=2), 0, None), now=END + timedelta(hours=1))
    assert ("ended_at", "must not be in the future") in future.value.errors


def test_only_a_first_submission_or_a_correction_after_a_query_is_taken() -> None:
    assert may_submit(None) == 1
    may_submit(PayState.QUERIED)
    for state in (PayState.SUBMITTED, PayState.APPROVED):
        with pytest.raises(TimesheetRefused) as refused:
            may_submit(state)
        assert refused.value.status == 409


def test_the_api_refuses_nul_and_a_long_note() -> None:
    with pytest.raises(ValidationError):
        TimesheetIn.model_validate({"note": "late\x00"})
    with pytest.raises(ValidationError):
        TimesheetIn.model_validate({"note": "x" * 501})
    assert TimesheetIn.model_validate({}).model_dump(exclude_none=True) == {}


def test_unanswered_timesheets_fall_due_after_the_period() -> None:
    period = timedelta(hours=72)
    due = practice.approval_due(END, period)
    assert due == END + timedelta(hours=72)
    assert not practice.is_due(SheetState.SUBMITTED, due, now=due - timedelta(seconds=1))
    assert practice.is_due(SheetState.SUBMITTED, due, now=due)
    assert not practice.is_due(SheetState.QUERIED, due, now=due + timedelta(days=9))
    assert not practice.is_due(SheetState.APPROVED, due, now=due + timedelta(days=9))


def test_the_practice_may_approve_twice_but_not_query_an_approved_one() -> None:
    state = practice.after_answer(
        SheetState.SUBMITTED, Answer.APPROVE, revision=1, answered_revision=None
    )
    assert state is SheetState.APPROVED
    assert practice.after_answer(state, Answer.APPROVE, revision=1, answered_revision=1) is None
    with pytest.raises(AnswerRefused):
        practice.after_answer(state, Answer.QUERY, revision=1, answered_revision=None)
    queried = practice.after_answer(
        SheetState.SUBMITTED, Answer.QUERY, revision=1, answered_revision=None
    )
    assert queried is SheetState.QUERIED
    assert practice.after_answer(queried, Answer.QUERY, revision=1, answered_revision=None) is None
    with pytest.raises(AnswerRefused):  # it waits for the clinician's correction
        practice.after_answer(queried, Answer.APPROVE, revision=1, answered_revision=None)
    with pytest.raises(AnswerRefused):  # a correction arrived after the practice read it
        practice.after_answer(SheetState.SUBMITTED, Answer.APPROVE, revision=2, answered_revision=1)


def test_a_submission_repeated_or_older_changes_nothing() -> None:
    assert practice.takes_submission(None, state=None, revision=1)
    assert not practice.takes_submission(1, state=SheetState.SUBMITTED, revision=1)
    assert practice.takes_submission(1, state=SheetState.QUERIED, revision=2)
    assert not practice.takes_submission(2, state=SheetState.SUBMITTED, revision=1)
    assert not practice.takes_submission(1, state=SheetState.APPROVED, revision=2)


ANSWERS = [
    (PayState.QUERIED, 1),
    (PayState.APPROVED, 1),
    (PayState.APPROVED, 1),
    (PayState.QUERIED, 1),
]


@pytest.mark.parametrize("order", list(itertools.permutations(range(len(ANSWERS)))))
def test_the_bank_ends_approved_whatever_order_answers_arrive_in(order: tuple[int, ...]) -> None:
    state = PayState.SUBMITTED
    for i in order:
        answer, revision = ANSWERS[i]
        state = after_answer(state, 1, answer=answer, answered_revision=revision)
    assert state is PayState.APPROVED


def test_an_answer_about_an_older_revision_is_stale() -> None:
    state = after_answer(PayState.SUBMITTED, 2, answer=PayState.APPROVED, answered_revision=1)
    assert state is PayState.SUBMITTED
    state = after_answer(PayState.SUBMITTED, 2, answer=PayState.QUERIED, answered_revision=1)
    assert state is PayState.SUBMITTED
    assert (
        after_answer(PayState.SUBMITTED, 2, answer=PayState.QUERIED, answered_revision=2)
        is PayState.QUERIED
    )


def test_the_event_refuses_a_note_over_its_bound_and_hours_backwards() -> None:
    base = {
        "timesheet_id": uuid.uuid4(),
        "offer_id": uuid.uuid4(),
        "session_id": uuid.uuid4(),
        "clinician_id": uuid.uuid4(),
        "revision": 1,
        "organisation": "A81001",
        "started_at": START,
        "ended_at": END,
        "break_minutes": 0,
        "note": None,
        "submitted_at": LATER,
    }
    TimesheetSubmitted.model_validate(base)
    with pytest.raises(ValidationError):
        TimesheetSubmitted.model_validate({**base, "note": "x" * 501})
    with pytest.raises(ValidationError):
        TimesheetSubmitted.model_validate({**base, "ended_at": START})
