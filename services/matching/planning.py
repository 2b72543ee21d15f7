"""The matching use cases: re-plan a region, confirm an accepted offer."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
import structlog

from services.matching import engine, ledger, repository, working_time
from services.matching.domain import OpenSession, Proposal, offer_expiry, overlaps, utc
from services.matching.explain import words
from services.matching.policy import Policy, budget, last_round_by
from services.matching.ports import MatchingRepository
from shared.catalogue import Sector
from shared.db.types import Conn
from shared.events import (
    Envelope,
    OfferAccepted,
    OfferRefused,
    SessionFilled,
    SessionOffered,
    SessionUnmatched,
)
from shared.messaging.emitter import Emitter

if TYPE_CHECKING:
    from services.matching.plan_worker import PlanWorker

log = structlog.get_logger(__name__)


# A session lasts at most 13 hours, so every session that overlaps one touching a
# stretch starts within 13 hours of it.
SESSION_REACH = timedelta(hours=13)
# The engine's improving search on a stretch planned for an event (whole-region plans
# take the engine's default): events of a busy region arrive every fraction of a second.
STRETCH_IMPROVE_S = 0.5
# Working-time rules look 7 days either way (48 hours in any 7 days).
WTR_REACH = timedelta(days=7)


def _widen(span: repository.Span, by: timedelta) -> repository.Span:
    return (span[0] - by, span[1] + by) if span else None


def in_view(span: repository.Span) -> repository.Span:
    """The stretch a plan of ``span`` may offer sessions in: every session touching it
    (``SESSION_REACH`` either side). ``read_problem`` reads one reach further, so that
    each of those sessions has every rule's inputs in view: the overlapping sessions
    home first weighs, and the commitments of the 7 days either side."""
    return _widen(span, SESSION_REACH)


def _after(now: datetime, hours: float | None) -> datetime | None:
    return None if hours is None else now + timedelta(hours=hours)


def held_after(policy: Policy, now: datetime, *, whole_region: bool = False) -> datetime | None:
    """Sessions starting after this are held back from plans made at ``now``: not
    offered, not given a reason (None: none held). An event's stretch offers what starts
    within the policy's ``hold_beyond_h`` of now (a session posted late is offered at
    once); a whole-region plan only what the last daily round reached, so that sessions
    coming within the hold are planned together at the next round, not one time slot
    at a time by the sweeps."""
    if policy.hold_beyond_h is None:
        return None
    since = last_round_by(now) if whole_region else now
    return since + timedelta(hours=policy.hold_beyond_h)


async def read_problem(
    conn: Conn,
    *,
    region: str,
    now: datetime,
    span: repository.Span = None,
    repo: MatchingRepository = repository,
) -> engine.Problem:
    """What the engine needs to plan ``region`` (near ``span`` if given).

    With a span, sessions are read a reach beyond ``in_view(span)``: a session at the
    edge of the stretch planned is weighed together with the home-sector sessions that
    overlap it (a pharmacist was once offered a GP session while their own pharmacy's
    overlapping session, just outside the stretch, stayed open), and commitments are
    read over 7 days beyond every session read (once read over less, an offer took a
    clinician to 51 hours in 7 days). ``apply_plan`` offers only what is in view.

    The region's policy says when sessions are planned (docs/matching.md, "When it
    plans"): with ``hold_beyond_h`` set, sessions starting after ``held_after`` are
    left out (so no plan offers them or rewrites their reason, on whichever path it
    runs), and only what the rest reach is read; with ``cross_sector_within_h`` set,
    sessions starting after now plus those hours get no cross-sector offer.
    """
    context = _widen(in_view(span), SESSION_REACH)
    policy = await repo.policy(conn, region)
    horizon = held_after(policy, now, whole_region=span is None)
    if horizon is not None:
        # Read only as far as a session starting by the horizon reaches.
        lo, hi = context or (now, horizon + SESSION_REACH)
        context = (max(lo, now), min(hi, horizon + SESSION_REACH))
        if context[0] >= context[1]:
            return engine.Problem(sessions=[], windows=[], policy=policy)
    sessions = await repo.sessions_needing_offer(conn, region, now, context)
    if horizon is not None:
        sessions = [s for s in sessions if s.starts_at <= horizon]
    return engine.Problem(
        sessions=sessions,
        windows=await repo.windows(conn, region, now, context),
        commitments=await repo.commitments(
            conn, region, now, _widen(context, WTR_REACH + SESSION_REACH)
        ),
        policy=policy,
        balances=await repo.balances(conn, region, now, policy.window_days),
        already_tried=await repo.tried_pairs(conn, region, context),
        worked_before=await repo.worked_before(conn, region, now),
        cross_sector_after=_after(now, policy.cross_sector_within_h),
        # A stretch is planned on the consumers' heels: a short search. Whole-region
        # plans (the sweeps, the daily round) take the engine's default.
        improve_time_limit_s=(
            STRETCH_IMPROVE_S if span is not None else engine.Problem.improve_time_limit_s
        ),
    )


async def replan(
    conn: Conn,
    *,
    region: str,
    emitter: Emitter,
    cause: Envelope[Any] | None = None,
    now: datetime | None = None,
    span: repository.Span = None,
    repo: MatchingRepository = repository,
) -> int:
    """Offer every open session of ``region`` that can be offered; return how many.

    With a ``span``, only sessions near it are planned (and only the windows and
    commitments that could matter read): an event touches one stretch of time, and
    planning the whole region on every event grows with its size. The debounced
    region-wide plan and the periodic sweep plan everything.

    All in the caller's transaction; the running service uses ``replan_detached``.
    """
    now = now or datetime.now(UTC)
    await repo.lock_region(conn, region)
    problem = await read_problem(conn, region=region, now=now, span=span, repo=repo)
    if not problem.sessions:
        return 0
    result = engine.plan(problem)
    return await apply_plan(
        conn,
        region=region,
        problem=problem,
        result=result,
        emitter=emitter,
        cause=cause,
        span=span,
        repo=repo,
    )


async def replan_detached(
    pool: asyncpg.Pool,
    *,
    region: str,
    emitter: Emitter,
    span: repository.Span = None,
    worker: PlanWorker | None = None,
) -> int:
    """``replan`` off the consumers' path: read, plan and write in three steps.

    Planning a region with thousands of open sessions takes seconds of CPU. Done inside
    one transaction, in the event loop, it held rows the consumers wait on and stopped
    them handling events at all. Here the problem is read in a short snapshot, planned
    in a worker thread, and written in a short transaction that checks every offer
    against the state by then: whatever changed meanwhile is left out, and its stretch
    of time planned again. Given a ``worker`` (the running service's process of its
    own), all three steps run there, so that planning takes nothing from this loop,
    not even Python's lock (see plan_worker.py).
    """
    if worker is not None:
        return await worker.replan(region=region, emitter=emitter, span=span)
    now = datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        problem = await read_problem(conn, region=region, now=now, span=span)
    if not problem.sessions:
        return 0
    result = await asyncio.get_running_loop().run_in_executor(None, engine.plan, problem)
    async with pool.acquire() as conn, conn.transaction():
        await repository.lock_region(conn, region)
        made = await apply_plan(
            conn,
            region=region,
            problem=problem,
            result=result,
            emitter=emitter,
            cause=None,
            span=span,
            news=False,
        )
    # The reasons, and their news, a chunk a transaction: a region's plan can leave
    # thousands of new sessions unplaced at once, and written in one transaction none
    # reached the relay until the last was written, nor vacancies until the relay had
    # published them all (up to 9 s old, measured at 100 posts/s). Chunk by chunk, the
    # writing, publishing and handling overlap. Each chunk stands alone: a reason is
    # stored with its event, and ``set_unmatched`` re-checks each session then.
    unplaced = list(_unplaced_in_view(problem, result, span).items())
    for start in range(0, len(unplaced), NEWS_CHUNK):
        async with pool.acquire() as conn, conn.transaction():
            await repository.lock_region(conn, region)
            await record_unplaced(
                conn,
                region=region,
                unplaced=dict(unplaced[start : start + NEWS_CHUNK]),
                emitter=emitter,
                cause=None,
            )
    return made


# Sessions' reasons written per transaction by ``replan_detached`` (the relay publishes
# up to 500 events a round).
NEWS_CHUNK = 500


def _unplaced_in_view(
    problem: engine.Problem, result: engine.Plan, span: repository.Span
) -> dict[uuid.UUID, engine.Unplaced]:
    """The plan's unplaced sessions that ``apply_plan`` speaks for: those in view."""
    view = in_view(span)
    if view is None:
        return dict(result.unplaced)
    shown = {s.id for s in problem.sessions if s.starts_at < view[1] and view[0] < s.ends_at}
    return {sid: u for sid, u in result.unplaced.items() if sid in shown}


