"""The matching engine by example: each rule of docs/matching.md, and the objective."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.matching import exact
from services.matching.domain import Commitment, OpenSession, Window, offer_expiry
from services.matching.engine import Plan, Problem, Why, plan
from services.matching.policy import Policy, SectorBalance
from shared.catalogue import Profession, Role, Sector, Skill, Urgency

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # a Tuesday
GP, CP = Sector.GENERAL_PRACTICE, Sector.COMMUNITY_PHARMACY
OPEN_CAPS = Policy(cap_pct=dict.fromkeys(Sector, 100.0))


def _session(start_h: float = 0, hours: float = 4, **kw: object) -> OpenSession:
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "organisation": "A81001",
        "sector": GP,
        "role": Role.CLINICAL_PHARMACIST,
        "starts_at": T0 + timedelta(hours=start_h),
        "ends_at": T0 + timedelta(hours=start_h + hours),
        "latitude": 53.48,
        "longitude": -2.24,
    }
    values.update(kw)
    return OpenSession(**values)  # type: ignore[arg-type]


def _window(start_h: float = -1, hours: float = 12, **kw: object) -> Window:
    values: dict[str, object] = {
        "clinician_id": uuid.uuid4(),
        "profession": Profession.PHARMACIST,
        "home_sector": GP,
        "starts_at": T0 + timedelta(hours=start_h),
        "ends_at": T0 + timedelta(hours=start_h + hours),
        "latitude": 53.47,
        "longitude": -2.25,
    }
    values.update(kw)
    return Window(**values)  # type: ignore[arg-type]


def _plan(sessions: list[OpenSession], windows: list[Window], **kw: Any) -> Plan:
    problem = Problem(sessions=sessions, windows=windows, policy=OPEN_CAPS)
    return plan(replace(problem, **kw))


def _offers(result: Plan) -> dict[uuid.UUID, uuid.UUID]:
    return {p.session.id: p.clinician_id for p in result.proposals}


PATHS: dict[str, dict[str, Any]] = {
    "exact": {"exact_max_pairs": 2_000},
    "lp": {"exact_max_pairs": 0, "polish_max_pairs": 0},
    "flow": {"exact_max_pairs": 0, "polish_max_pairs": 0, "relax": False},
}


@pytest.fixture(params=list(PATHS))
def path(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Each example runs on every path: exact (CP-SAT), the LP rounded, and the flow,
    each of the last two with the repairing stages after it."""
    return PATHS[request.param]


def test_an_eligible_clinician_is_offered_with_reasons(path: dict[str, Any]) -> None:
    session, window = _session(), _window()
    [proposal] = _plan([session], [window], **path).proposals
    assert proposal.clinician_id == window.clinician_id
    assert any("free for the whole session" in r for r in proposal.reasons)
    assert any("0 other clinicians" in r for r in proposal.reasons)


def test_wrong_profession_partial_cover_far_or_busy_is_not_offered(path: dict[str, Any]) -> None:
    session = _session()
    nurse = _window(profession=Profession.PRACTICE_NURSE)
    partial = _window(start_h=1)
    far = _window(latitude=54.5)
    busy = _window()
    held = Commitment(busy.clinician_id, T0 + timedelta(hours=3), T0 + timedelta(hours=5))
    result = _plan([session], [nurse, partial, far, busy], commitments=[held], **path)
    assert result.proposals == []
    assert result.unplaced[session.id].why is Why.NO_ELIGIBLE


def test_skills_are_required(path: dict[str, Any]) -> None:
    session = _session(skills=frozenset({Skill.INDEPENDENT_PRESCRIBER}))
    plain = _window()
    prescriber = _window(skills=frozenset({Skill.INDEPENDENT_PRESCRIBER}))
    [proposal] = _plan([session], [plain, prescriber], **path).proposals
    assert proposal.clinician_id == prescriber.clinician_id


def test_tried_pairs_are_never_offered_again(path: dict[str, Any]) -> None:
    session, first, second = _session(), _window(), _window()
    tried = frozenset({(session.id, first.clinician_id)})
    result = _plan([session], [first, second], already_tried=tried, **path)
    assert _offers(result) == {session.id: second.clinician_id}
    everyone = tried | {(session.id, second.clinician_id)}
    result = _plan([session], [first, second], already_tried=everyone, **path)
    assert result.unplaced[session.id].why is Why.DECLINED_BY_ALL


def test_urgent_then_deprived_win_a_contested_clinician(path: dict[str, Any]) -> None:
    """One clinician, three overlapping sessions: urgent beats deprived beats neither."""
    who = _window()
    plain = _session()
    deprived = _session(imd_decile=1)
    urgent = _session(urgency=Urgency.URGENT, imd_decile=9)
    assert _offers(_plan([plain, deprived, urgent], [who], **path)) == {urgent.id: who.clinician_id}
    assert _offers(_plan([plain, deprived], [who], **path)) == {deprived.id: who.clinician_id}


