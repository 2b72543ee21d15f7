"""``fairshare check``: do the four services agree, once every event has been handled?

Each service keeps its own schema of one PostgreSQL database, so one read-only,
repeatable-read transaction sees all four at the same instant. ``read_snapshot`` takes
that picture; ``problems`` (pure) lists, in plain words, everything in it that must
never be, and ``unsettled`` (pure) lists the work still under way, which would make a
difference between services legitimate for a moment:

- an outbox row not yet published;
- an event a service published (and still keeps) that a service consuming its type
  has not handled: its id is not in that consumer's inbox. After a wait, this is an
  event lost or dead-lettered;
- a callback to an organisation still pending, and a re-plan matching still owes.

Callers wait until nothing is unsettled (``wait_until_settled``), then ask for the
problems. What is compared:

- sessions: every session vacancies holds exists in matching, and the statuses agree
  (vacancies ``filled`` ⇔ matching's booking of the same offer and clinician;
  ``cancelled`` ⇔ ``cancelled``; ``unfilled`` ⇔ ``unfilled``; ``open``/``offered`` ⇔
  ``open``); matching's own bookings, sessions and accepted offers agree;
- bookings: the bank's booked offers are exactly matching's bookings; every offer the
  bank shows was made by matching; no acceptance is left unanswered;
- no clinician booked twice at overlapping times, in matching, the bank or vacancies;
- no booking of a cancelled session, nor of an offer whose booking the clinician gave
  up (bank ``cancelled_by_me``, vacancies ``cancelled_offers``, matching ``cancelled``);
- nothing twice: one ``session.posted`` per session, one fill and one refusal per
  offer, one acceptance and one cancellation per offer; callbacks no more often than
  the events behind them allow; no callback given up;
- the monitor: each stage's sessions (posted, offered) are exactly the services' own,
  filled ones exactly the sessions matching books now (a booking given up or a session
  cancelled is no longer counted filled); the dashboard's offered and filled figures
  are the counts of those sessions per region and sector; per region and sector, its
  figures of sessions posted, offered, filled now, cancelled (and cancelled late) and
  unfilled are what vacancies and matching hold (``service_counts``), once the data is
  young enough for the outboxes to hold its whole history (the monitor's figures are
  built only from events, and a rebuild replays only what is kept); the drain ledger
  (moves and which are reversed), standing alerts and policies equal matching's.

What is not compared: the monitor's late cancellations by clinicians (the bank keeps
them per clinician, not per session's sector), and its "latest activity" list, which
is trimmed as it grows.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg

# Which event types each service handles (its inbox records them); the types it
# passes over never reach its inbox. tests/unit/test_consistency.py checks this
# against the services' own handler tables.
CONSUMES: dict[str, frozenset[str]] = {
    "vacancies": frozenset(
        {"session.unmatched", "session.offered", "session.filled", "booking.cancelled"}
        | {"timesheet.submitted"}
    ),
    "bank": frozenset(
        {"session.offered", "session.filled", "offer.refused", "session.amended"}
        | {"session.cancelled", "timesheet.approved", "timesheet.queried"}
    ),
    "matching": frozenset(
        {"clinician.transferred", "availability.withdrawn", "offer.declined"}
        | {"session.posted", "session.amended", "session.cancelled", "session.unfilled"}
        | {"availability.offered", "offer.accepted", "booking.cancelled"}
    ),
    "monitor": frozenset(
        {"session.posted", "session.offered", "session.filled", "move.recorded"}
        | {"sector.drain_alert", "sector.drain_cleared", "policy.changed", "move.reversed"}
        | {"session.amended", "session.cancelled", "session.unfilled", "booking.cancelled"}
        | {"session.unmatched"}
    ),
}
SCHEMAS = ("vacancies", "bank", "matching", "monitor")
# The outbox events whose history some checks count (see ``Said``).
COUNTED = (
    "session.posted",
    "session.amended",
    "session.filled",
    "offer.refused",
    "offer.accepted",
    "booking.cancelled",
)
# Published outbox rows are pruned after a day (shared/db/outbox.py); an hour's margin.
HISTORY_KEPT = timedelta(hours=23)
SHOWN = 20  # problems shown per kind before "and N more"


@dataclass(frozen=True, slots=True)
class Organisation:
    """An organisation as vacancies holds it."""

    ods: str
    sector: str
    region: str
    callback_url: str | None


@dataclass(frozen=True, slots=True)
class Session:
    """A session as vacancies holds it."""

    id: uuid.UUID
    organisation: str
    site: str
    external_id: str
    status: str
    clinician_id: uuid.UUID | None
    offer_id: uuid.UUID | None
    starts_at: datetime
    ends_at: datetime
    # Cancelled by the organisation within 48 hours of the start.
    cancelled_late: bool = False


@dataclass(frozen=True, slots=True)
class Callback:
    """A callback vacancies scheduled, and what its body says of the session."""

    id: int
    organisation: str
    session_id: uuid.UUID | None
    event_type: str
    status: str
    attempts: int
    said_status: str | None
    said_clinician: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class MatchingSession:
    """A session as matching holds it."""

    id: uuid.UUID
    region: str
    sector: str
    status: str


@dataclass(frozen=True, slots=True)
class Offer:
    """An offer, as matching or the bank holds it."""

    id: uuid.UUID
    session_id: uuid.UUID
    clinician_id: uuid.UUID
    status: str
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True, slots=True)
class Booking:
    """A booking in matching."""

    session_id: uuid.UUID
    offer_id: uuid.UUID
    clinician_id: uuid.UUID
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True, slots=True)
class Move:
    """A cross-sector move, in matching's ledger or the monitor's copy."""

    id: uuid.UUID
    region: str
    kind: str
    from_sector: str
    to_sector: str
    hours: float
    reversed: bool = False


@dataclass(frozen=True, slots=True)
class Counts:
    """One line of the monitor's dashboard, or what it should say: sessions posted,
    offered (ever), filled now, cancelled by the organisation (late: within 48 hours of
    the start) and started unfilled."""

    region: str
    sector: str
    posted: int
    offered: int
    filled: int
    cancelled: int = 0
    unfilled: int = 0
    late_cancelled: int = 0


@dataclass(frozen=True, slots=True)
class Policy:
    """A region's drain-guard policy: explicit caps only."""

    region: str
    home_first: bool
    alert_share: float
    caps: tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True)
