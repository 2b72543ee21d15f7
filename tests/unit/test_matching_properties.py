"""Properties of the matching core on generated regions (hypothesis): whatever the
sessions, windows and commitments, every offer is allowed, none overlap, and the plan
leaves no session that someone free and eligible could have taken."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.matching.domain import (
    Commitment,
    OpenSession,
    Proposal,
    Window,
    overlaps,
    plan_offers,
    reach,
)
from shared.catalogue import Profession, Role, Sector, Skill, may_fill

T0 = datetime(2026, 12, 7, 7, 0, tzinfo=UTC)
ROLES = [Role.GP, Role.CLINICAL_PHARMACIST, Role.ADVANCED_PRACTITIONER, Role.PRACTICE_NURSE]
PROFESSIONS = [
    Profession.GP,
    Profession.PHARMACIST,
    Profession.PARAMEDIC,
    Profession.PRACTICE_NURSE,
]
SKILLS = [Skill.MINOR_ILLNESS, Skill.INDEPENDENT_PRESCRIBER]
SECTORS = [Sector.GENERAL_PRACTICE, Sector.COMMUNITY_PHARMACY]
CLINICIANS = [uuid.UUID(int=i) for i in range(1, 7)]
hours = st.integers(min_value=0, max_value=30)
place = st.tuples(st.floats(53.3, 53.6), st.floats(-2.5, -2.0))


@st.composite
def sessions(draw: st.DrawFn) -> OpenSession:
    start, length = draw(hours), draw(st.integers(2, 8))
    lat, lon = draw(place)
    return OpenSession(
        id=uuid.UUID(int=draw(st.integers(1000, 10**9))),
        organisation="A81001",
        sector=draw(st.sampled_from(SECTORS)),
        role=draw(st.sampled_from(ROLES)),
        starts_at=T0 + timedelta(hours=start),
        ends_at=T0 + timedelta(hours=start + length),
        skills=frozenset(draw(st.sets(st.sampled_from(SKILLS), max_size=1))),
        latitude=lat,
        longitude=lon,
    )


@st.composite
def windows(draw: st.DrawFn) -> Window:
    start, length = draw(hours), draw(st.integers(2, 14))
    lat, lon = draw(place)
    return Window(
        clinician_id=draw(st.sampled_from(CLINICIANS)),
        profession=draw(st.sampled_from(PROFESSIONS)),
        home_sector=draw(st.sampled_from(SECTORS)),
        starts_at=T0 + timedelta(hours=start),
        ends_at=T0 + timedelta(hours=start + length),
        skills=frozenset(draw(st.sets(st.sampled_from(SKILLS), max_size=2))),
        latitude=lat,
        longitude=lon,
        travel_km=draw(st.sampled_from([5.0, 15.0, 40.0])),
    )


@st.composite
def commitments(draw: st.DrawFn) -> Commitment:
    start = draw(hours)
    return Commitment(
        draw(st.sampled_from(CLINICIANS)),
        T0 + timedelta(hours=start),
        T0 + timedelta(hours=start + draw(st.integers(1, 6))),
    )


def _eligible(session: OpenSession, window: Window) -> bool:
    return (
        may_fill(window.profession, session.role)
        and session.skills <= window.skills
        and window.starts_at <= session.starts_at
        and window.ends_at >= session.ends_at
        and reach(session, window) <= window.travel_km
    )


def _busy(
    clinician: uuid.UUID, session: OpenSession, plan: list[Proposal], held: list[Commitment]
) -> bool:
    spans = [(c.starts_at, c.ends_at) for c in held if c.clinician_id == clinician] + [
        (p.session.starts_at, p.session.ends_at) for p in plan if p.clinician_id == clinician
    ]
    return any(overlaps(s, e, session.starts_at, session.ends_at) for s, e in spans)


region = st.tuples(
    st.lists(sessions(), max_size=8, unique_by=lambda s: s.id),
    st.lists(windows(), max_size=10),
    st.lists(commitments(), max_size=4),
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(region)
def test_every_offer_is_allowed_and_none_overlap(
    drawn: tuple[list[OpenSession], list[Window], list[Commitment]],
) -> None:
    """Each offer: a profession that may fill the role, every skill, the whole session
    inside one window, within travel distance; one offer per session; no clinician
    offered two overlapping sessions or one overlapping what they already hold."""
    found, free, held = drawn
    plan = plan_offers(found, free, held)
    assert len({p.session.id for p in plan}) == len(plan)
    for proposal in plan:
        assert any(
            _eligible(proposal.session, w) for w in free if w.clinician_id == proposal.clinician_id
        )
        others = [p for p in plan if p is not proposal]
        assert not _busy(proposal.clinician_id, proposal.session, others, held)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(region)
def test_no_session_is_left_that_a_free_eligible_clinician_could_take(
    drawn: tuple[list[OpenSession], list[Window], list[Commitment]],
) -> None:
    """Maximal: for a session left without an offer, every clinician eligible for it is
    busy then. And a cross-sector offer means no free home-sector clinician was eligible."""
    found, free, held = drawn
    plan = plan_offers(found, free, held)
    offered = {p.session.id for p in plan}
    for session in found:
        eligible = {w.clinician_id for w in free if _eligible(session, w)}
        if session.id not in offered:
            assert all(_busy(c, session, plan, held) for c in eligible)
    for proposal in plan:
        if proposal.home_sector is proposal.session.sector:
            continue
        others = [p for p in plan if p is not proposal]
        home = {
            w.clinician_id
            for w in free
            if _eligible(proposal.session, w) and w.home_sector is proposal.session.sector
        }
        assert all(_busy(c, proposal.session, others, held) for c in home)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(region, st.data())
def test_tried_pairs_are_never_offered_again(
    drawn: tuple[list[OpenSession], list[Window], list[Commitment]], data: st.DataObject
) -> None:
    """A clinician who already had a session (declined, expired, refused) isn't offered it again."""
    found, free, held = drawn
    pairs = [(s.id, c) for s in found for c in CLINICIANS]
    tried = frozenset(data.draw(st.sets(st.sampled_from(pairs), max_size=10)) if pairs else set())
    for proposal in plan_offers(found, free, held, already_tried=tried):
        assert (proposal.session.id, proposal.clinician_id) not in tried