async def record_unplaced(
    conn: Conn,
    *,
    region: str,
    unplaced: dict[uuid.UUID, engine.Unplaced],
    emitter: Emitter,
    cause: Envelope[Any] | None,
    repo: MatchingRepository = repository,
) -> None:
    """Store why each session has no offer, and publish the reasons that are new."""
    news = await repo.set_unmatched(conn, {sid: u.why.value for sid, u in unplaced.items()})
    await emitter.emit_many(
        conn,
        [
            (
                SessionUnmatched(
                    session_id=session_id,
                    organisation=news[session_id],
                    why=u.why.value,
                    detail=u.detail,
                ),
                region,
            )
            for session_id, u in unplaced.items()
            if session_id in news
        ],
        cause=cause,
    )


async def apply_plan(
    conn: Conn,
    *,
    region: str,
    problem: engine.Problem,
    result: engine.Plan,
    emitter: Emitter,
    cause: Envelope[Any] | None,
    span: repository.Span = None,
    repo: MatchingRepository = repository,
    news: bool = True,
) -> int:
    """Write a plan's offers and reasons; return how many offers were made.

    ``news=False`` leaves the reasons to the caller (``record_unplaced``).

    Only sessions ``in_view`` of the ``span`` planned are offered or given a reason:
    the plan weighed the ones beyond only so that those in view keep every rule. Those
    beyond that the plan would have offered are planned again soon, with their own
    surroundings in view.

    Each offer is checked again first (the session still open, unchanged and unoffered;
    the clinician still free and the window still there): a plan made from a snapshot
    may be overtaken. What was overtaken is planned again soon.
    """
    now = datetime.now(UTC)
    view = in_view(span)

    def seen(session: OpenSession) -> bool:
        return view is None or (session.starts_at < view[1] and view[0] < session.ends_at)

    made = 0
    overtaken: list[tuple[datetime, datetime]] = []
    beyond = {s.id for s in problem.sessions if not seen(s)}
    for proposal in result.proposals:
        if proposal.session.id in beyond:
            overtaken.append((proposal.session.starts_at, proposal.session.ends_at))
            continue
        if not await repo.still_offerable(conn, proposal, now):
            overtaken.append((proposal.session.starts_at, proposal.session.ends_at))
            continue
        await _offer(
            conn, proposal, region=region, emitter=emitter, cause=cause, now=now, repo=repo
        )
        made += 1
    if news:
        await record_unplaced(
            conn,
            region=region,
            unplaced=_unplaced_in_view(problem, result, span),
            emitter=emitter,
            cause=cause,
            repo=repo,
        )
    if overtaken:
        span = (min(s for s, _ in overtaken), max(e for _, e in overtaken))
        await repo.request_plan(
            conn, region, span, due_at=datetime.now(UTC) + timedelta(seconds=0.2)
        )
    log.info(
        "planned",
        region=region,
        sessions=len(problem.sessions),
        offers=made,
        overtaken=len(overtaken),
        **{k: round(v * 1000, 1) for k, v in result.timings_s.items()},
    )
    return made


