"""The planner: a region's open sessions matched to its bank as a whole. No I/O.

1. ``eligibility`` finds every pair the per-pair rules allow.
2. ``flow`` chooses a maximum, best-valued set of them globally (min-cost flow).
3. Repair: per clinician, overlaps and working-time breaches the flow couldn't see are
   dropped (least valuable first); then, until nothing changes, home-first breaches are
   swapped to the home session or dropped, and sectors over their cap lose their least
   valuable outgoing move.
4. Fill: each still-open session, most needed first, goes to its most valuable clinician
   that breaks no rule.

Every step that drops keeps all rules; the fill step only adds what keeps them; so the
plan obeys every hard rule whatever the flow chose.
"""

from __future__ import annotations

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

from services.matching import exact, explain, flow, objective
from services.matching.domain import Commitment, OpenSession, Proposal, Window, overlaps
from services.matching.eligibility import find_pairs
from services.matching.policy import Policy, SectorBalance, budget
from services.matching.working_time import breaches, breaks_any, too_little_rest
from shared.catalogue import Sector

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# How many of each session's best clinicians the flow weighs (see ``plan``).
FLOW_TOP_K = 32
# How many of a session's best candidates the augmenting step tries (half as many at
# the end of a chain), and how many sessions a chain may move along.
AUGMENT_TRIES = 12
AUGMENT_DEPTH = 2
DEEP_AUGMENT_MAX_PAIRS = 200_000
# What an hour out of a sector over its cap costs in the flow's second solve: a 4-hour
# move about one step of need, so it reorders who goes where but never outweighs a fill.
# (Tried 3,000, 30,000 and 100,000 on generated regions; 3,000 kept the most value.)
CAP_PRICE_PER_HOUR = 3_000


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
    # Problems with at most this many eligible pairs (a 500-session batch has about
    # 3,500) are solved exactly (CP-SAT, tier by tier; docs/matching.md has the times).
    exact_max_pairs: int = 4_000
    exact_time_limit_s: float = 2.0
    # Larger problems up to this many pairs: the heuristic's plan is handed to CP-SAT as
    # a starting point, which may improve it within ``polish_time_limit_s``.
    polish_max_pairs: int = 4_000
    polish_time_limit_s: float = 1.0


@dataclass(frozen=True)
class Plan:
    """Offers to make, sessions left open and why, and the sectors' balances after."""

    proposals: list[Proposal]
    unplaced: dict[uuid.UUID, Unplaced]
    objective: objective.Score
    balances: dict[Sector, SectorBalance]
    timings_s: dict[str, float]


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