def test_continuity_then_distance_choose_between_clinicians(path: dict[str, Any]) -> None:
    session = _session()
    near, known = _window(latitude=53.48), _window(latitude=53.40)
    assert _offers(_plan([session], [near, known], **path)) == {session.id: near.clinician_id}
    history = frozenset({(known.clinician_id, session.organisation)})
    result = _plan([session], [near, known], worked_before=history, **path)
    assert _offers(result) == {session.id: known.clinician_id}
    assert any("worked at A81001 before" in r for r in result.proposals[0].reasons)


def test_more_sessions_filled_beats_a_better_single_match(path: dict[str, Any]) -> None:
    """A flexible clinician gives way so that both sessions are filled."""
    gp_only = _session(role=Role.GP)
    either = _session(start_h=0.5, urgency=Urgency.URGENT)
    gp = _window(profession=Profession.GP)
    pharmacist = _window(latitude=53.40)  # further, but the only other choice
    result = _plan([gp_only, either], [gp, pharmacist], **path)
    assert _offers(result) == {gp_only.id: gp.clinician_id, either.id: pharmacist.clinician_id}


def test_the_cap_holds_a_sector_back_and_says_so(path: dict[str, Any]) -> None:
    """A community pharmacist may not fill a GP session when community pharmacy's net
    outflow would pass its cap; with room under the cap, they may."""
    session = _session()
    pharmacist = _window(home_sector=CP)
    tight = {s: SectorBalance(offered_hours=100, net_out_hours=8) for s in Sector}
    problem = Problem(
        sessions=[session],
        windows=[pharmacist],
        balances=tight,
        **path,
    )
    result = plan(problem)  # 10% of 100 hours is 10; 8 are out; 4 more would be 12
    assert result.proposals == []
    assert result.unplaced[session.id].why is Why.DRAIN_GUARD
    roomy = {s: SectorBalance(offered_hours=100, net_out_hours=5) for s in Sector}
    [proposal] = plan(replace(problem, balances=roomy)).proposals
    assert proposal.cross_sector
    assert result.balances[CP].net_out_hours == 8
    assert plan(replace(problem, balances=roomy)).balances[CP].net_out_hours == 9


def test_home_first_keeps_a_clinician_for_their_own_sector(path: dict[str, Any]) -> None:
    """An urgent PCN session is worth more, but the community pharmacist's own
    pharmacy session at the same time is open: home first offers them that one."""
    pcn = _session(urgency=Urgency.URGENT, imd_decile=1)
    pharmacy = _session(sector=CP, role=Role.COMMUNITY_PHARMACIST, organisation="FVR79")
    pharmacist = _window(home_sector=CP)
    result = _plan([pcn, pharmacy], [pharmacist], **path)
    assert _offers(result) == {pharmacy.id: pharmacist.clinician_id}
    # The PCN session lost its one candidate to home first: the drain guard held it,
    # not "clinicians taken" (as if outranked by a better session).
    assert result.unplaced[pcn.id].why is Why.DRAIN_GUARD
    off = replace(OPEN_CAPS, home_first=False)
    assert _offers(_plan([pcn, pharmacy], [pharmacist], policy=off, **path)) == {
        pcn.id: pharmacist.clinician_id
    }


def test_eleven_hours_rest_between_working_days(path: dict[str, Any]) -> None:
    """An evening to 22:00 and the next morning from 07:00: only one, unless self-employed
    (then both, with a warning on the one that breaks the rest)."""
    evening = _session(start_h=9, hours=4)  # 18:00 to 22:00, London = UTC in December
    morning = _session(start_h=22, hours=4)  # 07:00 next day
    employed = _window(hours=40)
    assert len(_plan([evening, morning], [employed], **path).proposals) == 1
    locum = replace(employed, self_employed=True)
    both = _plan([evening, morning], [locum], **path).proposals
    assert len(both) == 2
    assert all(any("11 hours" in w for w in p.warnings) for p in both)


def test_forty_eight_hours_in_seven_days_unless_opted_out(path: dict[str, Any]) -> None:
    """Five 12-hour days in one week: four unless opted out."""
    days = [_session(start_h=24 * d, hours=12) for d in range(5)]
    employed = _window(hours=24 * 6)
    assert len(_plan(days, [employed], **path).proposals) == 4
    opted_out = replace(employed, wtr_opt_out=True)
    assert len(_plan(days, [opted_out], **path).proposals) == 5