class Said:
    """An event a service published (kept in its outbox), with the ids it names."""

    producer: str
    event_id: uuid.UUID
    type: str
    session_id: uuid.UUID | None
    offer_id: uuid.UUID | None
    clinician_id: uuid.UUID | None


@dataclass
class Snapshot:
    """The four schemas as one transaction saw them."""

    taken_at: datetime
    organisations: list[Organisation] = field(default_factory=list)
    sessions: list[Session] = field(default_factory=list)
    cancelled_offers: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    callbacks: list[Callback] = field(default_factory=list)
    matching_sessions: list[MatchingSession] = field(default_factory=list)
    matching_offers: list[Offer] = field(default_factory=list)
    bookings: list[Booking] = field(default_factory=list)
    moves: list[Move] = field(default_factory=list)
    matching_alerts: set[tuple[str, str]] = field(default_factory=set)
    matching_policies: list[Policy] = field(default_factory=list)
    bank_offers: list[Offer] = field(default_factory=list)
    counts: list[Counts] = field(default_factory=list)
    stages: dict[str, set[uuid.UUID]] = field(default_factory=dict)
    monitor_moves: list[Move] = field(default_factory=list)
    # (region, sector) of each alert the monitor shows as standing.
    monitor_alerts: set[tuple[str, str]] = field(default_factory=set)
    monitor_policies: list[Policy] = field(default_factory=list)
    said: list[Said] = field(default_factory=list)
    # Whether the outboxes still hold every event ever published (pruned after a day).
    history_complete: bool = True
    unpublished: dict[str, int] = field(default_factory=dict)
    # (consumer, event type) → events kept in the producer's outbox, not in its inbox.
    unhandled: dict[tuple[str, str], int] = field(default_factory=dict)
    pending_callbacks: int = 0
    plan_requests: int = 0


def short(value: uuid.UUID | None) -> str:
    """The first eight hex digits of an id: enough to find it, short enough to read."""
    return "none" if value is None else value.hex[:8]


# ---------------------------------------------------------------------------------
# Reading


def _uuid(value: Any) -> uuid.UUID | None:
    if value is None:
        return None
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


