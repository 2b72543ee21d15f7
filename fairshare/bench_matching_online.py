"""The online replay of `fairshare bench matching`: the week posted one session at a time.

As the service plans it (docs/matching.md, "When it plans"):
- sessions are posted in a random order; each post plans the new session with the
  sessions still open near it in time (13 hours either side, the reach of the rest
  and overlap rules), the windows there, and every booking and live offer as a
  commitment, against the sectors' balances as they stand;
- an offer is answered at once: accepted, or declined or left to expire (a fixed share
  of pairs, drawn per pair from the seed, so every method meets the same refusals); a
  refusal marks the pair tried and plans that stretch again, as `offer.declined` does;
- every ``sweep_every`` posts, and once at the end, the sweep plans every open session
  of the region together;
- accepted offers are bookings: never taken back.

``accepts`` is what each clinician would answer; the baselines and the bound of the
online figures are over the pairs that would be accepted, the only pairs any method
could end the week with.
"""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta

from fairshare.bench_matching_region import Region
from services.matching.domain import Commitment, OpenSession
from services.matching.engine import Plan, Problem, Why, plan
from services.matching.policy import SectorBalance
from shared.catalogue import Sector

REACH = timedelta(hours=13)
REFUSED = 0.2  # share of offers declined (0.15) or left to expire (0.05)


def accepts(seed: int) -> Callable[[uuid.UUID, uuid.UUID], bool]:
    """Whether a clinician would accept an offer of a session: fixed per pair and seed."""

    def answer(session: uuid.UUID, clinician: uuid.UUID) -> bool:
        digest = hashlib.blake2b(f"{seed}:{session}:{clinician}".encode(), digest_size=8)
        return int.from_bytes(digest.digest()) / 2**64 >= REFUSED

    return answer


@dataclass
class Replay:
    """The week as the replay left it."""

    booked: dict[uuid.UUID, Commitment] = field(default_factory=dict)  # session → booking
    tried: set[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=set)
    balances: dict[Sector, SectorBalance] = field(default_factory=dict)
    last_sweep: Plan | None = None
    plan_ms: list[float] = field(default_factory=list)
    offers: int = 0
    refused: int = 0


def replay(
    region: Region,
    problem: Problem,
    *,
    seed: int,
    sweep_every: int,
    progress: Callable[[int], None] | None = None,
) -> Replay:
    """Post the week one session at a time (see module doc)."""
    rng = random.Random(seed + 2)
    answer = accepts(seed)
    order = list(problem.sessions)
    rng.shuffle(order)
    state = Replay(tried=set(problem.already_tried), balances=dict(region.balances))
    posted: list[OpenSession] = []
    for k, session in enumerate(order, start=1):
        posted.append(session)
        lo, hi = session.starts_at - REACH, session.ends_at + REACH
        _plan_until_settled(problem, state, posted, answer, (lo, hi))
        if k % sweep_every == 0:
            _plan_until_settled(problem, state, posted, answer, None)
        if progress is not None:
            progress(k)
    _plan_until_settled(problem, state, posted, answer, None)
    return state


def _plan_until_settled(
    problem: Problem,
    state: Replay,
    posted: list[OpenSession],
    answer: Callable[[uuid.UUID, uuid.UUID], bool],
    stretch: tuple[object, object] | None,
) -> None:
    """Plan the stretch (None: the whole region); refusals plan it again."""
    while True:
        if stretch is None:
            near = [s for s in posted if s.id not in state.booked]
            windows = list(problem.windows)
            commitments = [*problem.commitments, *state.booked.values()]
        else:
            lo, hi = stretch
            near = [
                s
                for s in posted
                if s.id not in state.booked and s.starts_at < hi and s.ends_at > lo  # type: ignore[operator]
            ]
            windows = [w for w in problem.windows if w.starts_at < hi and w.ends_at > lo]  # type: ignore[operator]
            commitments = [
                c
                for c in [*problem.commitments, *state.booked.values()]
                if c.starts_at < hi + timedelta(days=7) and c.ends_at > lo - timedelta(days=7)  # type: ignore[operator]
            ]
        if not near:
            return
        step = replace(
            problem,
            sessions=near,
            windows=windows,
            commitments=commitments,
            balances=state.balances,
            already_tried=frozenset(state.tried),
        )
        clock = time.perf_counter()
        result = plan(step)
        state.plan_ms.append((time.perf_counter() - clock) * 1000)
        if stretch is None:
            state.last_sweep = result
        refused = False
        for proposal in result.proposals:
            state.offers += 1
            session = proposal.session
            if not answer(session.id, proposal.clinician_id):
                state.tried.add((session.id, proposal.clinician_id))
                state.refused += 1
                refused = True
                continue
            state.booked[session.id] = Commitment(
                proposal.clinician_id, session.starts_at, session.ends_at
            )
            if proposal.home_sector is not session.sector:
                out, into = state.balances[proposal.home_sector], state.balances[session.sector]
                state.balances[proposal.home_sector] = SectorBalance(
                    out.offered_hours, out.net_out_hours + session.hours
                )
                state.balances[session.sector] = SectorBalance(
                    into.offered_hours, into.net_out_hours - session.hours
                )
        if not refused:
            return


def held_by_guard(result: Plan | None) -> int:
    """Sessions a plan left open because the drain guard held their clinicians back."""
    if result is None:
        return 0
    return sum(u.why is Why.DRAIN_GUARD for u in result.unplaced.values())
