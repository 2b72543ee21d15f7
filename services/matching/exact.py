"""The exact stage of the planner: CP-SAT (OR-Tools), in two stages. No I/O.

The objective is lexicographic (``objective.Score``): the solver maximises sessions
filled and need (one stage, weighted so that one more fill outweighs any need), then,
holding those, continuity, spread and nearness (one stage, weighted likewise), started
from the first stage's plan. A plan proven optimal at both stages is the lexicographic
optimum.

How it is set up, measured on the benchmark's generator (600 sessions, 3,467 pairs,
the size of one 500-session batch; docs/matching.md has the figures):
- one worker with ``linearization_level = 2`` (the full LP relaxation at every node):
  the fill stage proved in 0.65 s, where the default single worker took 19 s and two
  default workers did not prove it in 20 s. The problem is an assignment with side
  rules, whose LP is nearly integral; the LP is what proves it.
- overlaps as cliques (every set of one clinician's sessions sharing an instant at
  most one), not pairs: the LP of pairs allows half of three overlapping sessions each.
Times are whole seconds, so every limit is an exact integer inequality.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from ortools.sat.python import cp_model

from services.matching import objective, rules
from services.matching.domain import overlaps
from services.matching.objective import Score

Span = tuple[datetime, datetime]
# Up to this many pairs a model is small: presolve is tuned for it (see ``solve``).
SMALL_PAIRS = 1_000


@dataclass(frozen=True)
class Model:
    """The planner's view of one problem, pair by pair (indices into its lists)."""

    pairs: Sequence[int]  # the pairs that may be chosen
    session_of: Sequence[int]
    clinician_of: Sequence[int]
    need: Sequence[int]  # per pair: the session's need
    worked: Sequence[bool]  # per pair: continuity
    near: Sequence[int]  # per pair: nearness
    cross: Sequence[bool]
    span: Callable[[int], Span]  # a pair's session's start and end
    hours_home: Callable[[int], tuple[object, object]]  # (clinician's sector, session's)
    busy: Callable[[int], list[Span]]  # a clinician's commitments
    self_employed: Callable[[int], bool]
    opted_out: Callable[[int], bool]
    home_pairs: Callable[[int], Sequence[int]]  # a clinician's home-sector pairs
    budget_s: dict[object, int]  # sector → seconds of net outflow it may still take
    home_first: bool
    # When the model is one window of a larger plan (``engine``'s ``improve``): sectors
    # lending outside it (their budget row holds unconditionally), sessions that must
    # stay filled (home first for a move fixed outside), clinicians already working.
    lending: frozenset[object] = frozenset()
    must_fill: frozenset[int] = frozenset()
    employed: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Solution:
    """The plan found, whether every stage proved its tier, and the tiers' bounds
    (each stage's bound given the tiers above it at the values found)."""

    chosen: list[int]
    proven: bool
    bound: Score
    # How many of the four tiers' stages, from the first, were proven: 1 means fill and
    # need are optimal, 4 every tier (the lower three are proven together).
    proven_stages: int = 0


def _seconds(span: Span) -> int:
    return int((span[1] - span[0]).total_seconds())