def test_hours_past_the_limit_in_another_week_bar_nothing_new(
    path: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clinician booked for 60 hours in the week before (booked before the rule, or
    by hand) may still take a session 8 days on, and the exact model stays solvable:
    one clinician's history once made the whole region's model infeasible."""
    solved: list[exact.Solution | None] = []
    solve = exact.solve

    def recording(*args: Any, **kw: Any) -> Any:
        solved.append(found := solve(*args, **kw))
        return found

    monkeypatch.setattr(exact, "solve", recording)
    window = _window(start_h=24 * 8 - 1, hours=12)
    history = [
        Commitment(window.clinician_id, T0 + timedelta(days=d), T0 + timedelta(days=d, hours=12))
        for d in range(5)
    ]
    later = _session(start_h=24 * 8, hours=4)
    result = plan(
        replace(
            Problem(sessions=[later], windows=[window], policy=OPEN_CAPS, commitments=history),
            **path,
        )
    )
    assert _offers(result) == {later.id: window.clinician_id}
    if path["exact_max_pairs"]:  # the exact model proved its plan optimal, not falling back
        assert solved
        assert solved[0] is not None
        assert solved[0].proven
    # The same hours in the 7 days of the new session do bar it.
    inside = _session(start_h=24 * 5, hours=4)
    near = _window(start_h=24 * 5 - 1, hours=12, clinician_id=window.clinician_id)
    result = plan(
        replace(
            Problem(sessions=[inside], windows=[near], policy=OPEN_CAPS, commitments=history),
            **path,
        )
    )
    assert not result.proposals


def test_offer_expiry_is_the_sooner_of_two_hours_and_half_the_time_left() -> None:
    now = T0
    assert offer_expiry(now, now + timedelta(days=2)) == now + timedelta(hours=2)
    assert offer_expiry(now, now + timedelta(hours=2)) == now + timedelta(hours=1)
    assert offer_expiry(now, now - timedelta(hours=1)) == now


def test_more_sessions_filled_beat_fewer_more_needed_ones() -> None:
    """The objective is lexicographic over the plan: one clinician can take six urgent
    sessions in the most deprived areas or seven routine ones in the same twelve hours,
    and seven filled wins. (A weighted sum of the tiers chose the six: 6 × 1.19 M
    against 7 × 1.0 M.) The exact path; the flow's time blocks miss this one, which is
    why problems up to a batch's size are solved exactly."""
    urgent = [
        _session(start_h=2 * k, hours=2, urgency=Urgency.URGENT, imd_decile=1) for k in range(6)
    ]
    routine = [_session(start_h=12 * k / 7, hours=12 / 7, imd_decile=10) for k in range(7)]
    who = _window(start_h=0, hours=12)
    result = _plan([*urgent, *routine], [who])
    assert set(_offers(result)) == {s.id for s in routine}
    assert result.objective.filled == 7


def test_work_is_spread_between_equally_placed_clinicians() -> None:
    """Two clinicians at the same place, free all day, and two sessions one after the
    other: each gets one rather than one getting both."""
    here = {"latitude": 53.47, "longitude": -2.25}
    first, second = _window(**here), _window(**here)
    morning, afternoon = _session(start_h=0, hours=4), _session(start_h=5, hours=4)
    result = _plan([morning, afternoon], [first, second])
    assert set(_offers(result).values()) == {first.clinician_id, second.clinician_id}
    assert result.objective.spread == 2


def test_continuity_comes_before_spreading_work() -> None:
    """One clinician has worked at the practice before, another has not, and both are
    free all day for its two sessions: continuity is the higher tier, so the first
    takes both rather than each taking one. (Small models solve the three lower tiers
    as one weighted stage; with their weights swapped this plan spreads the work.)"""
    here = {"latitude": 53.47, "longitude": -2.25}
    known, new = _window(**here), _window(**here)
    morning, afternoon = _session(start_h=0, hours=4), _session(start_h=5, hours=4)
    result = _plan(
        [morning, afternoon],
        [known, new],
        worked_before=frozenset({(known.clinician_id, "A81001")}),
    )
    assert set(_offers(result).values()) == {known.clinician_id}
    assert (result.objective.continuity, result.objective.spread) == (2, 1)


def test_the_lower_tiers_bounds_are_what_was_proven() -> None:
    """Solved to proof, each tier's bound is the plan's own value: the one weighted
    bound of the lower tiers is taken apart tier by tier, not passed on whole."""
    here = {"latitude": 53.47, "longitude": -2.25}
    known, new = _window(**here), _window(**here)
    sessions = [_session(start_h=0, hours=4), _session(start_h=5, hours=4, imd_decile=2)]
    result = _plan(sessions, [known, new], worked_before=frozenset({(new.clinician_id, "A81001")}))
    assert result.solved is not None
    assert result.solved.proven
    assert result.solved.proven_stages == 4
    assert result.solved.bound == result.objective
