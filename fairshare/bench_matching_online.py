"""The online replay of `fairshare bench matching`: the week posted one session at a time.

As the service plans it (docs/matching.md, "When it plans"):
- sessions are posted at times drawn per session (``posting_times``: 2 hours to 28 days
  before the start, ``late_share`` of them within 72 hours); a post plans the new
  session with the sessions still open near it in time (13 hours either side, the
  reach of the rest and overlap rules), the windows there, and every booking as a
  commitment, against the sectors' balances as they stand;
- with the policy's ``hold_beyond_h`` set, only sessions starting within the hold are
  offered, and the daily round (18:00 UK time) plans together every open session that
  has come within it; ``cross_sector_within_h`` limits moves across sectors likewise;
- an offer is answered at once: accepted, or declined or left to expire (a fixed share
  of pairs, drawn per pair from the seed, so every method meets the same refusals); a
  refusal marks the pair tried and plans that stretch again, as `offer.declined` does;
- accepted offers are bookings: never taken back.

Not replayed: the service's periodic sweeps. With the default policy they re-plan
open sessions every few minutes; here a session left open is planned again only when
a post near it, or a refusal, plans its stretch, so the default policy's figures may
understate the service a little.

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
from datetime import UTC, datetime, timedelta

from fairshare.bench_matching_region import Region
from services.matching.domain import Commitment, OpenSession
from services.matching.engine import Plan, Problem, Why, plan
from services.matching.planning import STRETCH_IMPROVE_S
from services.matching.policy import SectorBalance, next_round_after
from services.matching.working_time import WEEK
from shared.catalogue import Sector

REACH = timedelta(hours=13)
REFUSED = 0.2  # share of offers declined (0.15) or left to expire (0.05)
LATE_SHARE = 0.2  # sessions posted within 72 hours of their start
POST, ROUND = 0, 1  # kinds of event, in the order the service meets them


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
    last_round: Plan | None = None
    plan_ms: list[float] = field(default_factory=list)
    offers: int = 0
    refused: int = 0
    rounds: int = 0


def posting_times(
    sessions: list[OpenSession], seed: int, late_share: float = LATE_SHARE
) -> list[tuple[datetime, OpenSession]]:
    """When each session is posted: ``late_share`` within 72 hours of its start (late
    gaps), the rest 3 to 28 days ahead; in posting order."""
    rng = random.Random(seed + 2)
    posts = []
    for session in sessions:
        hours = rng.uniform(2, 72) if rng.random() < late_share else rng.uniform(72, 28 * 24)
        posts.append((session.starts_at - timedelta(hours=hours), session))
    posts.sort(key=lambda p: (p[0], str(p[1].id)))
    return posts


def replay(
    region: Region,
    problem: Problem,
    *,
    seed: int,
    late_share: float = LATE_SHARE,
    progress: Callable[[int], None] | None = None,
) -> Replay:
    """Post the week one session at a time, as the service plans (see module doc)."""
    answer = accepts(seed)
    posts = posting_times(list(problem.sessions), seed, late_share)
    state = Replay(tried=set(problem.already_tried), balances=dict(region.balances))
    posted: list[OpenSession] = []
    hold = _hours(problem.policy.hold_beyond_h)
    # What happens, in time order: a post (planned at once if it starts within the
    # hold), a daily round (every open session within the hold, together; the
    # service's sweeps offer nothing the last round did not reach).
    events: list[tuple[datetime, int, OpenSession | None]] = [
        (at, POST, session) for at, session in posts
    ]
    last_start = max(s.starts_at for s in problem.sessions)
    if posts and problem.policy.hold_beyond_h is not None:
        at = next_round_after(posts[0][0])
        while at < last_start:
            events.append((at, ROUND, None))
            at = next_round_after(at)
    events.sort(key=lambda e: (e[0], e[1]))
    done = 0
    k = 0
    while k < len(events):
        at, kind, _ = events[k]
        if kind == ROUND:
            _plan(problem, state, posted, answer, at, None)
            state.rounds += 1
            k += 1
            continue
        # Every event of one kind at one instant: one plan over their stretch.
        batch = []
        while k < len(events) and events[k][:2] == (at, kind):
            batch.append(events[k][2])
            k += 1
        sessions = [b for b in batch if b is not None]
        if kind == POST:
            posted.extend(sessions)
            done += len(sessions)
            if progress is not None:
                progress(done)
            sessions = [b for b in sessions if b.starts_at - at <= hold]
        sessions = [b for b in sessions if b.id not in state.booked]
        if sessions:
            stretch = (
                min(b.starts_at for b in sessions) - REACH,
                max(b.ends_at for b in sessions) + REACH,
            )
            _plan(problem, state, posted, answer, at, stretch)
    return state


def _plan(
    problem: Problem,
    state: Replay,
    posted: list[OpenSession],
    answer: Callable[[uuid.UUID, uuid.UUID], bool],
    now: datetime,
    stretch: tuple[datetime, datetime] | None,
) -> None:
    """Plan the stretch at ``now`` (None: the daily round, every open session); a
    refusal plans it again, as `offer.declined` does."""
    while True:
        lo, hi = stretch if stretch is not None else (now, datetime.max.replace(tzinfo=UTC))
        near = [
            s
            for s in posted
            if s.id not in state.booked
            and s.starts_at > now
            and s.starts_at < hi
            and s.ends_at > lo
        ]
        hold = _hours(problem.policy.hold_beyond_h)
        near = [s for s in near if s.starts_at - now <= hold]
        if not near:
            return
        reach = (min(s.starts_at for s in near) - WEEK, max(s.ends_at for s in near) + WEEK)
        step = replace(
            problem,
            sessions=near,
            windows=[w for w in problem.windows if w.starts_at < hi and w.ends_at > lo],
            commitments=[
                c
                for c in [*problem.commitments, *state.booked.values()]
                if c.starts_at < reach[1] and c.ends_at > reach[0]
            ],
            balances=state.balances,
            already_tried=frozenset(state.tried),
            cross_sector_after=now + _hours(problem.policy.cross_sector_within_h),
            # As the service: a short search for an event's stretch, the engine's
            # default for a whole-region plan.
            improve_time_limit_s=(
                STRETCH_IMPROVE_S if stretch is not None else Problem.improve_time_limit_s
            ),
        )
        clock = time.perf_counter()
        result = plan(step)
        state.plan_ms.append((time.perf_counter() - clock) * 1000)
        if stretch is None:
            state.last_round = result
        if not _answer(state, result, answer):
            return


def _hours(limit: float | None) -> timedelta:
    """A policy's limit in hours as a span (None: no limit, in practice)."""
    return timedelta(days=3650) if limit is None else timedelta(hours=limit)


def _answer(state: Replay, result: Plan, answer: Callable[[uuid.UUID, uuid.UUID], bool]) -> bool:
    """Each offer answered; whether any was refused."""
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
    return refused


def held_by_guard(result: Plan | None) -> int:
    """Sessions a plan left open because the drain guard held their clinicians back."""
    if result is None:
        return 0
    return sum(u.why is Why.DRAIN_GUARD for u in result.unplaced.values())
