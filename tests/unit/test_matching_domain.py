"""The foundation's matching core: eligibility, overlaps, preference, expiry."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from services.matching.domain import (
    Commitment,
    OpenSession,
    Window,
    offer_expiry,
    overlaps,
    plan_offers,
)
from shared.catalogue import Profession, Role, Sector, Skill

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _session(start_h: float = 0, hours: float = 4, **kw: object) -> OpenSession:
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "organisation": "A81001",
        "sector": Sector.GENERAL_PRACTICE,
        "role": Role.CLINICAL_PHARMACIST,
        "starts_at": T0 + timedelta(hours=start_h),
        "ends_at": T0 + timedelta(hours=start_h + hours),
    }
    values.update(kw)
    return OpenSession(**values)  # type: ignore[arg-type]


def _window(start_h: float = -1, hours: float = 10, **kw: object) -> Window:
    values: dict[str, object] = {
        "clinician_id": uuid.uuid4(),
        "profession": Profession.PHARMACIST,
        "home_sector": Sector.COMMUNITY_PHARMACY,
        "starts_at": T0 + timedelta(hours=start_h),
        "ends_at": T0 + timedelta(hours=start_h + hours),
    }
    values.update(kw)
    return Window(**values)  # type: ignore[arg-type]


def test_offers_an_eligible_clinician_with_reasons() -> None:
    """A free clinician of the right profession is offered the session, and told why."""
    session, window = _session(), _window()
    [proposal] = plan_offers([session], [window], [])
    assert proposal.clinician_id == window.clinician_id
    assert any("free for the whole session" in r for r in proposal.reasons)


def test_wrong_profession_or_partial_cover_is_not_offered() -> None:
    """Another profession, or a window that misses part of the session, gets nothing."""
    session = _session()
    nurse = _window(profession=Profession.PRACTICE_NURSE)
    partial = _window(start_h=1)
    assert plan_offers([session], [nurse, partial], []) == []


def test_committed_clinician_is_not_offered_overlapping_time() -> None:
    """A clinician booked (or on offer) at that time is skipped."""
    session, window = _session(), _window()
    busy = Commitment(window.clinician_id, T0 + timedelta(hours=3), T0 + timedelta(hours=5))
    assert plan_offers([session], [window], [busy]) == []


def test_one_clinician_gets_at_most_one_of_two_overlapping_sessions() -> None:
    """Two overlapping sessions and one clinician: one offer, not two."""
    window = _window()
    proposals = plan_offers([_session(), _session(start_h=2)], [window], [])
    assert len(proposals) == 1


def test_home_sector_clinician_preferred() -> None:
    """Given a choice, the clinician from the session's own sector is offered it."""
    session = _session(sector=Sector.COMMUNITY_PHARMACY)
    outsider = _window(home_sector=Sector.GENERAL_PRACTICE)
    insider = _window(home_sector=Sector.COMMUNITY_PHARMACY)
    [proposal] = plan_offers([session], [outsider, insider], [])
    assert proposal.clinician_id == insider.clinician_id


def test_already_tried_pair_passes_to_the_next_clinician() -> None:
    """After an expired offer the session cascades to someone else."""
    session = _session()
    first, second = _window(), _window()
    tried = frozenset({(session.id, first.clinician_id), (session.id, second.clinician_id)})
    assert plan_offers([session], [first, second], [], already_tried=tried) == []
    only_first = frozenset({(session.id, first.clinician_id)})
    [proposal] = plan_offers([session], [first, second], [], already_tried=only_first)
    assert proposal.clinician_id == second.clinician_id


def test_offer_expiry_is_sooner_of_two_hours_and_half_the_time_left() -> None:
    """Far-off sessions get two hours; imminent ones half the time left."""
    now = T0
    assert offer_expiry(now, now + timedelta(days=3)) == now + timedelta(hours=2)
    assert offer_expiry(now, now + timedelta(hours=1)) == now + timedelta(minutes=30)


def test_overlaps_is_half_open() -> None:
    """Back-to-back sessions do not overlap."""
    a, b, c = T0, T0 + timedelta(hours=4), T0 + timedelta(hours=8)
    assert not overlaps(a, b, b, c)
    assert overlaps(a, c, b, c)


def test_role_catalogue_decides_who_may_fill() -> None:
    """A pharmacist may fill an advanced-practitioner session; a dentist may not."""
    session = _session(role=Role.ADVANCED_PRACTITIONER)
    dentist = _window(profession=Profession.DENTIST)
    pharmacist = _window()
    [proposal] = plan_offers([session], [dentist, pharmacist], [])
    assert proposal.clinician_id == pharmacist.clinician_id


def test_skills_asked_for_must_all_be_held() -> None:
    """A session needing a prescriber goes only to a clinician who is one."""
    session = _session(skills=frozenset({Skill.INDEPENDENT_PRESCRIBER}))
    plain = _window()
    prescriber = _window(skills=frozenset({Skill.INDEPENDENT_PRESCRIBER, Skill.MINOR_ILLNESS}))
    [proposal] = plan_offers([session], [plain, prescriber], [])
    assert proposal.clinician_id == prescriber.clinician_id