@dataclass
class Pacer:
    """Keeps each region's planning to a share of a core.

    A region's plans are given at most ``duty`` of the time: after a plan that took
    ``d`` seconds, the next starts no sooner than ``d * (1 / duty - 1)`` later. Under a
    flood of posts a plan is due again before the last has finished, and back-to-back
    plans of a region with thousands of open sessions took the core that intake and the
    consumers needed (measured at 100 posts/s: the planner used half the machine while
    finding nothing to offer). Events meanwhile only widen the request, so nothing is
    lost, only gathered into the next plan.
    """

    duty: float = 0.3
    not_before: dict[str, float] = field(default_factory=dict)

    def ready(self, region: str) -> bool:
        """Whether ``region`` may be planned now."""
        return time.monotonic() >= self.not_before.get(region, 0.0)

    def record(self, region: str, took_s: float) -> None:
        """Note that a plan of ``region`` took ``took_s`` seconds."""
        rest = took_s * (1 / self.duty - 1) if self.duty < 1 else 0.0
        self.not_before[region] = time.monotonic() + rest


async def run_request(
    conn: Conn, *, region: str, emitter: Emitter, repo: MatchingRepository = repository
) -> int:
    """Carry out the region's requested re-plan, if any; return how many offers."""
    found, span = await repo.take_plan_request(conn, region)
    if not found:
        return 0
    return await replan(conn, region=region, emitter=emitter, span=span, repo=repo)


