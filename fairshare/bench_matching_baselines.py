"""What `fairshare bench matching` compares the engine with.

- ``greedy``: first come, first served, as the incumbents work: sessions in posting
  order, each to the first eligible clinician who answers and is free (hard rules and
  working time kept; no drain guard, no home first).
- ``highs_optimum``: the exact optimum of docs/matching.md's model from HiGHS (MILP,
  through OR-Tools' wrapper, which bundles it),
  built here from the specification, independently of the engine's repair and CP-SAT
  code. Eligible pairs come from ``eligibility.find_pairs``, which is the per-pair rule
  in bulk; the objective from ``objective.values``, which is its definition.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import random
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from ortools.linear_solver import pywraplp

from services.matching import objective
from services.matching.eligibility import Pairs, find_pairs
from services.matching.engine import Problem
from services.matching.policy import budget
from services.matching.working_time import breaches, working_day
from shared.catalogue import Sector


@dataclass(frozen=True)
class Baseline:
    """A plan from a baseline: which pair indices, how many filled, worst drain."""

    chosen: list[int]
    filled: int
    objective: objective.Score
    max_drain_pct: float
    solve_s: float
    extra: dict[str, Any]


@dataclass(frozen=True)
class Tiers:
    """Each pair's part in each tier of the objective (docs/matching.md)."""

    need: list[int]
    worked: list[bool]
    near: list[int]
    clinician: list[int]

    def score(self, chosen: list[int]) -> objective.Score:
        """The plan's ``Score``."""
        return objective.score(
            [self.need[i] for i in chosen],
            [self.worked[i] for i in chosen],
            [self.near[i] for i in chosen],
            [self.clinician[i] for i in chosen],
        )


def tiers_of(problem: Problem, pairs: Pairs) -> Tiers:
    """Every pair's tiers, from the objective's definitions."""
    sectors = list(Sector)
    s_sector = np.array([sectors.index(s.sector) for s in problem.sessions])
    c_home = np.array([sectors.index(p.home_sector) for p in pairs.first_window])
    cross = s_sector[pairs.session] != c_home[pairs.clinician]
    need = np.array([objective.need(s) for s in problem.sessions], dtype=np.int64)
    worked = [
        (pairs.clinicians[c], problem.sessions[s].organisation) in problem.worked_before
        for s, c in zip(pairs.session.tolist(), pairs.clinician.tolist(), strict=True)
    ]
    return Tiers(
        need[pairs.session].tolist(),
        worked,
        objective.nearnesses(pairs.km, cross).tolist(),
        pairs.clinician.tolist(),
    )


def drain_pct(problem: Problem, pairs: Pairs, chosen: list[int]) -> float:
    """The worst sector's net outflow, percent of its offered hours, after ``chosen``."""
    assert problem.balances is not None
    net = {s: b.net_out_hours for s, b in problem.balances.items()}
    for i in chosen:
        session = problem.sessions[int(pairs.session[i])]
        home = pairs.first_window[int(pairs.clinician[i])].home_sector
        if home is not session.sector:
            net[home] += session.hours
            net[session.sector] -= session.hours
    return max(
        100 * net[s] / b.offered_hours for s, b in problem.balances.items() if b.offered_hours
    )


def greedy(problem: Problem, pairs: Pairs, seed: int) -> Baseline:
    """First come, first served (see module doc)."""
    clock = time.perf_counter()
    rng = random.Random(seed)
    by_session: dict[int, list[int]] = defaultdict(list)
    for i, s in enumerate(pairs.session.tolist()):
        by_session[s].append(i)
    taken: dict[int, list[tuple[Any, Any]]] = defaultdict(list)
    chosen: list[int] = []
    order = list(range(len(problem.sessions)))
    rng.shuffle(order)  # the order sessions were posted in
    for s in order:
        session = problem.sessions[s]
        span = (session.starts_at, session.ends_at)
        answers = by_session.get(s, [])
        rng.shuffle(answers)  # the order clinicians answer in
        for i in answers:
            c = int(pairs.clinician[i])
            person = pairs.first_window[c]
            if any(a < span[1] and span[0] < b for a, b in taken[c]):
                continue
            if not person.self_employed and breaches(span, taken[c], opted_out=person.wtr_opt_out):
                continue
            taken[c].append(span)
            chosen.append(i)
            break
    return Baseline(
        chosen=chosen,
        filled=len(chosen),
        objective=tiers_of(problem, pairs).score(chosen),
        max_drain_pct=drain_pct(problem, pairs, chosen),
        solve_s=time.perf_counter() - clock,
        extra={},
    )