async def read_snapshot(conn: asyncpg.Connection) -> Snapshot:
    """Read what the checks need from all four schemas, in one consistent snapshot."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        snap = Snapshot(taken_at=await conn.fetchval("SELECT now()"))
        await _read_vacancies(conn, snap)
        await _read_matching(conn, snap)
        await _read_bank(conn, snap)
        await _read_monitor(conn, snap)
        await _read_events(conn, snap)
    return snap


async def _read_vacancies(conn: asyncpg.Connection, snap: Snapshot) -> None:
    rows = await conn.fetch(
        "SELECT ods_code, sector, region, callback_url FROM vacancies.organisations"
    )
    snap.organisations = [Organisation(r[0], r[1], r[2], r[3]) for r in rows]
    rows = await conn.fetch(
        "SELECT id, organisation, site, external_id, status, clinician_id, offer_id, starts_at,"
        " ends_at, coalesce(cancelled_late, false) FROM vacancies.sessions"
    )
    snap.sessions = [Session(*r) for r in rows]
    rows = await conn.fetch("SELECT offer_id, session_id FROM vacancies.cancelled_offers")
    snap.cancelled_offers = {r[0]: r[1] for r in rows}
    rows = await conn.fetch(
        "SELECT id, organisation, session_id, event_type, status, attempts,"
        " payload::jsonb -> 'data' ->> 'status', payload::jsonb -> 'data' ->> 'clinician_id'"
        " FROM vacancies.callbacks"
    )
    snap.callbacks = [Callback(r[0], r[1], r[2], r[3], r[4], r[5], r[6], _uuid(r[7])) for r in rows]
    snap.pending_callbacks = sum(c.status == "pending" for c in snap.callbacks)


async def _read_matching(conn: asyncpg.Connection, snap: Snapshot) -> None:
    rows = await conn.fetch("SELECT id, region, sector, status FROM matching.sessions")
    snap.matching_sessions = [MatchingSession(*r) for r in rows]
    rows = await conn.fetch(
        "SELECT id, session_id, clinician_id, status, starts_at, ends_at FROM matching.offers"
    )
    snap.matching_offers = [Offer(*r) for r in rows]
    rows = await conn.fetch(
        "SELECT session_id, offer_id, clinician_id, starts_at, ends_at FROM matching.bookings"
    )
    snap.bookings = [Booking(*r) for r in rows]
    rows = await conn.fetch(
        "SELECT id, region, kind, from_sector, to_sector, hours, reversed_at IS NOT NULL"
        " FROM matching.moves"
    )
    snap.moves = [Move(*r) for r in rows]
    rows = await conn.fetch("SELECT region, sector FROM matching.drain_alerts")
    snap.matching_alerts = {(r[0], r[1]) for r in rows}
    rows = await conn.fetch(
        "SELECT p.region, p.home_first, p.alert_share,"
        " coalesce(array_agg(c.sector ORDER BY c.sector) FILTER (WHERE c.sector IS NOT NULL),"
        " '{}'), coalesce(array_agg(c.cap_pct ORDER BY c.sector)"
        " FILTER (WHERE c.sector IS NOT NULL), '{}')"
        " FROM matching.policies p LEFT JOIN matching.sector_caps c ON c.region = p.region"
        " GROUP BY p.region, p.home_first, p.alert_share"
    )
    snap.matching_policies = [
        Policy(r[0], r[1], r[2], tuple(zip(r[3], r[4], strict=True))) for r in rows
    ]
    snap.plan_requests = await conn.fetchval("SELECT count(*) FROM matching.plan_requests")


async def _read_bank(conn: asyncpg.Connection, snap: Snapshot) -> None:
    rows = await conn.fetch(
        "SELECT id, session_id, clinician_id, status, starts_at, ends_at FROM bank.offers"
    )
    snap.bank_offers = [Offer(*r) for r in rows]


async def _read_monitor(conn: asyncpg.Connection, snap: Snapshot) -> None:
    rows = await conn.fetch(
        "SELECT region, sector, posted, offered, filled, cancelled, unfilled, late_cancelled"
        " FROM monitor.sector_counts"
    )
    snap.counts = [Counts(*r) for r in rows]
    stages: dict[str, set[uuid.UUID]] = {"posted": set(), "offered": set(), "filled": set()}
    for r in await conn.fetch("SELECT session_id, stage FROM monitor.session_stages"):
        stages.setdefault(r[1], set()).add(r[0])
    snap.stages = stages
    rows = await conn.fetch(
        "SELECT move_id, region, kind, from_sector, to_sector, hours, reversed_at IS NOT NULL"
        " FROM monitor.drain_moves"
    )
    snap.monitor_moves = [Move(*r) for r in rows]
    # A sector's alert stands unless cleared after it was (last) raised.
    rows = await conn.fetch(
        "SELECT region, sector FROM monitor.drain_alerts"
        " WHERE cleared_at IS NULL OR cleared_at < raised_at"
    )
    snap.monitor_alerts = {(r[0], r[1]) for r in rows}
    rows = await conn.fetch(
        "SELECT region, home_first, alert_share, cap_pct::jsonb FROM monitor.drain_policies"
    )
    snap.monitor_policies = [
        Policy(r[0], r[1], r[2], tuple(sorted(_caps(r[3]).items()))) for r in rows
    ]


def _caps(raw: Any) -> dict[str, float]:
    import json  # noqa: PLC0415 - only the monitor's jsonb needs it

    value = json.loads(raw) if isinstance(raw, str) else raw
    return {str(k): float(v) for k, v in dict(value).items()}


async def _read_events(conn: asyncpg.Connection, snap: Snapshot) -> None:
    for schema in SCHEMAS:
        snap.unpublished[schema] = await conn.fetchval(
            f"SELECT count(*) FROM {schema}.outbox WHERE published_at IS NULL"
        )
        rows = await conn.fetch(
            "SELECT event_id, event_type, payload::jsonb -> 'data' ->> 'session_id',"
            " payload::jsonb -> 'data' ->> 'offer_id',"
            f" payload::jsonb -> 'data' ->> 'clinician_id' FROM {schema}.outbox"
            " WHERE event_type = ANY($1::text[])",
            list(COUNTED),
        )
        snap.said += [Said(schema, r[0], r[1], _uuid(r[2]), _uuid(r[3]), _uuid(r[4])) for r in rows]
        for consumer, types in CONSUMES.items():
            if consumer == schema:
                continue
            rows = await conn.fetch(
                f"SELECT o.event_type, count(*) FROM {schema}.outbox o"
                " WHERE o.event_type = ANY($1::text[]) AND NOT EXISTS"
                f" (SELECT 1 FROM {consumer}.inbox i WHERE i.event_id = o.event_id)"
                " GROUP BY o.event_type",
                sorted(types),
            )
            for r in rows:
                snap.unhandled[(consumer, r[0])] = r[1]
    # Pruning removes published rows a day old: only younger data has its whole history.
    oldest = await conn.fetchval(
        "SELECT least((SELECT min(posted_at) FROM vacancies.sessions),"
        " (SELECT min(created_at) FROM matching.offers),"
        " (SELECT min(created_at) FROM bank.offers))"
    )
    snap.history_complete = oldest is None or snap.taken_at - oldest < HISTORY_KEPT


# ---------------------------------------------------------------------------------
# Judging (pure)


def unsettled(snap: Snapshot, *, background: bool = True) -> list[str]:
    """Work still under way in ``snap``: events unpublished or unhandled, and (with
    ``background``) callbacks pending and re-plans owed. Empty when all is quiet."""
    out = [
        f"{schema}: {n} event(s) not yet published"
        for schema, n in sorted(snap.unpublished.items())
        if n
    ]
    out += [
        f"{consumer}: {n} {kind} event(s) published but not handled"
        for (consumer, kind), n in sorted(snap.unhandled.items())
        if n
    ]
    if background and snap.pending_callbacks:
        out.append(f"vacancies: {snap.pending_callbacks} callback(s) still pending")
    if background and snap.plan_requests:
        out.append(f"matching: {snap.plan_requests} region re-plan(s) still owed")
    return out


def problems(snap: Snapshot) -> list[str]:
    """Everything in ``snap`` that must never be, in plain words; empty when consistent.

    Meaningful once ``unsettled(snap)`` is empty: before that, an event in flight
    legitimately leaves one service behind another.
    """
    checks = (
        _sessions_agree,
        _matching_agrees_with_itself,
        _bank_agrees_with_matching,
        _no_double_booking,
        _no_booking_of_cancelled,
        _nothing_twice,
        _callbacks_make_sense,
        _monitor_stages,
        _monitor_counts,
        _monitor_figures,
        _monitor_drain,
    )
    out: list[str] = []
    for check in checks:
        found = list(check(snap))
        out += found[:SHOWN]
        if len(found) > SHOWN:
            out.append(f"... and {len(found) - SHOWN} more like the above")
    return out


def _name(s: Session) -> str:
    return f"session {short(s.id)} ({s.organisation}/{s.external_id})"


_EXPECTED_IN_MATCHING = {
    "open": "open",
    "offered": "open",
    "filled": "filled",
    "cancelled": "cancelled",
    "unfilled": "unfilled",
}


def _sessions_agree(snap: Snapshot) -> Iterable[str]:
    matching = {m.id: m for m in snap.matching_sessions}
    booked = {b.session_id: b for b in snap.bookings}
    offered = {o.session_id for o in snap.matching_offers}
    ours = {s.id for s in snap.sessions}
    for s in snap.sessions:
        m = matching.get(s.id)
        if m is None:
            yield f"{_name(s)} is {s.status} in vacancies but matching has never heard of it"
            continue
        if s.status in ("offered", "filled") and s.id not in offered:
            yield f"{_name(s)} is {s.status} in vacancies but matching never offered it"
        want = _EXPECTED_IN_MATCHING.get(s.status)
        if want is not None and m.status != want:
            yield f"{_name(s)} is {s.status} in vacancies but {m.status} in matching"
        b = booked.get(s.id)
        if s.status == "filled":
            if b is None:
                yield (
                    f"{_name(s)} is filled in vacancies (clinician {short(s.clinician_id)},"
                    f" offer {short(s.offer_id)}) but matching holds no booking for it"
                )
            elif (b.clinician_id, b.offer_id) != (s.clinician_id, s.offer_id):
                yield (
                    f"{_name(s)} is filled in vacancies by clinician {short(s.clinician_id)}"
                    f" (offer {short(s.offer_id)}) but matching booked clinician"
                    f" {short(b.clinician_id)} (offer {short(b.offer_id)})"
                )
        elif b is not None:
            yield (
                f"{_name(s)} is {s.status} in vacancies but matching books clinician"
                f" {short(b.clinician_id)} for it (offer {short(b.offer_id)})"
            )
        elif s.clinician_id is not None and s.status != "cancelled":
            # A cancelled session keeps the name of whoever was booked, as history.
            yield f"{_name(s)} is {s.status} yet names clinician {short(s.clinician_id)}"
    for m in snap.matching_sessions:
        if m.id not in ours:
            yield f"matching holds session {short(m.id)} ({m.status}) that vacancies never had"


def _matching_agrees_with_itself(snap: Snapshot) -> Iterable[str]:
    sessions = {m.id: m for m in snap.matching_sessions}
    offers = {o.id: o for o in snap.matching_offers}
    booked_offers = {b.offer_id for b in snap.bookings}
    for b in snap.bookings:
        m = sessions.get(b.session_id)
        if m is None or m.status != "filled":
            status = "unknown" if m is None else m.status
            yield f"matching books session {short(b.session_id)} but the session is {status}"
        o = offers.get(b.offer_id)
        if o is None:
            yield f"matching's booking of session {short(b.session_id)} has no offer"
        elif (o.session_id, o.clinician_id, o.status) != (b.session_id, b.clinician_id, "accepted"):
            yield (
                f"matching's booking of session {short(b.session_id)} by clinician"
                f" {short(b.clinician_id)} comes from offer {short(o.id)}, which is {o.status}"
                f" (for session {short(o.session_id)}, clinician {short(o.clinician_id)})"
            )
    filled = {b.session_id for b in snap.bookings}
    for m in snap.matching_sessions:
        if m.status == "filled" and m.id not in filled:
            yield f"matching's session {short(m.id)} is filled but nobody is booked for it"
    for o in snap.matching_offers:
        if o.status == "accepted" and o.id not in booked_offers:
            yield f"matching's offer {short(o.id)} is accepted but books nobody"


def _bank_agrees_with_matching(snap: Snapshot) -> Iterable[str]:
    bank_booked = {
        (o.id, o.session_id, o.clinician_id) for o in snap.bank_offers if o.status == "booked"
    }
    matching_booked = {(b.offer_id, b.session_id, b.clinician_id) for b in snap.bookings}
    for offer_id, session_id, clinician in sorted(bank_booked - matching_booked, key=str):
        yield (
            f"the bank shows clinician {short(clinician)} booked for session {short(session_id)}"
            f" (offer {short(offer_id)}) but matching holds no such booking"
        )
    for offer_id, session_id, clinician in sorted(matching_booked - bank_booked, key=str):
        yield (
            f"matching books clinician {short(clinician)} for session {short(session_id)}"
            f" (offer {short(offer_id)}) but the bank does not show it as booked"
        )
    made = {o.id: o for o in snap.matching_offers}
    for o in snap.bank_offers:
        m = made.get(o.id)
        if m is None:
            yield f"the bank shows offer {short(o.id)} ({o.status}) that matching never made"
        elif (m.session_id, m.clinician_id) != (o.session_id, o.clinician_id):
            yield f"offer {short(o.id)} is for another session or clinician in the bank"
        if o.status == "accepted":
            yield (
                f"clinician {short(o.clinician_id)} accepted offer {short(o.id)} (session"
                f" {short(o.session_id)}) but matching neither booked nor refused it"
            )


def _overlaps(
    what: str, intervals: Iterable[tuple[uuid.UUID, datetime, datetime, uuid.UUID]]
) -> Iterable[str]:
    """(clinician, start, end, session) → a line for each clinician booked twice at once."""
    by_clinician: dict[uuid.UUID, list[tuple[datetime, datetime, uuid.UUID]]] = defaultdict(list)
    for clinician, start, end, session in intervals:
        by_clinician[clinician].append((start, end, session))
    for clinician, spans in by_clinician.items():
        spans.sort()
        latest_end, latest = spans[0][1], spans[0][2]
        for start, end, session in spans[1:]:
            if start < latest_end:
                yield (
                    f"clinician {short(clinician)} is double-booked in {what}: sessions"
                    f" {short(latest)} and {short(session)} overlap"
                )
            if end > latest_end:
                latest_end, latest = end, session


def _no_double_booking(snap: Snapshot) -> Iterable[str]:
    yield from _overlaps(
        "matching", ((b.clinician_id, b.starts_at, b.ends_at, b.session_id) for b in snap.bookings)
    )
    yield from _overlaps(
        "the bank",
        (
            (o.clinician_id, o.starts_at, o.ends_at, o.session_id)
            for o in snap.bank_offers
            if o.status == "booked"
        ),
    )
    yield from _overlaps(
        "vacancies",
        (
            (s.clinician_id, s.starts_at, s.ends_at, s.id)
            for s in snap.sessions
            if s.status == "filled" and s.clinician_id is not None
        ),
    )


def _no_booking_of_cancelled(snap: Snapshot) -> Iterable[str]:
    cancelled = {s.id for s in snap.sessions if s.status == "cancelled"}
    cancelled |= {m.id for m in snap.matching_sessions if m.status == "cancelled"}
    for b in snap.bookings:
        if b.session_id in cancelled:
            yield (
                f"matching books clinician {short(b.clinician_id)} for cancelled session"
                f" {short(b.session_id)}"
            )
    for o in snap.bank_offers:
        if o.status == "booked" and o.session_id in cancelled:
            yield (
                f"the bank books clinician {short(o.clinician_id)} for cancelled session"
                f" {short(o.session_id)}"
            )
    given_up = set(snap.cancelled_offers)
    given_up |= {o.id for o in snap.bank_offers if o.status == "cancelled_by_me"}
    given_up |= {o.id for o in snap.matching_offers if o.status == "cancelled"}
    for b in snap.bookings:
        if b.offer_id in given_up:
            yield (
                f"matching books clinician {short(b.clinician_id)} for session"
                f" {short(b.session_id)} through offer {short(b.offer_id)}, whose booking"
                " they cancelled"
            )
    for o in snap.bank_offers:
        if o.status == "booked" and o.id in given_up:
            yield (
                f"the bank shows offer {short(o.id)} booked though the clinician cancelled"
                " its booking"
            )
    for s in snap.sessions:
        if s.status == "filled" and s.offer_id in given_up:
            yield (
                f"{_name(s)} is filled through offer {short(s.offer_id)}, whose booking the"
                " clinician cancelled"
            )


def _tally(snap: Snapshot, producer: str, kind: str, key: str) -> Counter[uuid.UUID | None]:
    return Counter(getattr(e, key) for e in snap.said if e.producer == producer and e.type == kind)


def _nothing_twice(snap: Snapshot) -> Iterable[str]:
    once = (
        ("vacancies", "session.posted", "session_id", "session", "posted"),
        ("matching", "session.filled", "offer_id", "offer", "filled"),
        ("matching", "offer.refused", "offer_id", "offer", "refused"),
        ("bank", "offer.accepted", "offer_id", "offer", "accepted"),
        ("bank", "booking.cancelled", "offer_id", "offer", "cancelled by its clinician"),
    )
    for producer, kind, key, what, verb in once:
        for ident, n in sorted(_tally(snap, producer, kind, key).items(), key=str):
            if n > 1:
                yield (
                    f"{producer} said {kind} {n} times for {what} {short(ident)}:"
                    f" {verb} more than once"
                )
    if snap.history_complete:
        posted = _tally(snap, "vacancies", "session.posted", "session_id")
        for s in snap.sessions:
            if posted[s.id] == 0:
                yield f"{_name(s)} was stored but vacancies never said session.posted"


def _callbacks_make_sense(snap: Snapshot) -> Iterable[str]:
    by_session: dict[uuid.UUID, list[Callback]] = defaultdict(list)
    for c in snap.callbacks:
        if c.status == "failed":
            yield (
                f"callback {c.id} ({c.event_type}) to {c.organisation} was given up after"
                f" {c.attempts} attempts"
            )
        if c.session_id is not None:
            by_session[c.session_id].append(c)
    fills: Counter[tuple[uuid.UUID | None, uuid.UUID | None]] = Counter(
        (e.session_id, e.clinician_id)
        for e in snap.said
        if e.producer == "matching" and e.type == "session.filled"
    )
    gave_up = _tally(snap, "bank", "booking.cancelled", "session_id")
    amended = _tally(snap, "vacancies", "session.amended", "session_id")
    sessions = {s.id: s for s in snap.sessions}
    for session_id, calls in by_session.items():
        kinds = Counter(c.event_type for c in calls)
        name = _name(sessions[session_id]) if session_id in sessions else short(session_id)
        if kinds["session.unfilled"] > 1:
            yield f"{name} was called back as unfilled {kinds['session.unfilled']} times"
        if snap.history_complete:
            yield from _callbacks_per_event(name, session_id, calls, fills, gave_up, amended)
        yield from _last_callback_says(name, sessions.get(session_id), calls)


def _callbacks_per_event(
    name: str,
    session_id: uuid.UUID,
    calls: list[Callback],
    fills: Counter[tuple[uuid.UUID | None, uuid.UUID | None]],
    gave_up: Counter[uuid.UUID | None],
    amended: Counter[uuid.UUID | None],
) -> Iterable[str]:
    """No more callbacks of a kind than the events that can cause one."""
    kinds = Counter(c.event_type for c in calls)
    filled = Counter(c.said_clinician for c in calls if c.event_type == "session.filled")
    for clinician, n in filled.items():
        if n > fills[(session_id, clinician)]:
            yield (
                f"{name} was called back as filled by clinician {short(clinician)} {n}"
                f" times, but matching filled it so {fills[(session_id, clinician)]} times"
            )
    if kinds["session.cancelled_by_clinician"] > gave_up[session_id]:
        yield (
            f"{name} was called back as cancelled by the clinician"
            f" {kinds['session.cancelled_by_clinician']} times, but clinicians gave it"
            f" up {gave_up[session_id]} times"
        )
    # An offered session is open again when its clinician gave the booking up, the
    # practice amended it, or its offer lapsed (``session.unmatched`` says so).
    reopened = (
        kinds["session.cancelled_by_clinician"] + kinds["session.unmatched"] + amended[session_id]
    )
    if kinds["session.offered"] > 1 + reopened:
        yield (
            f"{name} was called back as offered {kinds['session.offered']} times, but"
            f" it was opened again only {reopened} times"
        )


def _last_callback_says(name: str, s: Session | None, calls: list[Callback]) -> Iterable[str]:
    """A session that Fairshare moved on was last called back with where it stands."""
    if s is None or s.status not in ("offered", "filled", "unfilled"):
        return
    last = max(calls, key=lambda c: c.id)
    if last.said_status != s.status:
        yield (
            f"{name} is {s.status} but its last callback ({last.event_type})"
            f" said {last.said_status}"
        )
    elif s.status == "filled" and last.said_clinician != s.clinician_id:
        yield (
            f"{name} is filled by clinician {short(s.clinician_id)} but its last callback"
            f" named {short(last.said_clinician)}"
        )


def _monitor_stages(snap: Snapshot) -> Iterable[str]:
    posted = {s.id for s in snap.sessions}
    offered = {o.session_id for o in snap.matching_offers}
    booked = {b.session_id for b in snap.bookings}
    stages = snap.stages

    def differ(stage: str, truth: set[uuid.UUID], source: str) -> Iterable[str]:
        counted = stages.get(stage, set())
        for missing in sorted(truth - counted, key=str)[:SHOWN]:
            yield f"the monitor never counted session {short(missing)} as {stage} ({source})"
        for extra in sorted(counted - truth, key=str)[:SHOWN]:
            yield f"the monitor counts session {short(extra)} as {stage}, but {source} says not"

    yield from differ("posted", posted, "vacancies holds it")
    yield from differ("offered", offered, "matching offered it")
    yield from differ("filled", booked, "matching books it")


def _places(snap: Snapshot) -> dict[uuid.UUID, tuple[str, str]]:
    """Where each session counts: its poster's region and its site's sector, as
    vacancies' events place it (sessions of an organisation vacancies lacks are left out)."""
    orgs = {o.ods: o for o in snap.organisations}
    place: dict[uuid.UUID, tuple[str, str]] = {}
    for s in snap.sessions:
        poster, site = orgs.get(s.organisation), orgs.get(s.site)
        if poster is not None and site is not None:
            place[s.id] = (poster.region, site.sector)
    return place