async def run_request_detached(
    pool: asyncpg.Pool, *, region: str, emitter: Emitter, worker: PlanWorker | None = None
) -> int:
    """``run_request`` off the consumers' path (see ``replan_detached``).

    The request is taken first; should planning fail it is asked for again, and should
    the process die meanwhile the periodic sweep plans the whole region anyway.
    """
    async with pool.acquire() as conn, conn.transaction():
        found, span = await repository.take_plan_request(conn, region)
    if not found:
        return 0
    try:
        return await replan_detached(pool, region=region, emitter=emitter, span=span, worker=worker)
    except Exception:
        async with pool.acquire() as conn, conn.transaction():
            await repository.request_plan(conn, region, span, due_at=datetime.now(UTC))
        raise


async def _offer(
    conn: Conn,
    proposal: Proposal,
    *,
    region: str,
    emitter: Emitter,
    cause: Envelope[Any] | None,
    now: datetime,
    repo: MatchingRepository = repository,
) -> None:
    offer_id = uuid.uuid4()
    expires_at = offer_expiry(now, proposal.session.starts_at)
    await repo.insert_offer(
        conn, offer_id=offer_id, region=region, proposal=proposal, expires_at=expires_at
    )
    session = proposal.session
    await emitter.emit(
        conn,
        SessionOffered(
            offer_id=offer_id,
            session_id=session.id,
            clinician_id=proposal.clinician_id,
            organisation=session.organisation,
            sector=session.sector,
            role=session.role,
            site_name=session.site_name,
            latitude=session.latitude,
            longitude=session.longitude,
            rate_pence_per_hour=session.rate_pence_per_hour,
            urgency=session.urgency,
            starts_at=session.starts_at,
            ends_at=session.ends_at,
            expires_at=expires_at,
            reasons=list(proposal.reasons),
            warnings=list(proposal.warnings),
        ),
        region=region,
        cause=cause,
    )


async def confirm(
    conn: Conn,
    *,
    envelope: Envelope[OfferAccepted],
    emitter: Emitter,
    repo: MatchingRepository = repository,
) -> bool:
    """Book an accepted offer if it still stands; True when the session is filled.

    An acceptance that can't be honoured (expired, session gone, clinician already
    booked at that time) is refused with ``offer.refused`` and the region re-planned.
    A lost race is refused by the database's constraints, whatever the timing.

    Booking re-checks every rule against the state now (``_rule_broken``), serialised
    with the region's plans and other acceptances by the region's lock: the plan that
    made the offer kept them against the state then, and a late acceptance (a broker
    outage widens the window) may find the clinician booked since or the sector's cap
    room given to another move.
    """
    data: OfferAccepted = envelope.data
    # Before any row lock, as planning takes it before writing the same rows.
    await repo.lock_region(conn, envelope.region)
    offer = await repo.offer_for_update(conn, data.offer_id)
    if offer is None or offer["clinician_id"] != data.clinician_id:
        log.warning("acceptance of an unknown offer ignored", offer_id=str(data.offer_id))
        return False
    if offer["status"] == "withdrawn":
        # The session changed or went, or the time was taken back, before the acceptance
        # was handled here: the clinician is told, never left believing they are booked.
        refusal = ("withdrawn", "The session changed or was withdrawn before you accepted.")
    elif offer["status"] != "offered":
        # Already answered: booked already, refused already (expired, lost), declined,
        # or given up by the clinician before this acceptance was handled.
        log.info("acceptance ignored", offer_id=str(data.offer_id), status=offer["status"])
        return False
    # Judge expiry by when the clinician accepted, not by how late the event arrived.
    elif offer["expires_at"] <= envelope.occurred_at:
        refusal = ("expired", "The offer had expired when you accepted it.")
    elif offer["session_status"] != "open":
        refusal = ("lost", "The session was filled or withdrawn before you accepted.")
    elif (broken := await _rule_broken(conn, offer, region=envelope.region, repo=repo)) is not None:
        refusal = broken
    else:
        try:
            async with conn.transaction():
                await repo.book(conn, offer)
        except (asyncpg.ExclusionViolationError, asyncpg.UniqueViolationError):
            refusal = ("lost", "You are already booked at an overlapping time.")
        else:
            await _fill(conn, offer, envelope=envelope, emitter=emitter, repo=repo)
            return True
    await _refuse(conn, offer, refusal, envelope=envelope, emitter=emitter, repo=repo)
    return False