class _Rows:
    """Constraint rows collected for HiGHS, row by row (sparse)."""

    def __init__(self) -> None:
        self.starts: list[int] = [0]
        self.index: list[int] = []
        self.value: list[float] = []
        self.upper: list[float] = []

    def add(self, columns: list[int], coefficients: list[float], upper: float) -> None:
        self.index.extend(columns)
        self.value.extend(coefficients)
        self.starts.append(len(self.index))
        self.upper.append(upper)


def highs_optimum(problem: Problem, pairs: Pairs, time_limit_s: float) -> Baseline:  # noqa: PLR0912, PLR0915
    """The model of docs/matching.md as a MILP, solved by HiGHS within ``time_limit_s``."""
    clock = time.perf_counter()
    n = len(pairs.session)
    sessions = problem.sessions
    people = pairs.first_window
    tiers = tiers_of(problem, pairs)
    s_of, c_of = pairs.session.tolist(), pairs.clinician.tolist()
    rows = _Rows()
    by_session: dict[int, list[int]] = defaultdict(list)
    by_clinician: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        by_session[s_of[i]].append(i)
        by_clinician[c_of[i]].append(i)
    for members in by_session.values():
        if len(members) > 1:
            rows.add(members, [1.0] * len(members), 1.0)
    busy: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
    index = {who: c for c, who in enumerate(pairs.clinicians)}
    for commitment in problem.commitments:
        if commitment.clinician_id in index:
            busy[index[commitment.clinician_id]].append((commitment.starts_at, commitment.ends_at))
    for c, mine in by_clinician.items():
        person = people[c]
        mine.sort(key=lambda i: sessions[s_of[i]].starts_at)
        starts = [sessions[s_of[i]].starts_at for i in mine]
        # No overlap: at each session's start, at most one session containing it.
        seen: set[tuple[int, ...]] = set()
        for t in sorted(set(starts)):
            clique = tuple(
                i for i in mine if sessions[s_of[i]].starts_at <= t < sessions[s_of[i]].ends_at
            )
            if len(clique) > 1 and clique not in seen:
                seen.add(clique)
                rows.add(list(clique), [1.0] * len(clique), 1.0)
        if person.self_employed:
            continue
        # 11 hours' rest between working days, with commitments too.
        for i in mine:
            span = (sessions[s_of[i]].starts_at, sessions[s_of[i]].ends_at)
            if any(_short_rest(span, b) for b in busy[c]):
                rows.add([i], [1.0], 0.0)
            end = sessions[s_of[i]].ends_at
            lo = bisect.bisect_left(starts, end)
            hi = bisect.bisect_left(starts, end + timedelta(hours=11))
            for j in mine[lo:hi]:
                if working_day(sessions[s_of[i]].starts_at) != working_day(
                    sessions[s_of[j]].starts_at
                ):
                    rows.add([i, j], [1.0, 1.0], 1.0)
        # 48 hours in any 7 days that include a new session: one row per 7 days that
        # could be the busiest (from a start, or ending at an end), commitments fixed.
        if not person.wtr_opt_out:
            _week_rows(
                rows,
                [(i, sessions[s_of[i]].starts_at, sessions[s_of[i]].ends_at) for i in mine],
                busy[c],
            )
    home = [p.home_sector for p in people]
    cross = [home[c_of[i]] is not sessions[s_of[i]].sector for i in range(n)]
    if problem.policy.home_first:
        # Cross-sector pairs of c overlapping home session h need h filled:
        # sum of them <= (their count) * (h filled).
        for mine in by_clinician.values():
            outside = [i for i in mine if cross[i]]
            if not outside:
                continue
            for j in mine:
                if cross[j]:
                    continue
                h = sessions[s_of[j]]
                over = [
                    i
                    for i in outside
                    if sessions[s_of[i]].starts_at < h.ends_at
                    and h.starts_at < sessions[s_of[i]].ends_at
                ]
                if over:
                    filled_h = by_session[s_of[j]]
                    rows.add(
                        over + filled_h, [1.0] * len(over) + [-float(len(over))] * len(filled_h), 0
                    )
    assert problem.balances is not None
    caps = []
    for sector in Sector:
        room = budget(problem.policy, sector, problem.balances[sector])
        terms = [
            (i, sessions[s_of[i]].hours if home[c_of[i]] is sector else -sessions[s_of[i]].hours)
            for i in range(n)
            if cross[i] and sector in (home[c_of[i]], sessions[s_of[i]].sector)
        ]
        if any(h > 0 for _, h in terms):
            caps.append((terms, room))
    # HiGHS through OR-Tools' linear solver wrapper, which bundles it: the highspy wheel
    # and OR-Tools each carry their own HiGHS build and can't share a process.
    with _stdout_to_stderr():
        return _solve_highs(rows, caps, tiers, time_limit_s, clock, problem, pairs)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """HiGHS prints its banner on the process's stdout, where the JSON goes: move it."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _highs_model(
    solver: pywraplp.Solver,
    rows: _Rows,
    caps: list[tuple[list[tuple[int, float]], float]],
    tiers: Tiers,
) -> tuple[list[Any], list[Any]]:
    """The MILP's variables and rows: a column per pair, and who works (for spread)."""
    n = len(tiers.need)
    x = [solver.BoolVar(f"x{i}") for i in range(n)]
    infinity = solver.infinity()
    for r, upper in enumerate(rows.upper):
        row = solver.Constraint(-infinity, upper)
        for k in range(rows.starts[r], rows.starts[r + 1]):
            row.SetCoefficient(x[rows.index[k]], rows.value[k])
    for k, (terms, room) in enumerate(caps):
        # Either the sector lends nobody, or its net outflow stays within its room.
        lends = solver.BoolVar(f"lends{k}")
        out = sum(h for _, h in terms if h > 0)
        within = solver.Constraint(-infinity, room + out)
        lending = solver.Constraint(-infinity, 0)
        within.SetCoefficient(lends, out)
        lending.SetCoefficient(lends, -out)
        for i, h in terms:
            within.SetCoefficient(x[i], h)
            if h > 0:
                lending.SetCoefficient(x[i], h)
    by_clinician: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        by_clinician[tiers.clinician[i]].append(i)
    works = []
    for c, mine in by_clinician.items():
        # Spread: works ≤ 1 and ≤ the clinician's sessions, so it counts who works.
        w = solver.NumVar(0, 1, f"w{c}")
        row = solver.Constraint(-infinity, 0)
        row.SetCoefficient(w, 1)
        for i in mine:
            row.SetCoefficient(x[i], -1)
        works.append(w)
    return x, works


