"""The vacancies lifecycle rules: amendments, cancellations, lateness, clock changes,
callback backoff and the per-organisation rate limit."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.vacancies.domain import (
    NewSession,
    Organisation,
    Outcome,
    SessionStatus,
    StoredSession,
    amend,
    cancel,
    check_session,
    check_site,
    is_due_unfilled,
    is_late,
    retry_delay,
)
from shared.catalogue import Role, Sector, Urgency
from shared.http.ratelimit import RateLimiter, retry_after_header

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LONDON = ZoneInfo("Europe/London")


def _details(**kw: object) -> NewSession:
    values: dict[str, object] = {
        "external_id": "rota-1",
        "role": Role.GP,
        "starts_at": NOW + timedelta(days=3),
        "ends_at": NOW + timedelta(days=3, hours=4),
        "site": "A81001",
    }
    values.update(kw)
    return NewSession(**values)  # type: ignore[arg-type]


def _stored(status: SessionStatus, clinician: uuid.UUID | None = None) -> StoredSession:
    return StoredSession(uuid.uuid4(), "A81001", _details(), status, clinician)


def test_same_details_again_change_nothing() -> None:
    """Posting an external id again with the same details is 'unchanged', not a duplicate."""
    assert amend(_stored(SessionStatus.OPEN), _details()).outcome is Outcome.UNCHANGED


def test_moving_a_filled_session_releases_the_clinician_and_reopens_it() -> None:
    """A new time on a filled session: open again, and the clinician is named for release."""
    clinician = uuid.uuid4()
    moved = _details(starts_at=NOW + timedelta(days=4), ends_at=NOW + timedelta(days=4, hours=4))
    change = amend(_stored(SessionStatus.FILLED, clinician), moved)
    assert change.outcome is Outcome.AMENDED
    assert change.released_clinician == clinician
    assert change.session.status is SessionStatus.OPEN
    assert change.session.clinician_id is None


def test_changing_role_of_filled_session_releases_too() -> None:
    """A different role needs a different clinician."""
    change = amend(_stored(SessionStatus.FILLED, uuid.uuid4()), _details(role=Role.PARAMEDIC))
    assert change.released_clinician is not None


def test_notes_or_rate_change_keeps_the_booking() -> None:
    """Only what the clinician agreed to matters: a note or a higher rate keeps them booked."""
    clinician = uuid.uuid4()
    change = amend(
        _stored(SessionStatus.FILLED, clinician),
        _details(notes="Parking at the back", rate_pence_per_hour=9000, urgency=Urgency.URGENT),
    )
    assert change.outcome is Outcome.AMENDED
    assert change.released_clinician is None
    assert change.session.status is SessionStatus.FILLED
    assert change.session.clinician_id == clinician


def test_cancelled_session_cannot_be_amended() -> None:
    """A cancelled session stays cancelled; the answer says to use a new external id."""
    change = amend(_stored(SessionStatus.CANCELLED), _details(notes="x"))
    assert change.outcome is Outcome.REJECTED
    assert change.refusal is not None
    assert "new external_id" in change.refusal.message


def test_cancelling_a_filled_session_needs_a_reason() -> None:
    """The booked clinician deserves a reason; without one the cancellation is refused."""
    filled = _stored(SessionStatus.FILLED, uuid.uuid4())
    refused = cancel(filled, "  ", now=NOW)
    assert refused.outcome is Outcome.REJECTED
    assert refused.refusal is not None
    assert refused.refusal.field == "data.reason"
    done = cancel(filled, "Practice closed for flooding", now=NOW)
    assert done.outcome is Outcome.CANCELLED
    assert done.released_clinician == filled.clinician_id


def test_late_cancellation_is_within_48_hours() -> None:
    """47 hours before the start is late; 49 is not."""
    start = NOW + timedelta(hours=47)
    assert is_late(start, now=NOW)
    assert not is_late(NOW + timedelta(hours=49), now=NOW)
    late = cancel(
        replace(_stored(SessionStatus.OPEN), details=_details(starts_at=start)), None, now=NOW
    )
    assert late.late


def test_thirteen_hours_is_real_elapsed_time_across_the_clock_change() -> None:
    """Night of 25 Oct 2026 (clocks go back at 02:00): 20:00 to 08:00 local is 13 real
    hours, allowed; 20:00 to 09:00 local is 14 real hours, refused, though its wall
    clocks are only 13 hours apart."""
    start = datetime(2026, 10, 24, 20, 0, tzinfo=LONDON)
    now = start - timedelta(days=1)
    ok = _details(starts_at=start, ends_at=datetime(2026, 10, 25, 8, 0, tzinfo=LONDON))
    too_long = _details(starts_at=start, ends_at=datetime(2026, 10, 25, 9, 0, tzinfo=LONDON))
    assert check_session(ok, now=now) == []
    assert [b.field for b in check_session(too_long, now=now)] == ["data.ends_at"]


def test_a_pcn_may_post_for_its_member_practice_only() -> None:
    """Sites: the poster itself, or a member practice of the posting PCN."""
    pcn = Organisation("U12345", "North PCN", Sector.GENERAL_PRACTICE, "QOP", 53.4, -2.2, True)
    member = Organisation(
        "A81002", "Member", Sector.GENERAL_PRACTICE, "QOP", 53.4, -2.2, True, pcn="U12345"
    )
    stranger = replace(member, ods_code="A81003", pcn=None)
    assert check_site(pcn, pcn, "U12345") is None
    assert check_site(pcn, member, "A81002") is None
    broken = check_site(pcn, stranger, "A81003")
    assert broken is not None
    assert "not a member practice" in broken.message
    assert check_site(pcn, None, "A81009") is not None


def test_unfilled_when_start_passes_without_a_booking() -> None:
    """Open or offered sessions whose start passed go unfilled; filled ones don't."""
    assert is_due_unfilled(SessionStatus.OFFERED, NOW, now=NOW)
    assert not is_due_unfilled(SessionStatus.FILLED, NOW - timedelta(hours=1), now=NOW)
    assert not is_due_unfilled(SessionStatus.OPEN, NOW + timedelta(minutes=1), now=NOW)


def test_callback_backoff_doubles_to_a_cap_and_covers_a_day() -> None:
    """30 s, 60 s, 120 s, ... capped at an hour: more than 24 h of retries in ~30 attempts."""
    delays = [retry_delay(n, base_s=30, cap_s=3600) for n in range(1, 40)]
    assert delays[:3] == [timedelta(seconds=30), timedelta(seconds=60), timedelta(seconds=120)]
    assert max(delays) == timedelta(hours=1)
    total, attempts = timedelta(0), 0
    while total < timedelta(hours=24):
        attempts += 1
        total += retry_delay(attempts, base_s=30, cap_s=3600)
    assert attempts < 35


def test_rate_limiter_refuses_past_the_burst_and_says_when_to_retry() -> None:
    """Each organisation has its own bucket; a refusal says how long to wait."""
    clock = [0.0]
    limiter = RateLimiter(rate_per_s=2, burst=3, clock=lambda: clock[0])
    assert [limiter.take("A") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.take("A")
    assert wait == pytest.approx(0.5)
    assert retry_after_header(wait) == "1"
    assert limiter.take("B") == 0.0  # another organisation is unaffected
    clock[0] += 0.5
    assert limiter.take("A") == 0.0