async def _rule_broken(
    conn: Conn, offer: asyncpg.Record, *, region: str, repo: MatchingRepository = repository
) -> tuple[str, str] | None:
    """Why booking ``offer`` now would break a rule (the offer's status, and the reason in
    plain words); None if it breaks none.

    Overlap with the clinician's other bookings, the working-time rules (for the
    self-employed only a warning, logged: they may take it) and, for a cross-sector
    booking, the home sector's cap, all against the state now. An acceptance handled
    after its offer expired must also find what was offered since still standing: the
    session not offered to someone else, and the clinician's newer offers kept (else a
    session had two holders, and a clinician a booking overlapping their live offer).
    """
    clinician = offer["clinician_id"]
    # In UTC, as at the engine's edge: rest is real time across the clock changes.
    new = (utc(offer["starts_at"]), utc(offer["ends_at"]))
    now = datetime.now(UTC)
    booked = await repo.bookings_near(conn, clinician, new, reach=working_time.WEEK)
    others = [(utc(s), utc(e)) for s, e in booked]
    if offer["expires_at"] <= now:
        since = await repo.live_offers_against(conn, offer["id"], now, reach=working_time.WEEK)
        mine = [(utc(s), utc(e)) for session, s, e in since if session != offer["session_id"]]
        if len(mine) < len(since) or any(overlaps(*new, *other) for other in mine):
            return (
                "lost",
                "Your offer had expired when your acceptance reached us, and the session or"
                " your time has been offered again since.",
            )
        others = others + mine
    if any(overlaps(*new, *other) for other in others):
        return ("lost", "You are already booked at an overlapping time.")
    opted_out, self_employed = await repo.working_time_terms(conn, clinician, new)
    breaches = working_time.breaches(new, others, opted_out=opted_out)
    if breaches and not self_employed:
        reason = "With your other bookings it would break the working-time rules. "
        return ("refused", reason + " ".join(breaches))
    if breaches:
        log.info("self-employed booking past working-time limits", offer_id=str(offer["id"]))
    home, sector = Sector(offer["clinician_home_sector"]), Sector(offer["sector"])
    if home is sector:
        return None
    policy = await repo.policy(conn, region)
    balance = (await repo.balances(conn, region, now, policy.window_days))[home]
    # A live cross-sector offer counts in the balance already, as if accepted; one that
    # expired meanwhile gave its room back (perhaps to another move), so needs it again.
    hours = 0.0 if offer["expires_at"] > now else (new[1] - new[0]).total_seconds() / 3600
    if budget(policy, home, balance) - hours < -1e-9:
        return (
            "refused",
            f"Your home sector, {words(home)}, has lent all the hours its cap allows to other"
            " sectors for now, so you can't be booked outside it.",
        )
    return None


async def _refuse(
    conn: Conn,
    offer: asyncpg.Record,
    refusal: tuple[str, str],
    *,
    envelope: Envelope[Any],
    emitter: Emitter,
    repo: MatchingRepository = repository,
) -> None:
    status, reason = refusal
    await repo.set_offer_status(conn, offer["id"], status)
    await emitter.emit(
        conn,
        OfferRefused(
            offer_id=offer["id"],
            session_id=offer["session_id"],
            clinician_id=offer["clinician_id"],
            reason=reason,
        ),
        region=envelope.region,
        cause=envelope,
    )
    # Someone else may take it: plan its stretch of time again soon.
    await repo.request_plan(
        conn,
        envelope.region,
        (offer["starts_at"], offer["ends_at"]),
        due_at=datetime.now(UTC) + timedelta(seconds=0.2),
    )


async def _fill(
    conn: Conn,
    offer: asyncpg.Record,
    *,
    envelope: Envelope[Any],
    emitter: Emitter,
    repo: MatchingRepository = repository,
) -> None:
    await repo.set_offer_status(conn, offer["id"], "accepted")
    await emitter.emit(
        conn,
        SessionFilled(
            session_id=offer["session_id"],
            offer_id=offer["id"],
            clinician_id=offer["clinician_id"],
            organisation=offer["organisation"],
            sector=Sector(offer["sector"]),
            clinician_home_sector=Sector(offer["clinician_home_sector"]),
            starts_at=offer["starts_at"],
            ends_at=offer["ends_at"],
        ),
        region=envelope.region,
        cause=envelope,
    )
    if offer["sector"] != offer["clinician_home_sector"]:
        await ledger.session_moved(conn, offer, envelope=envelope, emitter=emitter, repo=repo)