def _solve_highs(
    rows: _Rows,
    caps: list[tuple[list[tuple[int, float]], float]],
    tiers: Tiers,
    time_limit_s: float,
    clock: float,
    problem: Problem,
    pairs: Pairs,
) -> Baseline:
    """The tiers in turn: each maximised with those above held at their optimum."""
    solver = pywraplp.Solver.CreateSolver("HIGHS")
    if solver is None:
        msg = "this OR-Tools build has no HiGHS"
        raise RuntimeError(msg)
    n = len(tiers.need)
    x, works = _highs_model(solver, rows, caps, tiers)
    stages: list[list[tuple[Any, float]]] = [
        [(x[i], 1.0) for i in range(n)],
        [(x[i], float(tiers.need[i])) for i in range(n) if tiers.need[i]],
        [(x[i], 1.0) for i in range(n) if tiers.worked[i]],
        [(w, 1.0) for w in works],
        [(x[i], float(tiers.near[i])) for i in range(n) if tiers.near[i]],
    ]
    built_s = time.perf_counter() - clock
    deadline = time.perf_counter() + time_limit_s
    # Proven means proven: HiGHS otherwise stops at a 0.01% gap, which on the nearness
    # tier is dozens of points.
    exactly = pywraplp.MPSolverParameters()
    exactly.SetDoubleParam(exactly.RELATIVE_MIP_GAP, 0.0)
    status, chosen, bounds, proven_tiers = "Optimal", None, [], 0
    for terms in stages:
        if not terms:
            bounds.append(0.0)
            continue
        goal = solver.Objective()
        goal.Clear()
        for var, c in terms:
            goal.SetCoefficient(var, c)
        goal.SetMaximization()
        solver.SetTimeLimit(max(1, int((deadline - time.perf_counter()) * 1000)))
        outcome = solver.Solve(exactly)
        if outcome not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
            # Out of time before a plan at this stage: the last stage's plan stands.
            status = (
                "No solution within the time limit"
                if chosen is None
                else f"Tiers up to {len(bounds)} proven; out of time at the next"
            )
            break
        chosen = [i for i in range(n) if x[i].solution_value() > 0.5]
        bounds.append(goal.BestBound())
        if outcome != pywraplp.Solver.OPTIMAL:
            status = f"Time limit reached at tier {len(bounds)} with a feasible plan"
            break
        proven_tiers = len(bounds)
        # Hold this tier at its optimum (less a hair for HiGHS's tolerances) for the next.
        held = solver.Constraint(round(goal.Value()) - 1e-6, solver.infinity())
        for var, c in terms:
            held.SetCoefficient(var, c)
    has_solution = chosen is not None
    chosen = chosen or []
    return Baseline(
        chosen=chosen,
        filled=len(chosen),
        objective=tiers.score(chosen),
        max_drain_pct=drain_pct(problem, pairs, chosen),
        solve_s=time.perf_counter() - clock,
        extra={
            "status": status,
            "has_solution": has_solution,
            "bound": bounds,
            "proven_tiers": proven_tiers,
            "rows": len(rows.upper),
            "columns": n,
            "build_s": round(built_s, 2),
        },
    )


