"""The planner: a region's open sessions matched to its bank as a whole. No I/O.

``plan`` builds a ``_Planner`` and runs its stages in order, one method each:

1. ``build_pairs``: every pair the per-pair rules allow (``eligibility``), and per pair,
   in bulk, its session's need, nearness, continuity, whether it was tried before, and
   the live (untried) pairs grouped by session and by clinician.
2. ``exact``: a problem small enough is solved exactly (CP-SAT, in two lexicographic
   stages); a plan proven optimal is taken, and the later global stages are skipped.
3. ``relax``: a large problem starts from its LP relaxation (``relaxation``), solved
   whole or a working day at a time, its nearly whole solution taken where it fits.
4. ``flow``: otherwise (a mid-size problem not proven, or an LP not solved) a maximum,
   best-valued set of pairs is chosen globally (min-cost flow); per clinician, overlaps
   and working-time breaches the flow couldn't see are dropped (least valuable first).
   If a sector ends over its cap, its hours out are priced and the flow solved once
   more (one Lagrangian step).
5. ``repair``: until nothing changes, home-first breaches are swapped to the home
   session or dropped, and sectors over their cap lose their longest outgoing move.
6. ``fill``: each still-open session, most needed first, goes to its most valuable
   clinician that breaks no rule.
7. ``augment``: a session still open takes a clinician held by another session that can
   pass to someone else (augmenting paths, up to two sessions moved along).
8. ``improve``: large problems are re-planned exactly a window of time at a time, the
   rest held (a large neighbourhood search), while the plan's time lasts.
9. ``polish``: mid-size problems hand the heuristic's plan to CP-SAT as a starting point;
   ``keep_better`` then keeps the solver's plan if it is worth more.
10. ``explain``: the proposals with their reasons and warnings, and why each session
    left open is open.

Every step that drops keeps all rules; the LP's and fill and augmenting steps only add
what keeps them; so the plan obeys every hard rule whatever the LP or the flow chose.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from services.matching import exact, explain, flow, objective, relaxation, rules
from services.matching.domain import Commitment, OpenSession, Proposal, Window, overlaps
from services.matching.eligibility import Pairs, find_pairs
from services.matching.policy import Policy, SectorBalance, budget
from services.matching.working_time import breaches, too_little_rest, working_day
from shared.catalogue import Sector

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# How many of each session's best clinicians the flow weighs (see ``plan``).
FLOW_TOP_K = 32
# ``relax``: each session's best clinicians in the LP (measured at 10,000 sessions,
# before the improving stage: 12 filled 9,438, 24 filled 9,534 in 6.6 s, 32 filled
# 9,542 in 7.6 s; whole plans, 24 filled 9,535 of at most 9,557, 32 filled 9,549), and
# the least value of a pair in the LP's solution that is tried (almost all are 0 or 1).
RELAX_TOP_K = 32
RELAX_LEAST = 0.05
# Up to this many candidate pairs, one LP over the whole horizon rather than a day at a
# time: days share clinicians' 48 hours and rest. (2,000 sessions, about 45,000
# candidates: default week 1,827 filled of 1,832, was 1,825; tight 1,807 of 1,807,
# was 1,805. At 10,000 sessions, 229,000 candidates: one LP took 15 s, a day's 0.6 s.)
RELAX_WHOLE_MAX_PAIRS = 100_000
# How many of a session's best candidates the augmenting step tries (half as many at
# the end of a chain), and how many sessions a chain may move along.
AUGMENT_TRIES = 12
AUGMENT_DEPTH = 2
DEEP_AUGMENT_MAX_PAIRS = 200_000
# What an hour out of a sector over its cap costs in the flow's second solve: a 4-hour
# move about one step of need, so it reorders who goes where but never outweighs a fill.
# (Tried 3,000, 30,000 and 100,000 on generated regions; 3,000 kept the most value.)
CAP_PRICE_PER_HOUR = 3_000
# ``improve``: the most pairs one window of time hands CP-SAT (it proves a window's
# fill and need in about half a second), each session's best few clinicians only (and
# whoever holds it now), and the most time one window may take.
IMPROVE_PAIRS = 2_500
IMPROVE_TOP_K = 12
IMPROVE_WINDOW_S = 0.5
# Windows are cut from sessions ordered by day, then place (cells of about this many
# degrees, some 15 km), then start: what competes for the same clinicians is on the same
# day and near. (Cut by start alone, a window of a 10,000-session region held sessions
# of one hour from every corner of it.)
IMPROVE_CELL_DEG = 0.15


class Why(StrEnum):
    """Why a session was left without an offer."""

    NO_ELIGIBLE = "no_eligible_clinician"
    DRAIN_GUARD = "held_by_drain_guard"
    DECLINED_BY_ALL = "declined_by_all"
    CLINICIANS_TAKEN = "clinicians_taken"


@dataclass(frozen=True, slots=True)
class Unplaced:
    """A session the plan could not offer, and why in plain words."""

    why: Why
    detail: str


@dataclass(frozen=True)
class Problem:
    """All a plan needs: one region's open sessions, bank, commitments and policy."""

    sessions: Sequence[OpenSession]
    windows: Sequence[Window]
    commitments: Sequence[Commitment] = ()
    policy: Policy = field(default_factory=Policy)
    # None: count each sector's offered hours from ``windows`` and no moves so far.
    balances: Mapping[Sector, SectorBalance] | None = None
    # (session, clinician) pairs offered before (declined, expired, refused): never again.
    already_tried: frozenset[tuple[uuid.UUID, uuid.UUID]] = frozenset()
    # (clinician, organisation) pairs with a past booking: continuity.
    worked_before: frozenset[tuple[uuid.UUID, str]] = frozenset()
    # False skips the global flow (only the rule-keeping fill): for comparisons.
    global_flow: bool = True
    # False plans large problems with the flow instead of the LP (``relax``).
    relax: bool = True
    # Problems with at most this many eligible pairs (a 500-session batch has about
    # 3,500) are solved exactly (CP-SAT, tier by tier; docs/matching.md has the times).
    exact_max_pairs: int = 4_000
    exact_time_limit_s: float = 2.0
    # Larger problems up to this many pairs: the heuristic's plan is handed to CP-SAT as
    # a starting point, which may improve it within ``polish_time_limit_s``.
    polish_max_pairs: int = 4_000
    polish_time_limit_s: float = 1.0
    # Larger problems: windows of time re-planned exactly until this long after planning
    # began (so the whole plan takes about this long, or its earlier stages' time when
    # more: at 10,000 sessions the LP stage takes about 6 s, and windows after it found
    # 2 more fills in 5 s; at 2,000 sessions, 10 more).
    improve_time_limit_s: float = 5.0
    # Sessions starting after this get no cross-sector offer in this plan: home first in
    # time too, so a clinician is not lent out before their own sector has posted what
    # it needs then (docs/matching.md, "When it plans"). None: no such limit.
    cross_sector_after: datetime | None = None