# Each dashboard figure: what it counts, in words, and which service holds the truth.
_FIGURES = {
    "posted": ("posted", "vacancies holds"),
    "offered": ("offered", "matching offered"),
    "filled": ("filled now", "vacancies holds"),
    "cancelled": ("cancelled", "vacancies holds"),
    "unfilled": ("unfilled", "vacancies holds"),
    "late_cancelled": ("cancelled late", "vacancies holds"),
}


def service_counts(snap: Snapshot) -> dict[tuple[str, str], Counts]:
    """The monitor's figures as the services' own tables give them, per (region, sector)
    with sessions: every session vacancies holds is posted; filled now, cancelled (late
    or not) and unfilled by vacancies' status; offered if matching ever offered it."""
    offered = {o.session_id for o in snap.matching_offers}
    by_id = {s.id: s for s in snap.sessions}
    tally: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for session_id, key in _places(snap).items():
        s, n = by_id[session_id], tally[key]
        n["posted"] += 1
        n["offered"] += session_id in offered
        n["filled"] += s.status == "filled"
        n["cancelled"] += s.status == "cancelled"
        n["unfilled"] += s.status == "unfilled"
        n["late_cancelled"] += s.status == "cancelled" and s.cancelled_late
    return {
        (region, sector): Counts(
            region,
            sector,
            posted=n["posted"],
            offered=n["offered"],
            filled=n["filled"],
            cancelled=n["cancelled"],
            unfilled=n["unfilled"],
            late_cancelled=n["late_cancelled"],
        )
        for (region, sector), n in sorted(tally.items())
    }


