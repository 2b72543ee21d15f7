"""Posting rules for sessions and the bank's rules for accepting offers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.bank.domain import (
    Offer,
    OfferRefused,
    OfferStatus,
    check_acceptance,
    check_window,
    hash_token,
)
from services.vacancies.domain import NewSession, SessionStatus, after_event, check_session
from shared.catalogue import Role

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _new(start: timedelta, length: timedelta) -> NewSession:
    return NewSession("rota-1", Role.GP, NOW + start, NOW + start + length)


def test_valid_session_breaks_no_rule() -> None:
    """A future session of 4h10m is fine."""
    assert check_session(_new(timedelta(days=1), timedelta(hours=4, minutes=10)), now=NOW) == []


@pytest.mark.parametrize(
    ("start", "length", "field", "words"),
    [
        (timedelta(days=1), timedelta(hours=-1), "data.ends_at", "after starts_at"),
        (timedelta(days=1), timedelta(hours=14), "data.ends_at", "13 hours"),
        (timedelta(hours=-1), timedelta(hours=4), "data.starts_at", "future"),
    ],
)
def test_each_broken_rule_names_its_field(
    start: timedelta, length: timedelta, field: str, words: str
) -> None:
    """End before start, over 13 hours, or in the past: refused, naming the field."""
    broken = check_session(_new(start, length), now=NOW)
    assert any(b.field == field and words in b.message for b in broken)


def test_filled_session_stays_filled_when_a_late_offer_event_arrives() -> None:
    """Events may arrive out of order across topics; filled is not undone by an offer."""
    assert after_event(SessionStatus.FILLED, "session.offered") is SessionStatus.FILLED
    assert after_event(SessionStatus.OPEN, "session.offered") is SessionStatus.OFFERED
    assert after_event(SessionStatus.OFFERED, "session.filled") is SessionStatus.FILLED
    assert after_event(SessionStatus.CANCELLED, "session.filled") is SessionStatus.CANCELLED


def _offer(owner: uuid.UUID, *, status: OfferStatus = OfferStatus.OFFERED, ttl: int = 60) -> Offer:
    return Offer(uuid.uuid4(), uuid.uuid4(), owner, status, NOW + timedelta(minutes=ttl))


def test_own_live_offer_may_be_accepted() -> None:
    """The clinician's own unexpired offer passes."""
    me = uuid.uuid4()
    offer = _offer(me)
    assert check_acceptance(offer, clinician_id=me, now=NOW) is offer


@pytest.mark.parametrize(
    ("make", "status"),
    [
        (lambda me: None, 404),
        (lambda me: _offer(uuid.uuid4()), 404),
        (lambda me: _offer(me, ttl=-1), 410),
        (lambda me: _offer(me, status=OfferStatus.ACCEPTED), 409),
    ],
)
def test_refusals_say_why(make: object, status: int) -> None:
    """Missing or someone else's: 404 (same answer); expired: 410; answered: 409."""
    me = uuid.uuid4()
    with pytest.raises(OfferRefused) as refused:
        check_acceptance(make(me), clinician_id=me, now=NOW)  # type: ignore[operator]
    assert refused.value.status == status


def test_window_rules() -> None:
    """A window must end after it starts and not be over already."""
    assert check_window(NOW, NOW - timedelta(hours=1), now=NOW)
    assert check_window(NOW - timedelta(hours=3), NOW - timedelta(hours=1), now=NOW)
    assert check_window(NOW, NOW + timedelta(hours=1), now=NOW) == []


def test_tokens_are_stored_hashed() -> None:
    """The stored form is a fixed-length digest, not the token."""
    assert hash_token("abc") != "abc"
    assert len(hash_token("abc")) == 64
