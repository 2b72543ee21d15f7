"""The exact stage of the planner, for problems small enough: CP-SAT (OR-Tools). No I/O.

Most plans are small (one event touches one stretch of time), and for them the whole
model of docs/matching.md fits a constraint solver in milliseconds, so the plan is the
optimum, not a good guess. Times are whole seconds, so every limit is an exact integer
inequality.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from ortools.sat.python import cp_model

from services.matching.domain import overlaps
from services.matching.working_time import WEEK, WEEK_LIMIT_H, too_little_rest

Span = tuple[datetime, datetime]


@dataclass(frozen=True)
class Model:
    """The planner's view of one problem, pair by pair (indices into its lists)."""

    pairs: Sequence[int]  # the pairs that may be chosen
    session_of: Sequence[int]
    clinician_of: Sequence[int]
    value: Sequence[int]
    cross: Sequence[bool]
    span: Callable[[int], Span]  # a pair's session's start and end
    hours_home: Callable[[int], tuple[object, object]]  # (clinician's sector, session's)
    busy: Callable[[int], list[Span]]  # a clinician's commitments
    self_employed: Callable[[int], bool]
    opted_out: Callable[[int], bool]
    home_pairs: Callable[[int], Sequence[int]]  # a clinician's home-sector pairs
    budget_s: dict[object, int]  # sector → seconds of net outflow it may still take
    home_first: bool


def _seconds(span: Span) -> int:
    return int((span[1] - span[0]).total_seconds())


def _clip(span: Span, start: datetime, end: datetime) -> int:
    return max(0, int((min(span[1], end) - max(span[0], start)).total_seconds()))


def solve(  # noqa: PLR0912
    model: Model, *, time_limit_s: float, hint: list[int] | None = None
) -> tuple[list[int], bool] | None:
    """The best choice of pairs found and whether it is proven optimal; None if none.

    A ``hint`` (a valid plan) starts the search there, so whatever the solver finds in
    its time is at least as good.
    """
    cp = cp_model.CpModel()
    x = {i: cp.new_bool_var(f"x{i}") for i in model.pairs}
    by_session: dict[int, list[int]] = {}
    by_clinician: dict[int, list[int]] = {}
    for i in model.pairs:
        by_session.setdefault(model.session_of[i], []).append(i)
        by_clinician.setdefault(model.clinician_of[i], []).append(i)
    for members in by_session.values():
        cp.add_at_most_one(x[i] for i in members)
    for c, mine in by_clinician.items():
        _clinician_rules(cp, x, model, c, mine)
    if model.home_first:
        for i in model.pairs:
            if not model.cross[i]:
                continue
            for j in model.home_pairs(model.clinician_of[i]):
                if j in x and overlaps(*model.span(i), *model.span(j)):
                    cp.add(x[i] <= sum(x[k] for k in by_session[model.session_of[j]]))
    flows: dict[object, list[tuple[int, int]]] = {}
    for i in model.pairs:
        if model.cross[i]:
            out, into = model.hours_home(i)
            seconds = _seconds(model.span(i))
            flows.setdefault(out, []).append((i, seconds))
            flows.setdefault(into, []).append((i, -seconds))
    for sector, terms in flows.items():
        # Either the sector's net outflow stays within what it may still lose, or it
        # lends nobody (a sector already over its cap may still borrow).
        outgoing = [x[i] for i, s in terms if s > 0]
        if not outgoing:
            continue
        lends = cp.new_bool_var(f"lends_{sector}")
        cp.add(sum(s * x[i] for i, s in terms) <= model.budget_s[sector]).only_enforce_if(lends)
        cp.add(sum(outgoing) == 0).only_enforce_if(~lends)
    cp.maximize(sum(model.value[i] * x[i] for i in model.pairs))
    if hint is not None:
        chosen = set(hint)
        for i in model.pairs:
            cp.add_hint(x[i], i in chosen)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit_s
    solver.parameters.num_workers = 1  # deterministic, and the service runs many at once
    status = solver.solve(cp)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    return [i for i in model.pairs if solver.value(x[i])], status == cp_model.OPTIMAL


def _clinician_rules(
    cp: cp_model.CpModel,
    x: dict[int, cp_model.IntVar],
    model: Model,
    c: int,
    mine: list[int],
) -> None:
    """No overlaps; and, unless self-employed, 11 hours' rest and 48 hours in 7 days."""
    strict = not model.self_employed(c)
    busy = model.busy(c)
    for a, i in enumerate(mine):
        for j in mine[a + 1 :]:
            si, sj = model.span(i), model.span(j)
            if overlaps(*si, *sj) or (strict and too_little_rest(si, sj)):
                cp.add_at_most_one((x[i], x[j]))
        if strict and any(too_little_rest(model.span(i), b) for b in busy):
            cp.add(x[i] == 0)
    if not strict or model.opted_out(c):
        return
    spans = [model.span(i) for i in mine]
    limit = int(WEEK_LIMIT_H * 3600)
    if sum(_seconds(s) for s in spans + busy) <= limit:
        return
    instants = {s for s, _ in spans + busy} | {e - WEEK for _, e in spans + busy}
    for t in instants:
        end = t + WEEK
        fixed = sum(_clip(b, t, end) for b in busy)
        terms = [(i, _clip(model.span(i), t, end)) for i in mine]
        terms = [(i, s) for i, s in terms if s]
        # Hours already past the limit (bookings from before, or elsewhere) bar every new
        # shift in those 7 days, and nothing outside them: were the bound negative, the
        # whole region's model would be infeasible for one clinician's history.
        if terms and fixed + sum(s for _, s in terms) > limit:
            cp.add(sum(s * x[i] for i, s in terms) <= max(0, limit - fixed))