def _monitor_counts(snap: Snapshot) -> Iterable[str]:
    """The dashboard's offered and filled figures are the counts of the monitor's own
    sessions at those stages: a difference is a session counted twice or lost."""
    want: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    place = _places(snap)
    for stage, ids in snap.stages.items():
        for session_id in ids:
            if session_id in place:
                want[place[session_id]][stage] += 1
    shown = {(c.region, c.sector): c for c in snap.counts}
    for key in sorted(set(shown) | set(want)):
        c = shown.get(key, Counts(*key, 0, 0, 0))
        for stage, figure in (("offered", c.offered), ("filled", c.filled)):
            if figure != want[key][stage]:
                yield (
                    f"the monitor shows {figure} sessions {stage} in {c.region} {c.sector}"
                    f" but has {want[key][stage]} such sessions recorded: counted twice or lost"
                )


def _monitor_figures(snap: Snapshot) -> Iterable[str]:
    """Each dashboard figure is what the services hold, per region and sector.

    Only once no event is in flight (one unpublished or unhandled leaves the monitor
    legitimately behind, and is itself reported when a wait runs out), and only while
    the outboxes hold the data's whole history: the monitor's figures come from events
    alone, so older sessions (counted before its figures were rebuilt, or whose events
    are no longer kept to replay) may legitimately differ.
    """
    if not snap.history_complete or unsettled(snap, background=False):
        return
    held = service_counts(snap)
    shown = {(c.region, c.sector): c for c in snap.counts}
    for key in sorted(set(held) | set(shown)):
        region, sector = key
        none = Counts(region, sector, 0, 0, 0)
        theirs, ours = shown.get(key, none), held.get(key, none)
        for figure, (words, source) in _FIGURES.items():
            a, b = getattr(theirs, figure), getattr(ours, figure)
            if a != b:
                yield (
                    f"sessions {words} in {region} {sector}: the monitor shows {a}, {source} {b}"
                )


