"""Eligible pairs found in bulk (``eligibility.find_pairs``) against the one-pair rule
(``domain.eligible``), over random sessions, windows and commitments on an hourly grid,
so that starts and ends often coincide: the bulk path passes windows over, cuts
commitments out and groups by day, and each of those shortcuts must lose no pair."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.matching.domain import Commitment, OpenSession, Window, eligible
from services.matching.eligibility import find_pairs
from shared.catalogue import Profession, Role, Sector, Skill

T0 = datetime(2027, 3, 27, 20, tzinfo=UTC)  # a Saturday evening: days and DST change
PEOPLE = [uuid.UUID(int=k + 1) for k in range(4)]
PROFESSIONS = [
    Profession.GP,
    Profession.PHARMACIST,
    Profession.PHARMACIST,
    Profession.PRACTICE_NURSE,
]


def _at(hour: int) -> datetime:
    return T0 + timedelta(hours=hour)


sessions = st.lists(
    st.builds(
        lambda start, hours, role, skills, north: OpenSession(
            id=uuid.uuid4(),
            organisation="A81001",
            sector=Sector.GENERAL_PRACTICE,
            role=role,
            starts_at=_at(start),
            ends_at=_at(start + hours),
            skills=skills,
            latitude=53.48 + north,
            longitude=-2.24,
        ),
        st.integers(0, 20),
        st.integers(1, 12),
        st.sampled_from([Role.GP, Role.CLINICAL_PHARMACIST, Role.PRACTICE_NURSE]),
        st.sampled_from([frozenset(), frozenset({Skill.INDEPENDENT_PRESCRIBER})]),
        st.sampled_from([0.0, 0.2, 0.5]),  # 0, about 22 and 56 km north
    ),
    max_size=8,
)
windows = st.lists(
    st.builds(
        lambda who, start, hours, skills: Window(
            clinician_id=PEOPLE[who],
            profession=PROFESSIONS[who],
            home_sector=Sector.GENERAL_PRACTICE,
            starts_at=_at(start),
            ends_at=_at(start + hours),
            skills=skills,
            latitude=53.48,
            longitude=-2.24,
        ),
        st.integers(0, 3),
        st.integers(0, 20),
        st.integers(1, 24),
        st.sampled_from([frozenset(), frozenset({Skill.INDEPENDENT_PRESCRIBER})]),
    ),
    max_size=8,
)
commitments = st.lists(
    st.builds(
        lambda who, start, hours: Commitment(PEOPLE[who], _at(start), _at(start + hours)),
        st.integers(0, 3),
        st.integers(-5, 45),
        st.integers(1, 10),
    ),
    max_size=8,
)


@settings(max_examples=400, deadline=None)
@given(sessions, windows, commitments)
def test_bulk_pairs_are_exactly_the_one_pair_rules(
    sessions: list[OpenSession], windows: list[Window], commitments: list[Commitment]
) -> None:
    pairs = find_pairs(sessions, windows, commitments)
    found = {
        (sessions[s].id, pairs.clinicians[c])
        for s, c in zip(pairs.session.tolist(), pairs.clinician.tolist(), strict=True)
    }
    expected = {
        (session.id, w.clinician_id)
        for session in sessions
        for w in windows
        if eligible(session, w, [c for c in commitments if c.clinician_id == w.clinician_id])
    }
    assert found == expected
    assert len(found) == len(pairs.session)  # one pair however many windows cover it