def eligible_pairs(problem: Problem) -> Pairs:
    """The problem's eligible pairs (the per-pair rule, in bulk), less those tried."""
    pairs = find_pairs(problem.sessions, problem.windows, problem.commitments)
    if not problem.already_tried:
        return pairs
    ids = [s.id for s in problem.sessions]
    keep = np.array(
        [
            (ids[s], pairs.clinicians[c]) not in problem.already_tried
            for s, c in zip(pairs.session.tolist(), pairs.clinician.tolist(), strict=True)
        ],
        dtype=np.bool_,
    )
    return replace(
        pairs, session=pairs.session[keep], clinician=pairs.clinician[keep], km=pairs.km[keep]
    )


def _short_rest(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> bool:
    """Two shifts on different working days less than 11 hours apart (the spec's rule)."""
    first, second = sorted((a, b))
    if second[0] < first[1] or working_day(first[0]) == working_day(second[0]):
        return False
    return second[0] - first[1] < timedelta(hours=11)


def _week_rows(
    rows: _Rows,
    mine: list[tuple[int, datetime, datetime]],
    busy: list[tuple[datetime, datetime]],
) -> None:
    """48 hours in any 7 days that include a new session, as rows over ``mine``."""
    week, limit = timedelta(days=7), 48.0

    def clip(a: datetime, b: datetime, t: datetime) -> float:
        return max(0.0, (min(b, t + week) - max(a, t)).total_seconds() / 3600)

    if (
        sum((b - a).total_seconds() for _, a, b in mine) / 3600
        + sum((b - a).total_seconds() for a, b in busy) / 3600
        <= limit
    ):
        return
    instants = {a for _, a, _ in mine} | {a for a, _ in busy}
    instants |= {b - week for _, _, b in mine} | {b - week for _, b in busy}
    seen: set[tuple[tuple[tuple[int, float], ...], float]] = set()
    for t in sorted(instants):
        terms = tuple((i, clip(a, b, t)) for i, a, b in mine if clip(a, b, t) > 0)
        fixed = sum(clip(a, b, t) for a, b in busy)
        key = (terms, fixed)
        if terms and fixed + sum(h for _, h in terms) > limit and key not in seen:
            seen.add(key)
            rows.add([i for i, _ in terms], [h for _, h in terms], max(0.0, limit - fixed))