def _monitor_drain(snap: Snapshot) -> Iterable[str]:
    ledger = {m.id: m for m in snap.moves}
    copy = {m.id: m for m in snap.monitor_moves}
    for move_id in sorted(set(ledger) - set(copy), key=str):
        m = ledger[move_id]
        yield (
            f"matching's move {short(move_id)} ({m.hours:g} h {m.from_sector} → {m.to_sector}"
            f" in {m.region}) is missing from the monitor"
        )
    for move_id in sorted(set(copy) - set(ledger), key=str):
        yield f"the monitor shows move {short(move_id)} that matching's ledger does not hold"
    for move_id in sorted(set(copy) & set(ledger), key=str):
        a, b = ledger[move_id], copy[move_id]
        same = (a.region, a.kind, a.from_sector, a.to_sector) == (
            b.region,
            b.kind,
            b.from_sector,
            b.to_sector,
        ) and abs(a.hours - b.hours) < 1e-6
        if not same:
            yield f"move {short(move_id)} differs between matching and the monitor"
        elif a.reversed != b.reversed:
            yield (
                f"move {short(move_id)} is {'reversed' if a.reversed else 'live'} in matching's"
                f" ledger but {'reversed' if b.reversed else 'live'} in the monitor"
            )
    for region, sector in sorted(snap.matching_alerts - snap.monitor_alerts):
        yield (
            f"matching has a drain alert standing for {sector} in {region};"
            " the monitor does not show it"
        )
    for region, sector in sorted(snap.monitor_alerts - snap.matching_alerts):
        yield f"the monitor shows a drain alert for {sector} in {region} that matching has cleared"
    theirs = {p.region: p for p in snap.monitor_policies}
    for p in snap.matching_policies:
        q = theirs.pop(p.region, None)
        if q is None:
            yield f"matching has a policy for {p.region}; the monitor has none"
            continue
        caps = dict(q.caps)
        wrong = [s for s, pct in p.caps if abs(caps.get(s, -1.0) - pct) > 1e-9]
        if (p.home_first, p.alert_share) != (q.home_first, q.alert_share) or wrong:
            yield (
                f"the monitor's policy for {p.region} differs from matching's"
                f" ({', '.join(wrong) or 'flags'})"
            )
    for region in sorted(theirs):
        yield f"the monitor shows a policy for {region} that matching does not have"