@dataclass(frozen=True)
class Plan:
    """Offers to make, sessions left open and why, and the sectors' balances after."""

    proposals: list[Proposal]
    unplaced: dict[uuid.UUID, Unplaced]
    objective: objective.Score
    balances: dict[Sector, SectorBalance]
    timings_s: dict[str, float]
    # The exact stage's solution, when it ran: proven optimal, and stage by stage.
    solved: exact.Solution | None = None


def offered_hours(windows: Sequence[Window]) -> dict[Sector, float]:
    """Hours each sector's clinicians offered in ``windows``."""
    hours: dict[Sector, float] = defaultdict(float)
    for w in windows:
        hours[w.home_sector] += (w.ends_at - w.starts_at).total_seconds() / 3600
    return dict(hours)


class _State:
    """The plan being built: who has what, and each sector's net outflow so far."""

    def __init__(self, problem: Problem) -> None:
        self.holder: dict[int, int] = {}  # session → pair
        self.taken: dict[int, list[int]] = defaultdict(list)  # clinician → pairs
        self.policy = problem.policy
        balances = problem.balances
        if balances is None:
            offered = offered_hours(problem.windows)
            balances = {s: SectorBalance(offered.get(s, 0.0)) for s in Sector}
        self.start_balances = {s: balances.get(s, SectorBalance(0.0)) for s in Sector}
        self.net_out = {s: b.net_out_hours for s, b in self.start_balances.items()}
        self.lent = dict.fromkeys(Sector, 0)  # cross-sector pairs out of each sector

    def caps_kept(self) -> bool:
        """Every sector within its cap, or lending nobody."""
        return all(self.lent[s] == 0 or self.budget_left(s) >= -1e-9 for s in Sector)

    def budget_left(self, sector: Sector) -> float:
        start = self.start_balances[sector]
        return budget(self.policy, sector, start) - (self.net_out[sector] - start.net_out_hours)


def plan(problem: Problem, *, now: datetime | None = None) -> Plan:
    """Match the region's open sessions to its bank under every rule; see module doc."""
    del now  # the inputs are already what is open now; kept for callers' symmetry
    return _Planner(problem).run()