class _Built:
    """The CP-SAT model of every rule, with the tiers' expressions."""

    def __init__(self, model: Model) -> None:
        cp = cp_model.CpModel()
        x = {i: cp.new_bool_var(f"x{i}") for i in model.pairs}
        by_session: dict[int, list[int]] = {}
        by_clinician: dict[int, list[int]] = {}
        for i in model.pairs:
            by_session.setdefault(model.session_of[i], []).append(i)
            by_clinician.setdefault(model.clinician_of[i], []).append(i)
        for members in by_session.values():
            if len(members) > 1:
                cp.add_at_most_one(x[i] for i in members)
        # Spread: ``works[c]`` is 1 only if clinician c gets something.
        self.works: dict[int, cp_model.IntVar] = {}
        for c, mine in by_clinician.items():
            _clinician_rules(cp, x, model, c, mine)
            if c not in model.employed:
                self.works[c] = cp.new_bool_var(f"works{c}")
                cp.add(self.works[c] <= sum(x[i] for i in mine))
        for session in model.must_fill:
            cp.add(sum(x[i] for i in by_session.get(session, [])) >= 1)
        if model.home_first:
            _home_first(cp, x, model, by_session)
        _caps(cp, x, model)
        ps = list(model.pairs)
        self.cp, self.x, self.model = cp, x, model
        # Filling and need in one stage, weighted so that it is still lexicographic
        # (need sums to at most 19 a session, less than one more fill is worth):
        # measured, one stage proved in 1.2 s what two proved in 2.7 s.
        self.fill_weight = objective.MOST_NEED * len(by_session) + 1
        fill = sum((self.fill_weight + model.need[i]) * x[i] for i in ps)
        continuity = sum(x[i] for i in ps if model.worked[i])
        spread = sum(self.works.values())
        near = sum(model.near[i] * x[i] for i in ps if model.near[i])
        # The three lower tiers in one stage, weighted so that it is still lexicographic
        # (nearness sums to at most NEAR_MAX a session, spread and continuity to at most
        # one). Measured against a stage each: on 139 stretches of the benchmark's week
        # a quarter less time, 649 ms to 492 ms (each solve costs milliseconds of presolve);
        # on 10 batches of 500 sessions of each family, every tier proven within 2 s in
        # 8 of the default's (was 3) and 5 of the tight's (was 5).
        spread_weight = objective.NEAR_MAX * len(by_session) + 1
        self.weights = ((len(by_session) + 1) * spread_weight, spread_weight)
        lower = self.weights[0] * continuity + self.weights[1] * spread + near
        self.stages: list[cp_model.LinearExprT] = [fill, lower]
        # How many of the objective's tiers each stage settles.
        self.tiers_of_stage = [1, 3]

    def hint(self, chosen: list[int]) -> None:
        """Start the next search from ``chosen`` (a valid plan), with whom it employs."""
        self.cp.clear_hints()  # type: ignore[no-untyped-call]
        picked = set(chosen)
        for i, var in self.x.items():
            self.cp.add_hint(var, i in picked)
        employed = {self.model.clinician_of[i] for i in chosen}
        for c, var in self.works.items():
            self.cp.add_hint(var, c in employed)


def solve(
    model: Model, *, time_limit_s: float, hint: list[int] | None = None, stages: int = 2
) -> Solution | None:
    """The lexicographically best plan found within ``time_limit_s``; None if none.

    A ``hint`` (a valid plan) starts the search there, so whatever the solver finds in
    its time is at least as good. Later stages get whatever time the earlier ones left;
    a stage that runs out of time holds what it found and the next ones still run.
    ``stages=1`` stops after filling and need.
    """
    deadline = time.perf_counter() + time_limit_s
    built = _Built(model)
    chosen = list(hint) if hint is not None else None
    proven = True
    proven_stages = 0
    bounds: list[int] = []
    for stage, tiers in list(zip(built.stages, built.tiers_of_stage, strict=True))[:stages]:
        if isinstance(stage, int):  # an empty sum: nothing to choose in this tier
            bounds.append(stage)
            proven_stages += proven * tiers
            continue
        if chosen is not None:
            built.hint(chosen)
        built.cp.maximize(stage)
        solver = cp_model.CpSolver()
        solver.parameters.max_time_in_seconds = max(0.01, deadline - time.perf_counter())
        # One worker: deterministic, and the service plans several regions at once.
        solver.parameters.num_workers = 1
        solver.parameters.linearization_level = 2
        if len(model.pairs) <= SMALL_PAIRS:
            # A stretch re-planned for one post: the search takes under a millisecond
            # and presolve's symmetry and probing passes most of the rest (measured on
            # 139 stretches of the benchmark's week: 15% less time, the same plans).
            solver.parameters.symmetry_level = 0
            solver.parameters.cp_model_probing_level = 0
        status = solver.solve(built.cp)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            if chosen is None:
                return None
            proven = False
            break
        chosen = [i for i, var in built.x.items() if solver.value(var)]
        proven = proven and status == cp_model.OPTIMAL
        proven_stages += proven * tiers
        bounds.append(math.floor(solver.best_objective_bound + 1e-6))
        # Hold this stage at what was found while the next ones are improved.
        built.cp.add(stage >= round(solver.objective_value))
    if chosen is None:
        return None
    return Solution(chosen, proven, _bound(built, chosen, bounds), proven_stages)