# ---------------------------------------------------------------------------------
# Running


async def snapshot(dsn: str) -> Snapshot:
    """One snapshot of the database at ``dsn``."""
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    try:
        return await read_snapshot(conn)
    finally:
        await conn.close()


async def wait_until_settled(
    dsn: str, *, timeout_s: float, background: bool = True, every_s: float = 0.5
) -> tuple[Snapshot, list[str]]:
    """Snapshots until one has nothing unsettled, or ``timeout_s`` passes; the last
    snapshot and what was still unsettled in it (empty if it settled)."""
    deadline = time.monotonic() + timeout_s
    while True:
        snap = await snapshot(dsn)
        left = unsettled(snap, background=background)
        if not left or time.monotonic() >= deadline:
            return snap, left
        await asyncio.sleep(every_s)


async def run_check(dsn: str, *, wait_s: float) -> tuple[list[str], list[str]]:
    """Wait for the events to settle, then check: (problems, notes).

    Events still unhandled after ``wait_s`` are problems (lost, or dead-lettered);
    callbacks still pending are only noted (an organisation's endpoint may be down).
    """
    snap, left = await wait_until_settled(dsn, timeout_s=wait_s, background=False)
    found = [f"after {wait_s:g} s, {line}" for line in left]
    found += problems(snap)
    notes = [line for line in unsettled(snap) if line not in left]
    if not snap.history_complete:
        notes.append(
            "data older than a day: outboxes are pruned, so checks of what was said"
            " (events per session, callbacks per event) and of the monitor's figures"
            " against the services' were skipped"
        )
    return found, notes


def report(found: Sequence[str], notes: Sequence[str]) -> str:
    """What ``fairshare check`` prints."""
    lines = [f"problem: {p}" for p in found] or ["consistent"]
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines)