class _Planner:
    """One plan in the making: the problem's pairs as per-pair lists and arrays, the
    ``_State`` being built, and the stages (``run`` calls them in order) with the
    helpers they share. A pair is an index into the per-pair lists."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.started = time.perf_counter()
        self.timings: dict[str, float] = {}
        self.build_pairs()
        self.state = _State(problem)
        # What ``fits`` found for a pair, and the clinician's plan version it found it
        # for: filling goes over every open session's candidates several times, and most
        # of the clinicians it asks about have not changed since (measured: three
        # quarters of a busy region's planning time was asking again).
        self.version: dict[int, int] = defaultdict(int)
        self.fits_seen: dict[int, tuple[int, bool]] = {}
        self.model = exact.Model(
            pairs=self.live,
            session_of=self.s_of,
            clinician_of=self.c_of,
            need=self.pair_need,
            worked=self.worked,
            near=self.near,
            cross=self.cross,
            span=self.span,
            hours_home=lambda i: (self.home[self.c_of[i]], self.sessions[self.s_of[i]].sector),
            busy=lambda c: self.busy[c],
            self_employed=lambda c: self.people[c].self_employed,
            opted_out=lambda c: self.people[c].wtr_opt_out,
            home_pairs=lambda c: self.home_pairs.get(c, ()),
            budget_s={s: math.floor(self.state.budget_left(s) * 3600 + 1e-6) for s in Sector},
            home_first=problem.policy.home_first,
        )
        # The exact stage's plan when it proved it optimal; what a solver last found.
        self.optimum: list[int] | None = None
        self.found: exact.Solution | None = None
        # Whether the LP stage planned (then the flow does not).
        self.relaxed = False
        # Sessions open after the global stage, most needed first (``fill`` sets it).
        self.order: list[int] = []

    def run(self) -> Plan:
        """Every stage in order, each timed; the plan they made."""
        stages = (
            ("exact_s", self.exact),
            ("relax_s", self.relax),
            ("flow_s", self.flow),
            ("repair_s", self.repair),
            ("fill_s", self.fill),
            ("augment_s", self.augment),
            ("improve_s", self.improve),
            ("polish_s", self.polish),
        )
        for key, stage in stages:
            clock = time.perf_counter()
            stage()
            self.timings[key] = time.perf_counter() - clock
        self.keep_better()
        clock = time.perf_counter()
        proposals, unplaced = self.explain()
        self.timings["explain_s"] = time.perf_counter() - clock
        state = self.state
        balances = {
            s: SectorBalance(state.start_balances[s].offered_hours, state.net_out[s])
            for s in Sector
        }
        return Plan(
            proposals=proposals,
            unplaced=unplaced,
            objective=self.worth(list(state.holder.values())),
            balances=balances,
            timings_s=self.timings,
            solved=self.found,
        )

    # The stages, in the order ``run`` calls them.

    def build_pairs(self) -> None:
        """1. Every eligible pair, and what the later stages need of each, in bulk: a
        region has about a million pairs, too many for Python loops."""
        problem = self.problem
        clock = time.perf_counter()
        self.sessions = sessions = list(problem.sessions)
        pairs = find_pairs(sessions, problem.windows, problem.commitments)
        self.timings["eligibility_s"] = time.perf_counter() - clock
        self.clinicians, self.people = pairs.clinicians, pairs.first_window
        self.ps, self.pc = ps, pc = pairs.session, pairs.clinician
        self.session_index = {s.id: i for i, s in enumerate(sessions)}
        self.clinician_index = {c: i for i, c in enumerate(self.clinicians)}
        self.sectors = sectors = list(Sector)
        self.s_sector = np.array([sectors.index(s.sector) for s in sessions], dtype=np.int64)
        self.c_home = np.array([sectors.index(p.home_sector) for p in self.people], dtype=np.int64)
        cross_arr = self.s_sector[ps] != self.c_home[pc] if len(ps) else np.zeros(0, np.bool_)
        need = np.array([objective.need(s) for s in sessions], dtype=np.int64)
        worked_arr = self._worked_before()
        tried_arr = self._tried_before()
        late_arr = np.zeros(len(ps), dtype=np.bool_)
        if problem.cross_sector_after is not None and len(ps):
            cutoff = problem.cross_sector_after.timestamp()
            starts = np.array([s.starts_at.timestamp() for s in sessions])
            late_arr = cross_arr & (starts[ps] > cutoff)
        self.late: list[bool] = late_arr.tolist()
        value_arr = objective.values(need[ps], pairs.km, cross_arr, worked_arr)
        self.cross_arr, self.value_arr = cross_arr, value_arr
        self.s_of: list[int] = ps.tolist()
        self.c_of: list[int] = pc.tolist()
        self.km_arr = pairs.km
        self.km_of: list[float] = pairs.km.tolist()
        self.cross: list[bool] = cross_arr.tolist()
        self.worked: list[bool] = worked_arr.tolist()
        self.tried: list[bool] = tried_arr.tolist()
        self.value: list[int] = value_arr.tolist()
        self.pair_need: list[int] = need[ps].tolist()
        self.near: list[int] = objective.nearnesses(pairs.km, cross_arr).tolist()
        self.home = [p.home_sector for p in self.people]
        self.session_span = [(s.starts_at, s.ends_at) for s in sessions]
        self.live_arr = live_arr = np.flatnonzero(~tried_arr & ~late_arr)
        self.live: list[int] = live_arr.tolist()
        # Live pairs grouped by session (best first) and by clinician, as slices.
        self.by_session = _Groups(ps[live_arr], live_arr, -value_arr[live_arr], len(sessions))
        home_live = live_arr[~cross_arr[live_arr]]
        # Each clinician's home-sector pairs: the sessions home-first may keep them for.
        self.home_pairs = _Groups(pc[home_live], home_live, -value_arr[home_live], len(self.people))
        self.busy: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
        for commitment in problem.commitments:
            if commitment.clinician_id in self.clinician_index:
                self.busy[self.clinician_index[commitment.clinician_id]].append(
                    (commitment.starts_at, commitment.ends_at)
                )

    def _worked_before(self) -> BoolArray:
        """Per pair: whether the clinician has a past booking with the organisation."""
        if not self.problem.worked_before:
            return np.zeros(len(self.ps), dtype=np.bool_)
        by_org: dict[str, list[int]] = defaultdict(list)
        for i, sess in enumerate(self.sessions):
            by_org[sess.organisation].append(i)
        return _member(
            self.ps,
            self.pc,
            {
                (s_i, self.clinician_index[c])
                for c, org in self.problem.worked_before
                # The organisation first: a stretch has a few, the region's history many.
                if org in by_org and c in self.clinician_index
                for s_i in by_org[org]
            },
        )

    def _tried_before(self) -> BoolArray:
        """Per pair: whether it was offered before (never again)."""
        return _member(
            self.ps,
            self.pc,
            {
                (self.session_index[s_id], self.clinician_index[c])
                for s_id, c in self.problem.already_tried
                if s_id in self.session_index and c in self.clinician_index
            },
        )

    def exact(self) -> None:
        """2. The global stage when the problem is small enough: CP-SAT, taken if proven."""
        problem = self.problem
        if problem.global_flow and 0 < len(self.live) <= problem.exact_max_pairs:
            self.found = exact.solve(self.model, time_limit_s=problem.exact_time_limit_s)
            if self.found is not None and self.found.proven:
                self.optimum = self.found.chosen
                for i in self.optimum:
                    self.take(i)

    def relax(self) -> None:
        """3. Large problems: the LP relaxation (``relaxation``: every rule but the 11
        hours' rest and home first) over each session's best ``RELAX_TOP_K`` clinicians,
        whole up to ``RELAX_WHOLE_MAX_PAIRS`` of them, else one working day at a time in
        day order; its nearly whole solution is taken pair by pair, surest first, where
        the clinician is still free, and the next day's LP counts what was taken toward
        the 48 hours and the caps. The later stages put right what it could not see.
        (Measured on the benchmark's weeks, before the improving stage: at 10,000
        sessions 9,534 filled in 6.6 s where the flow's path filled 9,345 in 3.4 s, of
        at most 9,557; the whole week's LP at once took 15 s.)"""
        problem = self.problem
        if not (
            problem.global_flow
            and problem.relax
            and self.optimum is None
            and len(self.live) > problem.exact_max_pairs
        ):
            return
        state, sessions, live = self.state, self.sessions, self.live_arr
        candidates = live[self._best_of_each(RELAX_TOP_K)]
        day = np.array([working_day(s.starts_at).toordinal() for s in sessions], dtype=np.int64)
        candidate_day = day[self.ps[candidates]]
        if len(candidates) <= RELAX_WHOLE_MAX_PAIRS:
            candidate_day[:] = 0  # one "day": the whole horizon
        for today in np.unique(candidate_day).tolist():
            mine = candidates[candidate_day == today]
            taken = [
                Commitment(self.clinicians[self.c_of[i]], *self.span(i))
                for i in state.holder.values()
            ]
            rows = relaxation.build(
                sessions,
                Pairs(
                    self.ps[mine], self.pc[mine], self.km_arr[mine], self.clinicians, self.people
                ),
                [*problem.commitments, *taken],
                {x: state.budget_left(x) for x in Sector},
                every_start=False,
            )
            x, _, _, status = relaxation.solve(rows, self.value_arr[mine] / objective.FILL)
            if status != "OPTIMAL":
                # The flow plans instead, from nothing: ``relaxed`` stays False.
                for i in list(state.holder.values()):
                    self.drop(i)
                return
            for j in np.argsort(-x, kind="stable").tolist():
                if x[j] < RELAX_LEAST:
                    break
                i = int(mine[j])
                if self.s_of[i] not in state.holder and self.fits(i):
                    self.take(i)
        self.relaxed = True

    def _best_of_each(self, k: int) -> BoolArray:
        """Per live pair: whether it is among its session's ``k`` most valuable."""
        live_arr, ps = self.live_arr, self.ps
        live_value = self.value_arr[live_arr]
        rank_order = np.lexsort((-live_value, ps[live_arr]))
        ranked_sessions = ps[live_arr][rank_order]
        first_of = np.searchsorted(ranked_sessions, ranked_sessions, side="left")
        rank = np.empty(len(live_arr), dtype=np.int64)
        rank[rank_order] = np.arange(len(live_arr)) - first_of
        best: BoolArray = rank < k
        return best

    def flow(self) -> None:
        """4. The global stage otherwise (mid-size problems not proven, or the LP not
        solved): the flow; then, if a sector ends over its cap, the flow once more with
        that sector's hours out priced."""
        if not (
            self.problem.global_flow and self.live and self.optimum is None and not self.relaxed
        ):
            return
        sessions, ps, live_arr = self.sessions, self.ps, self.live_arr
        starts = np.array([int(s.starts_at.timestamp()) for s in sessions], dtype=np.int64)
        ends = np.array([int(s.ends_at.timestamp()) for s in sessions], dtype=np.int64)
        blocks = flow.clique_blocks(starts, ends)
        hours_arr = (ends - starts) / 3600
        live_value = self.value_arr[live_arr]

        # The flow sees each session's best FLOW_TOP_K clinicians only: a region can have
        # a million pairs, most of them far down a session's list, and the flow's time
        # grows with them. The later steps still consider every pair.
        in_flow = self._best_of_each(FLOW_TOP_K)

        self._flow_once(live_value, in_flow, blocks)
        state = self.state
        over = [x for x in Sector if state.lent[x] and state.budget_left(x) < -1e-9]
        if over:
            # The flow can't see caps. Price an hour out of each sector over its cap (and
            # credit an hour in), then solve again: the flow then prefers exchanges that
            # keep sectors within their caps (a Lagrangian step; one, for speed).
            price = np.zeros(len(self.sectors), dtype=np.int64)
            for x in over:
                price[self.sectors.index(x)] = CAP_PRICE_PER_HOUR
            moved = self.cross_arr[live_arr]
            shift = np.where(
                moved,
                (price[self.c_home[self.pc[live_arr]]] - price[self.s_sector[ps[live_arr]]])
                * hours_arr[ps[live_arr]],
                0,
            ).astype(np.int64)
            for i in list(state.holder.values()):
                self.drop(i)
            self._flow_once(live_value - shift, in_flow, blocks)

    def _flow_once(self, values: IntArray, in_flow: BoolArray, blocks: IntArray) -> None:
        """One flow over the live pairs in ``in_flow``, valued ``values`` (per live pair);
        of what it gives each clinician, what fits is taken."""
        flow_pairs = self.live_arr[in_flow]
        chosen = flow.assign(
            len(self.sessions), self.ps[flow_pairs], self.pc[flow_pairs], values[in_flow], blocks
        )
        # Per clinician, keep the most valuable of what the flow gave that fits.
        by_person: dict[int, list[int]] = defaultdict(list)
        for i in flow_pairs[chosen].tolist():
            by_person[self.c_of[i]].append(i)
        for mine in by_person.values():
            for i in sorted(mine, key=lambda i: -self.value[i]):
                if self.fits(i):
                    self.take(i)

    def repair(self) -> None:
        """5. Home-first and caps, until nothing changes. Each pass removes a cross-sector
        move, so it ends."""
        state, cross = self.state, self.cross
        changed = True
        while changed:
            changed = False
            for i in [i for i in list(state.holder.values()) if cross[i]]:
                if state.holder.get(self.s_of[i]) != i:
                    continue
                j = self.open_home_session(i)
                if j is None:
                    continue
                self.drop(i)
                if self.fits(j):
                    self.take(j)
                changed = True
            for sector in Sector:
                while state.budget_left(sector) < -1e-9:
                    out = [
                        i
                        for i in state.holder.values()
                        if cross[i] and self.home[self.c_of[i]] is sector
                    ]
                    if not out:
                        break
                    # The longest move frees the most hours for one lost fill.
                    self.drop(
                        max(out, key=lambda i: (self.sessions[self.s_of[i]].hours, -self.value[i]))
                    )
                    changed = True

    def fill(self) -> None:
        """6. Fill what is still open, most needed first."""
        sessions, state = self.sessions, self.state
        self.order = sorted(
            (s for s in self.by_session.keys_with_items() if s not in state.holder),
            key=lambda s: (
                -objective.need(sessions[s]),
                sessions[s].starts_at,
                str(sessions[s].id),
            ),
        )
        # Within a sector, first with its own clinicians; then across sectors, shortest
        # sessions first, since a cap is in hours and short moves fill more sessions.
        for s in self.order:
            for i in self.by_session[s]:
                if not self.cross[i] and self.allowed(i):
                    self.take(i)
                    break
        # Moves into a sector make room under its cap for moves out, so go round again
        # while anything was added.
        added = True
        while added:
            added = False
            for s in sorted(
                self.order, key=lambda s: (-objective.need(sessions[s]), sessions[s].hours)
            ):
                if s in state.holder:
                    continue
                for i in self.by_session[s]:
                    if self.allowed(i):
                        self.take(i)
                        added = True
                        break

    def augment(self) -> None:
        """7. Augmenting paths: a session still open takes a clinician held by one other
        session if that one can pass to someone else, directly or by moving one more
        along. This recovers much of what the flow's time blocks cost (a long session
        beside two short ones) and what the 11-hour rest breaks."""
        # Chains two deep pay on mid-size regions; on the largest they cost more time
        # than the fills they find (measured: 2.3 s for a 10,000-session week).
        depth = AUGMENT_DEPTH if len(self.live) <= DEEP_AUGMENT_MAX_PAIRS else 1
        if self.optimum is None:
            for s in self.order:
                if s not in self.state.holder:
                    self.place(s, frozenset(), depth)

    def improve(self) -> None:
        """8. Large problems: the heuristic's plan re-planned exactly one window of time
        at a time, everything outside the window held (a large neighbourhood search),
        window after window while time is left, then again with the windows shifted by
        half so that what a border cut is seen whole. A window's plan is never worse
        than what it replaces: CP-SAT starts from it."""
        problem = self.problem
        if (
            not problem.global_flow
            or self.optimum is not None
            or len(self.live) <= problem.exact_max_pairs
            or problem.improve_time_limit_s <= 0
        ):
            return
        deadline = self.started + problem.improve_time_limit_s
        # Windows, pass after pass (as cut, then shifted by half), until a pass
        # improves nothing or time runs out.
        windows = self._windows()
        shifted = [a[len(a) // 2 :] + b[: len(b) // 2] for a, b in itertools.pairwise(windows)]
        improved = True
        while improved:
            improved = False
            for window in windows + shifted:
                left = deadline - time.perf_counter()
                if left <= 0.05:
                    return
                improved |= self._replan_window(window, min(left, IMPROVE_WINDOW_S))

    def _windows(self) -> list[list[int]]:
        """The sessions with candidates, by start, cut into windows of about
        ``IMPROVE_PAIRS`` candidate pairs."""

        def where(s: int) -> tuple[object, ...]:
            session = self.sessions[s]
            return (
                working_day(session.starts_at),
                round(session.latitude / IMPROVE_CELL_DEG),
                round(session.longitude / IMPROVE_CELL_DEG),
                session.starts_at,
            )

        with_pairs = sorted(self.by_session.keys_with_items(), key=where)
        windows: list[list[int]] = [[]]
        pairs = 0
        for s in with_pairs:
            count = min(IMPROVE_TOP_K, len(self.by_session[s])) + 1
            if pairs + count > IMPROVE_PAIRS and windows[-1]:
                windows.append([])
                pairs = 0
            windows[-1].append(s)
            pairs += count
        return windows

    def _replan_window(self, window: list[int], time_limit_s: float) -> bool:
        """Re-plan the sessions of ``window`` exactly (filling and need: the lower tiers
        cost most of the solver's time and a window changes them little), the rest of
        the plan held; whether it filled more or more needed sessions."""
        state, span = self.state, self.span
        before = [state.holder[s] for s in window if s in state.holder]
        for i in before:
            self.drop(i)
        inside = set(window)
        candidates = set(before)
        for s in window:
            candidates.update(self.by_session[s][:IMPROVE_TOP_K])
        held_spans = {
            c: [span(j) for j in state.taken[c]] for c in {self.c_of[i] for i in candidates}
        }
        pairs = []
        for i in sorted(candidates):
            c = self.c_of[i]
            if any(overlaps(*span(i), *other) for other in held_spans[c]):
                continue
            # Home first for a home session outside the window: it must be filled now.
            if self.problem.policy.home_first and self.cross[i]:
                start, end = span(i)
                if any(
                    self.s_of[j] not in inside
                    and self.s_of[j] not in state.holder
                    and overlaps(start, end, *span(j))
                    for j in self.home_pairs.get(c, ())
                ):
                    continue
            pairs.append(i)
        # A move held outside the window keeps home first only while the clinician's
        # overlapping home sessions inside it stay filled.
        must_fill: set[int] = set()
        if self.problem.policy.home_first:
            for j in state.holder.values():
                if self.cross[j]:
                    start, end = span(j)
                    must_fill.update(
                        self.s_of[h]
                        for h in self.home_pairs.get(self.c_of[j], ())
                        if self.s_of[h] in inside and overlaps(start, end, *span(h))
                    )
        model = dataclasses.replace(
            self.model,
            pairs=pairs,
            busy=lambda c: [*self.busy[c], *held_spans.get(c, [])],
            budget_s={s: math.floor(state.budget_left(s) * 3600 + 1e-6) for s in Sector},
            lending=frozenset(s for s in Sector if state.lent[s]),
            must_fill=frozenset(must_fill),
            employed=frozenset(c for c, mine in state.taken.items() if mine),
        )
        found = exact.solve(model, time_limit_s=time_limit_s, hint=before, stages=1)
        after = found.chosen if found is not None else before
        better = self.worth(after)[:2] > self.worth(before)[:2]
        for i in after if better else before:
            self.take(i)
        return better

    def polish(self) -> None:
        """9. Mid-size problems: CP-SAT from the heuristic's plan, within its time."""
        problem = self.problem
        if (
            problem.global_flow
            and self.found is None
            and problem.exact_max_pairs < len(self.live) <= problem.polish_max_pairs
        ):
            self.found = exact.solve(
                self.model,
                time_limit_s=problem.polish_time_limit_s,
                hint=list(self.state.holder.values()),
            )

    def keep_better(self) -> None:
        """The solver ran out of time with a plan in hand: keep whichever is worth more."""
        found, holder = self.found, self.state.holder
        if (
            found is not None
            and self.optimum is None
            and self.worth(found.chosen) > self.worth(list(holder.values()))
        ):
            for i in list(holder.values()):
                self.drop(i)
            for i in found.chosen:
                self.take(i)

    def explain(self) -> tuple[list[Proposal], dict[uuid.UUID, Unplaced]]:
        """10. The offers, with their reasons and warnings, and why each session is open."""
        sessions, people, state = self.sessions, self.people, self.state
        s_of, c_of = self.s_of, self.c_of
        context = explain.Context(
            sessions=sessions,
            people=people,
            eligible_counts=np.bincount(self.ps, minlength=len(sessions)).tolist(),
            policy=self.problem.policy,
            start_balances=state.start_balances,
            net_out=state.net_out,
        )
        proposals = []
        for i in sorted(
            state.holder.values(), key=lambda i: (sessions[s_of[i]].starts_at, s_of[i])
        ):
            others = [j for j in state.taken[c_of[i]] if j != i]
            person = people[c_of[i]]
            shifts = self.busy[c_of[i]] + [self.span(j) for j in others]
            warnings = (
                tuple(breaches(self.span(i), shifts, opted_out=person.wtr_opt_out))
                if person.self_employed
                else ()
            )
            proposals.append(
                Proposal(
                    session=sessions[s_of[i]],
                    clinician_id=self.clinicians[c_of[i]],
                    home_sector=self.home[c_of[i]],
                    reasons=explain.reasons(
                        context,
                        s_of[i],
                        c_of[i],
                        km=self.km_of[i],
                        worked_before=self.worked[i],
                    ),
                    distance_km=self.km_of[i],
                    warnings=warnings,
                )
            )

        unplaced: dict[uuid.UUID, Unplaced] = {}
        ps = self.ps
        every_pair = (
            _Groups(ps, np.arange(len(ps)), np.zeros(len(ps), np.int64), len(sessions))
            if len(state.holder) < len(sessions)
            else None
        )
        for s, session in enumerate(sessions):
            if s in state.holder:
                continue
            candidates = every_pair[s] if every_pair else []
            untried = [i for i in candidates if not self.tried[i]]
            # Held back by the drain guard: every untried candidate is from another sector
            # whose cap is spent or who has an open session of their own sector then.
            # Stop at the first that isn't: the session was then simply outranked.
            held = 0
            for i in untried:
                if self.late[i]:  # a move not yet offered this far ahead
                    held += 1
                    continue
                if not self.cross[i] or (
                    session.hours <= state.budget_left(self.home[c_of[i]]) + 1e-9
                    and not self.kept_home(i)
                ):
                    break
                held += 1
            if not candidates:
                why = Why.NO_ELIGIBLE
            elif not untried:
                why = Why.DECLINED_BY_ALL
            elif held == len(untried):
                why = Why.DRAIN_GUARD
            else:
                why = Why.CLINICIANS_TAKEN
            unplaced[session.id] = Unplaced(
                why, explain.unplaced(context, s, why, total=len(candidates), held=held)
            )
        return proposals, unplaced

    # What the stages share.

    def span(self, i: int) -> tuple[datetime, datetime]:
        """Pair ``i``'s session's start and end."""
        return self.session_span[self.s_of[i]]

    def fits(self, i: int) -> bool:
        """Whether clinician of pair ``i`` can also take it: no overlap, WTR kept."""
        c = self.c_of[i]
        version = self.version[c]
        seen = self.fits_seen.get(i)
        if seen is not None and seen[0] == version:
            return seen[1]
        person, span = self.people[c], self.span
        ok = rules.can_add(
            span(i),
            [span(j) for j in self.state.taken[c]],
            self.busy[c],
            strict=not person.self_employed,
            opted_out=person.wtr_opt_out,
        )
        self.fits_seen[i] = (version, ok)
        return ok

    def open_home_session(self, i: int) -> int | None:
        """A home-sector pair of the clinician whose session overlaps and is open."""
        if not self.problem.policy.home_first or not self.cross[i]:
            return None
        start, end = self.span(i)
        for j in self.home_pairs.get(self.c_of[i], ()):
            if self.s_of[j] not in self.state.holder and overlaps(start, end, *self.span(j)):
                return j
        return None

    def take(self, i: int) -> None:
        """Add pair ``i`` to the plan."""
        state, s, c = self.state, self.s_of[i], self.c_of[i]
        state.holder[s] = i
        state.taken[c].append(i)
        self.version[c] += 1
        if self.cross[i]:
            hours = self.sessions[s].hours
            state.net_out[self.home[c]] += hours
            state.net_out[self.sessions[s].sector] -= hours
            state.lent[self.home[c]] += 1

    def drop(self, i: int) -> None:
        """Take pair ``i`` out of the plan."""
        state, s, c = self.state, self.s_of[i], self.c_of[i]
        del state.holder[s]
        state.taken[c].remove(i)
        self.version[c] += 1
        if self.cross[i]:
            hours = self.sessions[s].hours
            state.net_out[self.home[c]] -= hours
            state.net_out[self.sessions[s].sector] += hours
            state.lent[self.home[c]] -= 1

    def allowed(self, i: int) -> bool:
        """Every rule, for adding pair ``i`` to the plan as it stands."""
        if not self.fits(i) or self.open_home_session(i) is not None:
            return False
        return (
            not self.cross[i]
            or self.sessions[self.s_of[i]].hours
            <= self.state.budget_left(self.home[self.c_of[i]]) + 1e-9
        )

    def blockers_of(self, i: int) -> list[int]:
        """Pairs whose removal might let pair ``i`` in: the one clash of its clinician, or
        else, when its sector's cap is what stops it, that sector's longest moves out."""
        state = self.state
        start, end = self.span(i)
        clashes = [
            j
            for j in state.taken[self.c_of[i]]
            if overlaps(start, end, *self.span(j)) or too_little_rest(self.span(i), self.span(j))
        ]
        if clashes:
            return clashes if len(clashes) == 1 else []
        lender = self.home[self.c_of[i]]
        if self.cross[i] and self.sessions[self.s_of[i]].hours > state.budget_left(lender) + 1e-9:
            out = [
                j
                for j in state.holder.values()
                if self.cross[j] and self.home[self.c_of[j]] is lender
            ]
            return sorted(out, key=lambda j: -self.sessions[self.s_of[j]].hours)[:AUGMENT_TRIES]
        return []

    def place(self, s: int, banned: frozenset[int], depth: int) -> bool:
        """Give open session ``s`` a clinician not in ``banned``, moving up to ``depth``
        other sessions along to someone else if need be; on failure nothing changes."""
        tries = self.by_session[s][: AUGMENT_TRIES if depth else AUGMENT_TRIES // 2]
        for i in tries:
            if self.c_of[i] not in banned and self.allowed(i):
                self.take(i)
                # Losing an inflow along the way may have left a sector over its cap.
                if self.state.caps_kept():
                    return True
                self.drop(i)
        if depth == 0:
            return False
        for i in tries:
            if self.c_of[i] in banned:
                continue
            for j in self.blockers_of(i):
                self.drop(j)
                if self.allowed(i):
                    self.take(i)
                    if self.place(self.s_of[j], banned | {self.c_of[i]}, depth - 1):
                        return True
                    self.drop(i)
                self.take(j)
        return False

    def kept_home(self, i: int) -> bool:
        """Whether home first keeps pair ``i``'s clinician for their own sector: a
        home-sector session of theirs overlapping this one is open, or is theirs in this
        plan (they were once counted "taken" then, as if outranked)."""
        if not self.problem.policy.home_first or not self.cross[i]:
            return False
        start, end = self.span(i)
        return any(
            self.state.holder.get(self.s_of[j], j) == j and overlaps(start, end, *self.span(j))
            for j in self.home_pairs.get(self.c_of[i], ())
        )

    def worth(self, chosen: list[int]) -> objective.Score:
        """The objective's score of a plan of pairs ``chosen``."""
        return objective.score(
            [self.pair_need[i] for i in chosen],
            [self.worked[i] for i in chosen],
            [self.near[i] for i in chosen],
            [self.c_of[i] for i in chosen],
        )


class _Groups:
    """Pair indices grouped by a key (session or clinician), each group in a given order."""

    def __init__(self, keys: IntArray, items: IntArray, order: IntArray, n: int) -> None:
        sort = np.lexsort((order, keys))
        self._items = items[sort]
        self._bounds = np.searchsorted(keys[sort], np.arange(n + 1)).tolist()
        self._cache: dict[int, list[int]] = {}

    def get(self, key: int, default: object = None) -> list[int]:
        """The key's items (empty when none)."""
        del default
        if key not in self._cache:
            lo, hi = self._bounds[key], self._bounds[key + 1]
            self._cache[key] = self._items[lo:hi].tolist()
        return self._cache[key]

    __getitem__ = get

    def keys_with_items(self) -> list[int]:
        """Keys that have at least one item."""
        counts = np.diff(np.asarray(self._bounds))
        found: list[int] = np.flatnonzero(counts).tolist()
        return found


def _member(ps: IntArray, pc: IntArray, wanted: set[tuple[int, int]]) -> BoolArray:
    """Which (session, clinician) pairs are in ``wanted``."""
    if not wanted or len(ps) == 0:
        return np.zeros(len(ps), dtype=np.bool_)
    width = int(pc.max()) + 1 if len(pc) else 1
    keys = np.array([s * width + c for s, c in wanted if c < width], dtype=np.int64)
    return np.isin(ps * width + pc, keys)