def _bound(built: _Built, chosen: list[int], bounds: list[int]) -> Score:
    """Each tier's bound, from the stages' bounds (missing stages: what was found)."""
    model = built.model
    found = [
        sum(model.worked[i] for i in chosen),
        len({model.clinician_of[i] for i in chosen}),
        sum(model.near[i] for i in chosen),
    ]
    first = bounds[0] if bounds else 0
    filled = first // built.fill_weight
    if len(bounds) == 2:
        # One bound for the three lower tiers: each tier's, the tiers above at what was
        # found (the lower tiers are never negative, so each is a valid bound).
        (continuity, spread, _), (w_continuity, w_spread) = found, built.weights
        lower = bounds[1]
        rest = [
            lower // w_continuity,
            (lower - continuity * w_continuity) // w_spread,
            lower - continuity * w_continuity - spread * w_spread,
        ]
    else:
        rest = bounds[1:] + found[len(bounds) - 1 :] if bounds else found
    return Score(filled, first - filled * built.fill_weight, *rest)


def _home_first(
    cp: cp_model.CpModel,
    x: dict[int, cp_model.IntVar],
    model: Model,
    by_session: dict[int, list[int]],
) -> None:
    """A clinician given a session outside their sector leaves no overlapping session
    of their own sector that they could take open."""
    for i in model.pairs:
        if not model.cross[i]:
            continue
        for j in model.home_pairs(model.clinician_of[i]):
            if j in x and overlaps(*model.span(i), *model.span(j)):
                # The home session is given to someone else (this clinician
                # can't take both: they overlap).
                others = [k for k in by_session[model.session_of[j]] if k != j]
                cp.add(x[i] <= sum(x[k] for k in others))


def _caps(cp: cp_model.CpModel, x: dict[int, cp_model.IntVar], model: Model) -> None:
    """Each sector's net outflow within its cap, or no one lent."""
    flows: dict[object, list[tuple[int, int]]] = {}
    for i in model.pairs:
        if model.cross[i]:
            out, into = model.hours_home(i)
            seconds = _seconds(model.span(i))
            flows.setdefault(out, []).append((i, seconds))
            flows.setdefault(into, []).append((i, -seconds))
    for sector, terms in flows.items():
        # Either the sector's net outflow stays within what it may still lose, or
        # it lends nobody (a sector already over its cap may still borrow).
        outgoing = [x[i] for i, s in terms if s > 0]
        if sector in model.lending:
            cp.add(sum(s * x[i] for i, s in terms) <= model.budget_s[sector])
            continue
        if not outgoing:
            continue
        lends = cp.new_bool_var(f"lends_{sector}")
        cp.add(sum(s * x[i] for i, s in terms) <= model.budget_s[sector]).only_enforce_if(lends)
        cp.add(sum(outgoing) == 0).only_enforce_if(~lends)


def _clinician_rules(
    cp: cp_model.CpModel,
    x: dict[int, cp_model.IntVar],
    model: Model,
    c: int,
    mine: list[int],
) -> None:
    """``rules``' per-clinician rules as constraints on the clinician's pairs."""
    spans = [model.span(i) for i in mine]
    for clique in rules.conflict_cliques(spans):
        cp.add_at_most_one(x[mine[k]] for k in clique)
    if model.self_employed(c):
        return
    busy = model.busy(c)
    for a, b in rules.rest_conflicts(spans):
        cp.add_at_most_one((x[mine[a]], x[mine[b]]))
    for k, i in enumerate(mine):
        if not rules.rested_after(spans[k], busy):
            cp.add(x[i] == 0)
    if model.opted_out(c):
        return
    for terms, bound in rules.week_rows(spans, busy):
        cp.add(sum(s * x[mine[k]] for k, s in terms) <= bound)