def plan(problem: Problem, *, now: datetime | None = None) -> Plan:  # noqa: PLR0912, PLR0915
    """Match the region's open sessions to its bank under every rule; see module doc."""
    del now  # the inputs are already what is open now; kept for callers' symmetry
    clock = time.perf_counter()
    timings: dict[str, float] = {}
    sessions = list(problem.sessions)
    pairs = find_pairs(sessions, problem.windows, problem.commitments)
    timings["eligibility_s"] = time.perf_counter() - clock
    clinicians, people = pairs.clinicians, pairs.first_window
    ps, pc = pairs.session, pairs.clinician
    session_index = {s.id: i for i, s in enumerate(sessions)}
    clinician_index = {c: i for i, c in enumerate(clinicians)}
    # Per pair, in bulk: a region has about a million pairs, too many for Python loops.
    sectors = list(Sector)
    s_sector = np.array([sectors.index(s.sector) for s in sessions], dtype=np.int64)
    c_home = np.array([sectors.index(p.home_sector) for p in people], dtype=np.int64)
    cross_arr = s_sector[ps] != c_home[pc] if len(ps) else np.zeros(0, np.bool_)
    need = np.array([objective.need(s) for s in sessions], dtype=np.int64)
    worked_arr = np.zeros(len(ps), dtype=np.bool_)
    if problem.worked_before:
        by_org: dict[str, list[int]] = defaultdict(list)
        for i, sess in enumerate(sessions):
            by_org[sess.organisation].append(i)
        worked_arr = _member(
            ps,
            pc,
            {
                (s_i, clinician_index[c])
                for c, org in problem.worked_before
                if c in clinician_index
                for s_i in by_org.get(org, ())
            },
        )
    tried_arr = _member(
        ps,
        pc,
        {
            (session_index[s_id], clinician_index[c])
            for s_id, c in problem.already_tried
            if s_id in session_index and c in clinician_index
        },
    )
    value_arr = objective.values(need[ps], pairs.km, cross_arr, worked_arr)
    s_of: list[int] = ps.tolist()
    c_of: list[int] = pc.tolist()
    km_of: list[float] = pairs.km.tolist()
    cross: list[bool] = cross_arr.tolist()
    worked: list[bool] = worked_arr.tolist()
    tried: list[bool] = tried_arr.tolist()
    value: list[int] = value_arr.tolist()
    pair_need: list[int] = need[ps].tolist()
    near: list[int] = objective.nearnesses(pairs.km, cross_arr).tolist()
    home = [p.home_sector for p in people]
    live_arr = np.flatnonzero(~tried_arr)
    live: list[int] = live_arr.tolist()
    # Live pairs grouped by session (best first) and by clinician, as slices.
    by_session = _Groups(ps[live_arr], live_arr, -value_arr[live_arr], len(sessions))
    home_live = live_arr[~cross_arr[live_arr]]
    # Each clinician's home-sector pairs: the sessions home-first may keep them for.
    home_pairs = _Groups(pc[home_live], home_live, -value_arr[home_live], len(people))
    busy: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
    for commitment in problem.commitments:
        if commitment.clinician_id in clinician_index:
            busy[clinician_index[commitment.clinician_id]].append(
                (commitment.starts_at, commitment.ends_at)
            )
    state = _State(problem)

    def span(i: int) -> tuple[datetime, datetime]:
        s = sessions[s_of[i]]
        return s.starts_at, s.ends_at

    def wtr_breaks(i: int, others: list[int]) -> bool:
        person = people[c_of[i]]
        shifts = busy[c_of[i]] + [span(j) for j in others]
        return breaks_any(span(i), shifts, opted_out=person.wtr_opt_out)

    # What ``fits`` found for a pair, and the clinician's plan version it found it for:
    # filling goes over every open session's candidates several times, and most of the
    # clinicians it asks about have not changed since (measured: three quarters of a
    # busy region's planning time was asking again).
    version: dict[int, int] = defaultdict(int)
    fits_seen: dict[int, tuple[int, bool]] = {}

    def fits(i: int) -> bool:
        """Whether clinician of pair ``i`` can also take it: no overlap, WTR kept."""
        c = c_of[i]
        seen = fits_seen.get(i)
        if seen is not None and seen[0] == version[c]:
            return seen[1]
        others = state.taken[c]
        start, end = span(i)
        ok = not any(overlaps(start, end, *span(j)) for j in others) and (
            people[c].self_employed or not wtr_breaks(i, others)
        )
        fits_seen[i] = (version[c], ok)
        return ok

    def open_home_session(i: int) -> int | None:
        """A home-sector pair of the clinician whose session overlaps and is open."""
        if not problem.policy.home_first or not cross[i]:
            return None
        start, end = span(i)
        for j in home_pairs.get(c_of[i], ()):
            if s_of[j] not in state.holder and overlaps(start, end, *span(j)):
                return j
        return None

    def take(i: int) -> None:
        state.holder[s_of[i]] = i
        state.taken[c_of[i]].append(i)
        version[c_of[i]] += 1
        if cross[i]:
            hours = sessions[s_of[i]].hours
            state.net_out[home[c_of[i]]] += hours
            state.net_out[sessions[s_of[i]].sector] -= hours
            state.lent[home[c_of[i]]] += 1

    def drop(i: int) -> None:
        del state.holder[s_of[i]]
        state.taken[c_of[i]].remove(i)
        version[c_of[i]] += 1
        if cross[i]:
            hours = sessions[s_of[i]].hours
            state.net_out[home[c_of[i]]] -= hours
            state.net_out[sessions[s_of[i]].sector] += hours
            state.lent[home[c_of[i]]] -= 1

    def allowed(i: int) -> bool:
        """Every rule, for adding pair ``i`` to the plan as it stands."""
        if not fits(i) or open_home_session(i) is not None:
            return False
        return not cross[i] or sessions[s_of[i]].hours <= state.budget_left(home[c_of[i]]) + 1e-9

    # 2. The global stage: exact when small enough, else the flow.
    clock = time.perf_counter()
    optimum = None
    found = None
    model = exact.Model(
        pairs=live,
        session_of=s_of,
        clinician_of=c_of,
        need=pair_need,
        worked=worked,
        near=near,
        cross=cross,
        span=span,
        hours_home=lambda i: (home[c_of[i]], sessions[s_of[i]].sector),
        busy=lambda c: busy[c],
        self_employed=lambda c: people[c].self_employed,
        opted_out=lambda c: people[c].wtr_opt_out,
        home_pairs=lambda c: home_pairs.get(c, ()),
        budget_s={s: math.floor(state.budget_left(s) * 3600 + 1e-6) for s in Sector},
        home_first=problem.policy.home_first,
    )
    if problem.global_flow and 0 < len(live) <= problem.exact_max_pairs:
        found = exact.solve(model, time_limit_s=problem.exact_time_limit_s)
        if found is not None and found.proven:
            optimum = found.chosen
            for i in optimum:
                take(i)
    timings["exact_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    if problem.global_flow and live and optimum is None:
        starts = np.array([int(s.starts_at.timestamp()) for s in sessions], dtype=np.int64)
        ends = np.array([int(s.ends_at.timestamp()) for s in sessions], dtype=np.int64)
        blocks = flow.clique_blocks(starts, ends)
        hours_arr = (ends - starts) / 3600
        live_value = value_arr[live_arr]

        # The flow sees each session's best FLOW_TOP_K clinicians only: a region can have
        # a million pairs, most of them far down a session's list, and the flow's time
        # grows with them. The later steps still consider every pair.
        rank_order = np.lexsort((-live_value, ps[live_arr]))
        ranked_sessions = ps[live_arr][rank_order]
        first_of = np.searchsorted(ranked_sessions, ranked_sessions, side="left")
        rank = np.empty(len(live_arr), dtype=np.int64)
        rank[rank_order] = np.arange(len(live_arr)) - first_of
        in_flow = rank < FLOW_TOP_K
        flow_pairs = live_arr[in_flow]

        def run_flow(costs: IntArray) -> None:
            chosen = flow.assign(
                len(sessions), ps[flow_pairs], pc[flow_pairs], costs[in_flow], blocks
            )
            # 3a. Per clinician, keep the most valuable of what the flow gave that fits.
            by_person: dict[int, list[int]] = defaultdict(list)
            for i in flow_pairs[chosen].tolist():
                by_person[c_of[i]].append(i)
            for mine in by_person.values():
                for i in sorted(mine, key=lambda i: -value[i]):
                    if fits(i):
                        take(i)

        run_flow(live_value)
        over = [x for x in Sector if state.lent[x] and state.budget_left(x) < -1e-9]
        if over:
            # The flow can't see caps. Price an hour out of each sector over its cap (and
            # credit an hour in), then solve again: the flow then prefers exchanges that
            # keep sectors within their caps (a Lagrangian step; one, for speed).
            price = np.zeros(len(sectors), dtype=np.int64)
            for x in over:
                price[sectors.index(x)] = CAP_PRICE_PER_HOUR
            moved = cross_arr[live_arr]
            shift = np.where(
                moved,
                (price[c_home[pc[live_arr]]] - price[s_sector[ps[live_arr]]])
                * hours_arr[ps[live_arr]],
                0,
            ).astype(np.int64)
            for i in list(state.holder.values()):
                drop(i)
            run_flow(live_value - shift)
    timings["flow_s"] = time.perf_counter() - clock

    # 3b. Home-first and caps, until nothing changes. Each pass removes a cross-sector
    # move, so it ends.
    clock = time.perf_counter()
    changed = True
    while changed:
        changed = False
        for i in [i for i in list(state.holder.values()) if cross[i]]:
            if state.holder.get(s_of[i]) != i:
                continue
            j = open_home_session(i)
            if j is None:
                continue
            drop(i)
            if fits(j):
                take(j)
            changed = True
        for sector in Sector:
            while state.budget_left(sector) < -1e-9:
                out = [i for i in state.holder.values() if cross[i] and home[c_of[i]] is sector]
                if not out:
                    break
                # The longest move frees the most hours for one lost fill.
                drop(max(out, key=lambda i: (sessions[s_of[i]].hours, -value[i])))
                changed = True
    timings["repair_s"] = time.perf_counter() - clock

    # 4. Fill what is still open, most needed first.
    clock = time.perf_counter()
    order = sorted(
        (s for s in by_session.keys_with_items() if s not in state.holder),
        key=lambda s: (-objective.need(sessions[s]), sessions[s].starts_at, str(sessions[s].id)),
    )
    # Within a sector, first with its own clinicians; then across sectors, shortest
    # sessions first, since a cap is in hours and short moves fill more sessions.
    for s in order:
        for i in by_session[s]:
            if not cross[i] and allowed(i):
                take(i)
                break
    # Moves into a sector make room under its cap for moves out, so go round again while
    # anything was added.
    added = True
    while added:
        added = False
        for s in sorted(order, key=lambda s: (-objective.need(sessions[s]), sessions[s].hours)):
            if s in state.holder:
                continue
            for i in by_session[s]:
                if allowed(i):
                    take(i)
                    added = True
                    break
    timings["fill_s"] = time.perf_counter() - clock

    def blockers_of(i: int) -> list[int]:
        """Pairs whose removal might let pair ``i`` in: the one clash of its clinician, or
        else, when its sector's cap is what stops it, that sector's longest moves out."""
        start, end = span(i)
        clashes = [
            j
            for j in state.taken[c_of[i]]
            if overlaps(start, end, *span(j)) or too_little_rest(span(i), span(j))
        ]
        if clashes:
            return clashes if len(clashes) == 1 else []
        if cross[i] and sessions[s_of[i]].hours > state.budget_left(home[c_of[i]]) + 1e-9:
            lender = home[c_of[i]]
            out = [j for j in state.holder.values() if cross[j] and home[c_of[j]] is lender]
            return sorted(out, key=lambda j: -sessions[s_of[j]].hours)[:AUGMENT_TRIES]
        return []

    def place(s: int, banned: frozenset[int], depth: int) -> bool:
        """Give open session ``s`` a clinician not in ``banned``, moving up to ``depth``
        other sessions along to someone else if need be; on failure nothing changes."""
        tries = by_session[s][: AUGMENT_TRIES if depth else AUGMENT_TRIES // 2]
        for i in tries:
            if c_of[i] not in banned and allowed(i):
                take(i)
                # Losing an inflow along the way may have left a sector over its cap.
                if state.caps_kept():
                    return True
                drop(i)
        if depth == 0:
            return False
        for i in tries:
            if c_of[i] in banned:
                continue
            for j in blockers_of(i):
                drop(j)
                if allowed(i):
                    take(i)
                    if place(s_of[j], banned | {c_of[i]}, depth - 1):
                        return True
                    drop(i)
                take(j)
        return False

    # 5. Augmenting paths: a session still open takes a clinician held by one other
    # session if that one can pass to someone else, directly or by moving one more
    # along. This recovers much of what the flow's time blocks cost (a long session
    # beside two short ones) and what the 11-hour rest breaks.
    clock = time.perf_counter()
    # Chains two deep pay on mid-size regions; on the largest they cost more time than
    # the fills they find (measured: 2.3 s for a 10,000-session week).
    depth = AUGMENT_DEPTH if len(live) <= DEEP_AUGMENT_MAX_PAIRS else 1
    if optimum is None:
        for s in order:
            if s not in state.holder:
                place(s, frozenset(), depth)
    timings["augment_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    if (
        problem.global_flow
        and found is None
        and problem.exact_max_pairs < len(live) <= problem.polish_max_pairs
    ):
        found = exact.solve(
            model, time_limit_s=problem.polish_time_limit_s, hint=list(state.holder.values())
        )
    timings["polish_s"] = time.perf_counter() - clock

    def worth(chosen: list[int]) -> objective.Score:
        return objective.score(
            [pair_need[i] for i in chosen],
            [worked[i] for i in chosen],
            [near[i] for i in chosen],
            [c_of[i] for i in chosen],
        )

    # The solver ran out of time with a plan in hand: keep whichever is worth more.
    if (
        found is not None
        and optimum is None
        and worth(found.chosen) > worth(list(state.holder.values()))
    ):
        for i in list(state.holder.values()):
            drop(i)
        for i in found.chosen:
            take(i)

    clock = time.perf_counter()
    context = explain.Context(
        sessions=sessions,
        people=people,
        eligible_counts=np.bincount(ps, minlength=len(sessions)).tolist(),
        policy=problem.policy,
        start_balances=state.start_balances,
        net_out=state.net_out,
    )
    proposals = []
    for i in sorted(state.holder.values(), key=lambda i: (sessions[s_of[i]].starts_at, s_of[i])):
        others = [j for j in state.taken[c_of[i]] if j != i]
        person = people[c_of[i]]
        shifts = busy[c_of[i]] + [span(j) for j in others]
        warnings = (
            tuple(breaches(span(i), shifts, opted_out=person.wtr_opt_out))
            if person.self_employed
            else ()
        )
        proposals.append(
            Proposal(
                session=sessions[s_of[i]],
                clinician_id=clinicians[c_of[i]],
                home_sector=home[c_of[i]],
                reasons=explain.reasons(
                    context,
                    s_of[i],
                    c_of[i],
                    km=km_of[i],
                    worked_before=worked[i],
                ),
                distance_km=km_of[i],
                warnings=warnings,
            )
        )

    def kept_home(i: int) -> bool:
        """Whether home first keeps pair ``i``'s clinician for their own sector: a
        home-sector session of theirs overlapping this one is open, or is theirs in this
        plan (they were once counted "taken" then, as if outranked)."""
        if not problem.policy.home_first or not cross[i]:
            return False
        start, end = span(i)
        return any(
            state.holder.get(s_of[j], j) == j and overlaps(start, end, *span(j))
            for j in home_pairs.get(c_of[i], ())
        )

    unplaced: dict[uuid.UUID, Unplaced] = {}
    every_pair = (
        _Groups(ps, np.arange(len(ps)), np.zeros(len(ps), np.int64), len(sessions))
        if len(state.holder) < len(sessions)
        else None
    )
    for s, session in enumerate(sessions):
        if s in state.holder:
            continue
        candidates = every_pair[s] if every_pair else []
        untried = [i for i in candidates if not tried[i]]
        # Held back by the drain guard: every untried candidate is from another sector
        # whose cap is spent or who has an open session of their own sector then.
        # Stop at the first that isn't: the session was then simply outranked.
        held = 0
        for i in untried:
            if not cross[i] or (
                session.hours <= state.budget_left(home[c_of[i]]) + 1e-9 and not kept_home(i)
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
    timings["explain_s"] = time.perf_counter() - clock
    balances = {
        s: SectorBalance(state.start_balances[s].offered_hours, state.net_out[s]) for s in Sector
    }
    return Plan(
        proposals=proposals,
        unplaced=unplaced,
        objective=worth(list(state.holder.values())),
        balances=balances,
        timings_s=timings,
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
