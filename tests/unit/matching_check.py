"""An independent reading of docs/matching.md for the tests: every rule a plan must keep,
checked plainly pair by pair, and the best plan found by trying every assignment.

Written from the specification, not from the engine: the engine's bulk eligibility,
flow, repair and CP-SAT model are what it checks.
"""

from __future__ import annotations

import itertools
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from services.matching import objective
from services.matching.domain import Commitment, OpenSession, Proposal, Window, eligible, reach
from services.matching.engine import Problem
from shared.catalogue import Sector

LONDON = ZoneInfo("Europe/London")
Span = tuple[datetime, datetime]


def _windows_of(problem: Problem, clinician: uuid.UUID) -> list[Window]:
    return [w for w in problem.windows if w.clinician_id == clinician]


def _busy(problem: Problem, clinician: uuid.UUID) -> list[Commitment]:
    return [c for c in problem.commitments if c.clinician_id == clinician]


def pair_ok(problem: Problem, session: OpenSession, clinician: uuid.UUID) -> bool:
    """Rules 1–6 of an eligible pair."""
    if (session.id, clinician) in problem.already_tried:
        return False
    busy = _busy(problem, clinician)
    return any(eligible(session, w, busy) for w in _windows_of(problem, clinician))


def _person(problem: Problem, clinician: uuid.UUID) -> Window:
    return _windows_of(problem, clinician)[0]


def _hours(span: Span) -> float:
    return (span[1] - span[0]).total_seconds() / 3600


def _rest_broken(a: Span, b: Span) -> bool:
    first, second = sorted((a, b))
    if second[0] < first[1]:
        return False
    same_day = first[0].astimezone(LONDON).date() == second[0].astimezone(LONDON).date()
    return not same_day and second[0] - first[1] < timedelta(hours=11)


def _week_broken(spans: list[Span], busy: list[Span]) -> bool:
    """Whether some 7 days that include a planned shift hold more than 48 hours: hours
    past the limit in 7 days with no planned shift (history) are not the plan's doing."""
    every = spans + busy
    for t in [s for s, _ in every] + [e - timedelta(days=7) for _, e in every]:
        end = t + timedelta(days=7)
        if not any(s < end and e > t for s, e in spans):
            continue
        worked = sum(max(0.0, (min(e, end) - max(s, t)).total_seconds()) for s, e in every)
        if worked / 3600 > 48 + 1e-9:
            return True
    return False


def offered(problem: Problem) -> dict[Sector, tuple[float, float]]:
    """Each sector's (offered hours, net outflow so far)."""
    if problem.balances is not None:
        return {s: (b.offered_hours, b.net_out_hours) for s, b in problem.balances.items()}
    hours: dict[Sector, float] = defaultdict(float)
    for w in problem.windows:
        hours[w.home_sector] += _hours((w.starts_at, w.ends_at))
    return {s: (hours[s], 0.0) for s in Sector}


def violations(problem: Problem, plan: Sequence[tuple[OpenSession, uuid.UUID]]) -> list[str]:
    """Every rule of docs/matching.md that ``plan`` (session, clinician pairs) breaks."""
    found: list[str] = []
    if len({s.id for s, _ in plan}) != len(plan):
        found.append("a session given twice")
    mine: dict[uuid.UUID, list[Span]] = defaultdict(list)
    for session, clinician in plan:
        if not pair_ok(problem, session, clinician):
            found.append(f"ineligible pair {session.id} {clinician}")
        mine[clinician].append((session.starts_at, session.ends_at))
    for clinician, spans in mine.items():
        person = _person(problem, clinician)
        busy = [(c.starts_at, c.ends_at) for c in _busy(problem, clinician)]
        every = spans + busy
        for a, b in itertools.combinations(spans, 2):
            if a[0] < b[1] and b[0] < a[1]:
                found.append(f"overlap for {clinician}")
        if person.self_employed:
            continue
        if any(_rest_broken(a, b) for a in spans for b in every if a is not b):
            found.append(f"11-hour rest broken for {clinician}")
        if not person.wtr_opt_out and _week_broken(spans, busy):
            found.append(f"48 hours broken for {clinician}")
    taken = {s.id for s, _ in plan}
    if problem.policy.home_first:
        for session, clinician in plan:
            home = _person(problem, clinician).home_sector
            if home is session.sector:
                continue
            for h in problem.sessions:
                if (
                    h.sector is home
                    and h.id not in taken
                    and h.starts_at < session.ends_at
                    and session.starts_at < h.ends_at
                    and pair_ok(problem, h, clinician)
                ):
                    found.append(f"home first broken: {clinician} left {h.id} open")
    standing = offered(problem)
    for sector in Sector:
        out = sum(
            s.hours
            for s, c in plan
            if _person(problem, c).home_sector is sector and s.sector is not sector
        )
        into = sum(
            s.hours
            for s, c in plan
            if s.sector is sector and _person(problem, c).home_sector is not sector
        )
        hours, net = standing.get(sector, (0.0, 0.0))
        cap = problem.policy.cap_for(sector) / 100 * hours
        if out > 0 and net + out - into > cap + 1e-6:
            found.append(f"{sector} over its cap")
    return found


def worth(problem: Problem, plan: Sequence[tuple[OpenSession, uuid.UUID]]) -> objective.Score:
    """The objective of ``plan``, tier by tier, as the specification defines it."""
    needs, worked, near = [], [], []
    for session, clinician in plan:
        person = _person(problem, clinician)
        needs.append(objective.need(session))
        worked.append((clinician, session.organisation) in problem.worked_before)
        near.append(
            objective.nearness(
                reach(session, person), cross_sector=person.home_sector is not session.sector
            )
        )
    return objective.Score(len(plan), sum(needs), sum(worked), len({c for _, c in plan}), sum(near))


def brute_force(problem: Problem) -> objective.Score:
    """The lexicographically best objective over every assignment that keeps every rule."""
    clinicians = list(dict.fromkeys(w.clinician_id for w in problem.windows))
    choices = [[None, *(c for c in clinicians if pair_ok(problem, s, c))] for s in problem.sessions]
    best = objective.Score()
    for pick in itertools.product(*choices):
        plan = [(s, c) for s, c in zip(problem.sessions, pick, strict=True) if c is not None]
        if not violations(problem, plan):
            best = max(best, worth(problem, plan))
    return best


def as_pairs(proposals: Sequence[Proposal]) -> list[tuple[OpenSession, uuid.UUID]]:
    """A plan's proposals as (session, clinician) pairs."""
    return [(p.session, p.clinician_id) for p in proposals]
