"""asyncpg access to the matching schema."""

from __future__ import annotations

import uuid
import zlib
from datetime import datetime, timedelta

import asyncpg

from services.matching.domain import Commitment, OpenSession, Proposal, Window
from services.matching.policy import OFFERED_HOURS_PER_WEEK, Policy, SectorBalance, window
from shared.catalogue import Profession, Role, Sector, Skill, Urgency
from shared.db.types import Conn
from shared.events import SessionAmended, SessionCancelled, SessionPosted, SessionUnfilled


async def lock_region(conn: Conn, region: str) -> None:
    """Serialise planning of one region until the transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", zlib.crc32(f"plan:{region}".encode()))


async def insert_session(conn: Conn, region: str, data: SessionPosted | SessionAmended) -> None:
    """Remember a posted session as open."""
    await conn.execute(
        "INSERT INTO sessions (id, region, organisation, sector, role, skills, starts_at,"
        " ends_at, site_name, latitude, longitude, rate_pence_per_hour, urgency, imd_decile,"
        " place) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        " ON CONFLICT (id) DO NOTHING",
        data.session_id,
        region,
        data.organisation,
        data.sector.value,
        data.role.value,
        [k.value for k in data.skills],
        data.starts_at,
        data.ends_at,
        data.site_name,
        data.latitude,
        data.longitude,
        data.rate_pence_per_hour,
        data.urgency.value,
        data.imd_decile,
        data.place,
    )


async def insert_window(
    conn: Conn, *, region: str, availability_id: uuid.UUID, window: Window
) -> None:
    """Remember a clinician's offered window."""
    await conn.execute(
        "INSERT INTO availability (id, clinician_id, region, profession, home_sector,"
        " starts_at, ends_at, skills, latitude, longitude, travel_km, wtr_opt_out, self_employed)"
        " SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13"
        # A window withdrawn before it arrived stays withdrawn.
        " WHERE NOT EXISTS (SELECT 1 FROM withdrawn_windows WHERE id = $1)"
        " ON CONFLICT (id) DO NOTHING",
        availability_id,
        window.clinician_id,
        region,
        window.profession.value,
        window.home_sector.value,
        window.starts_at,
        window.ends_at,
        [k.value for k in window.skills],
        window.latitude,
        window.longitude,
        window.travel_km,
        window.wtr_opt_out,
        window.self_employed,
    )


Span = tuple[datetime, datetime] | None
_OVERLAPS = "($3::timestamptz IS NULL OR ({a}.starts_at < $4 AND {a}.ends_at > $3))"


def _span(span: Span) -> tuple[datetime | None, datetime | None]:
    return span if span else (None, None)


async def sessions_needing_offer(
    conn: Conn, region: str, now: datetime, span: Span = None
) -> list[OpenSession]:
    """Open, future sessions of the region with no live offer (within ``span`` if given)."""
    rows = await conn.fetch(
        "SELECT s.* FROM sessions s WHERE s.region = $1 AND s.status = 'open'"
        " AND s.starts_at > $2 AND " + _OVERLAPS.format(a="s") + " AND NOT EXISTS ("
        "SELECT 1 FROM offers o WHERE o.session_id = s.id AND (o.status = 'accepted'"
        " OR (o.status = 'offered' AND o.expires_at > $2)))",
        region,
        now,
        *_span(span),
    )
    return [
        OpenSession(
            id=r["id"],
            organisation=r["organisation"],
            sector=Sector(r["sector"]),
            role=Role(r["role"]),
            starts_at=r["starts_at"],
            ends_at=r["ends_at"],
            skills=frozenset(Skill(k) for k in r["skills"]),
            site_name=r["site_name"],
            latitude=r["latitude"],
            longitude=r["longitude"],
            rate_pence_per_hour=r["rate_pence_per_hour"],
            urgency=Urgency(r["urgency"]),
            imd_decile=r["imd_decile"],
            place=r["place"] or "",
        )
        for r in rows
    ]


async def windows(conn: Conn, region: str, now: datetime, span: Span = None) -> list[Window]:
    """The region's windows that have not ended (overlapping ``span`` if given)."""
    rows = await conn.fetch(
        "SELECT * FROM availability w WHERE region = $1 AND ends_at > $2 AND NOT withdrawn"
        " AND " + _OVERLAPS.format(a="w"),
        region,
        now,
        *_span(span),
    )
    return [
        Window(
            clinician_id=r["clinician_id"],
            profession=Profession(r["profession"]),
            home_sector=Sector(r["home_sector"]),
            starts_at=r["starts_at"],
            ends_at=r["ends_at"],
            skills=frozenset(Skill(k) for k in r["skills"]),
            latitude=r["latitude"],
            longitude=r["longitude"],
            travel_km=r["travel_km"],
            wtr_opt_out=r["wtr_opt_out"],
            self_employed=r["self_employed"],
        )
        for r in rows
    ]


# How far back any rule looks from a session still to plan (which starts after now):
# the 48-hour rule's 7 days. Nothing that ended before ``now - RULE_REACH`` is read.
RULE_REACH = timedelta(days=7)


async def commitments(
    conn: Conn, region: str, now: datetime, span: Span = None
) -> list[Commitment]:
    """Time clinicians can't be offered again, each span once: bookings, live offers, and
    accepted offers without a booking (none should exist; read so none is missed).

    A booking is also its accepted offer, so reading both counted every booked hour
    twice. Bounded in time: what ended over ``RULE_REACH`` before now no rule can reach
    (sessions to plan start after now), and with a ``span`` (the caller widens it by
    what its rules reach) only what overlaps it.
    """
    rows = await conn.fetch(
        "SELECT b.clinician_id, b.starts_at, b.ends_at FROM bookings b"
        " JOIN offers bo ON bo.id = b.offer_id WHERE bo.region = $1 AND b.ends_at > $2 AND "
        + _OVERLAPS.format(a="b")
        + " UNION ALL SELECT o.clinician_id, o.starts_at, o.ends_at FROM offers o"
        " WHERE o.region = $1 AND o.ends_at > $2 AND ((o.status = 'offered' AND o.expires_at > $5)"
        " OR (o.status = 'accepted'"
        " AND NOT EXISTS (SELECT 1 FROM bookings ob WHERE ob.offer_id = o.id))) AND "
        + _OVERLAPS.format(a="o"),
        region,
        now - RULE_REACH,
        *_span(span),
        now,
    )
    return [Commitment(r["clinician_id"], r["starts_at"], r["ends_at"]) for r in rows]


async def tried_pairs(
    conn: Conn, region: str, span: Span = None
) -> frozenset[tuple[uuid.UUID, uuid.UUID]]:
    """(session, clinician) pairs not to offer again: offered before, live or not.

    Only offers of the session as it now stands count (same time, not withdrawn): the
    clinician never said no to a session the organisation has since moved.
    """
    rows = await conn.fetch(
        "SELECT o.session_id, o.clinician_id FROM offers o JOIN sessions s ON s.id = o.session_id"
        " WHERE o.region = $1 AND s.status = 'open' AND o.status <> 'withdrawn'"
        " AND o.starts_at = s.starts_at AND o.ends_at = s.ends_at"
        " AND ($2::timestamptz IS NULL OR (s.starts_at < $3 AND s.ends_at > $2))",
        region,
        *_span(span),
    )
    return frozenset((r["session_id"], r["clinician_id"]) for r in rows)


async def insert_offer(
    conn: Conn,
    *,
    offer_id: uuid.UUID,
    region: str,
    proposal: Proposal,
    expires_at: datetime,
) -> None:
    """Record an offer about to be published."""
    await conn.execute(
        "INSERT INTO offers (id, session_id, clinician_id, clinician_home_sector, region,"
        " starts_at, ends_at, expires_at, reasons) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        offer_id,
        proposal.session.id,
        proposal.clinician_id,
        proposal.home_sector.value,
        region,
        proposal.session.starts_at,
        proposal.session.ends_at,
        expires_at,
        list(proposal.reasons),
    )
    await conn.execute(
        "UPDATE sessions SET unmatched_why = NULL WHERE id = $1", proposal.session.id
    )


async def still_offerable(conn: Conn, proposal: Proposal, now: datetime) -> bool:
    """Whether a planned offer still stands against the state now.

    The session is open, unchanged in time, not started and without a live offer; the
    clinician was never offered it (in play), is free then (no booking, no live
    offer overlapping) and still has a window covering it.
    """
    session = proposal.session
    ok: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM sessions s WHERE s.id = $1 AND s.status = 'open'"
        "   AND s.starts_at = $3 AND s.ends_at = $4 AND s.starts_at > $5"
        "   AND NOT EXISTS (SELECT 1 FROM offers o WHERE o.session_id = s.id"
        "     AND (o.status = 'accepted' OR (o.status = 'offered' AND o.expires_at > $5))))"
        " AND NOT EXISTS (SELECT 1 FROM offers o WHERE o.session_id = $1"
        "   AND o.clinician_id = $2 AND o.status <> 'withdrawn'"
        "   AND o.starts_at = $3 AND o.ends_at = $4)"
        " AND NOT EXISTS (SELECT 1 FROM bookings b WHERE b.clinician_id = $2"
        "   AND b.starts_at < $4 AND b.ends_at > $3)"
        " AND NOT EXISTS (SELECT 1 FROM offers o WHERE o.clinician_id = $2"
        "   AND (o.status = 'accepted' OR (o.status = 'offered' AND o.expires_at > $5))"
        "   AND o.starts_at < $4 AND o.ends_at > $3)"
        " AND EXISTS (SELECT 1 FROM availability w WHERE w.clinician_id = $2 AND NOT w.withdrawn"
        "   AND w.starts_at <= $3 AND w.ends_at >= $4)",
        session.id,
        proposal.clinician_id,
        session.starts_at,
        session.ends_at,
        now,
    )
    return ok


async def offer_for_update(conn: Conn, offer_id: uuid.UUID) -> asyncpg.Record | None:
    """An offer joined with its session, both locked."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT o.*, s.status AS session_status, s.organisation, s.sector, s.place"
        " FROM offers o JOIN sessions s ON s.id = o.session_id WHERE o.id = $1"
        " FOR UPDATE OF o, s",
        offer_id,
    )
    return row


async def set_offer_status(conn: Conn, offer_id: uuid.UUID, status: str) -> None:
    """Move an offer on."""
    await conn.execute("UPDATE offers SET status = $2 WHERE id = $1", offer_id, status)


async def bookings_near(
    conn: Conn, clinician_id: uuid.UUID, span: tuple[datetime, datetime], *, reach: timedelta
) -> list[tuple[datetime, datetime]]:
    """The clinician's booked spans within ``reach`` of ``span``, each once."""
    rows = await conn.fetch(
        "SELECT starts_at, ends_at FROM bookings WHERE clinician_id = $1"
        " AND starts_at < $3 AND ends_at > $2",
        clinician_id,
        span[0] - reach,
        span[1] + reach,
    )
    return [(r["starts_at"], r["ends_at"]) for r in rows]


async def live_offers_against(
    conn: Conn, offer_id: uuid.UUID, now: datetime, *, reach: timedelta
) -> list[tuple[uuid.UUID, datetime, datetime]]:
    """Live offers other than ``offer_id`` that booking it must respect: of its session
    (offered to someone else since), or of its clinician within ``reach`` of it; each as
    (session, start, end)."""
    rows = await conn.fetch(
        "SELECT o.session_id, o.starts_at, o.ends_at FROM offers o JOIN offers x ON x.id = $1"
        " WHERE o.id <> x.id AND o.status = 'offered' AND o.expires_at > $2"
        " AND (o.session_id = x.session_id OR (o.clinician_id = x.clinician_id"
        " AND o.starts_at < x.ends_at + $3 AND o.ends_at > x.starts_at - $3))",
        offer_id,
        now,
        reach,
    )
    return [(r["session_id"], r["starts_at"], r["ends_at"]) for r in rows]


async def working_time_terms(
    conn: Conn, clinician_id: uuid.UUID, span: tuple[datetime, datetime]
) -> tuple[bool, bool]:
    """(opted out of the 48-hour week, self-employed), as the clinician's window covering
    ``span`` says (else their latest window; neither when matching has none)."""
    row = await conn.fetchrow(
        "SELECT wtr_opt_out, self_employed FROM availability WHERE clinician_id = $1"
        " ORDER BY (starts_at <= $2 AND ends_at >= $3) DESC, NOT withdrawn DESC, starts_at DESC"
        " LIMIT 1",
        clinician_id,
        *span,
    )
    return (bool(row["wtr_opt_out"]), bool(row["self_employed"])) if row else (False, False)


async def book(conn: Conn, offer: asyncpg.Record) -> None:
    """Book the offer's clinician; the constraints refuse a double booking."""
    await conn.execute(
        "INSERT INTO bookings (session_id, offer_id, clinician_id, starts_at, ends_at)"
        " VALUES ($1, $2, $3, $4, $5)",
        offer["session_id"],
        offer["id"],
        offer["clinician_id"],
        offer["starts_at"],
        offer["ends_at"],
    )
    await conn.execute("UPDATE sessions SET status = 'filled' WHERE id = $1", offer["session_id"])


async def regions_with_open_sessions(conn: asyncpg.Pool, now: datetime) -> list[str]:
    """Regions that have something left to plan."""
    rows = await conn.fetch(
        "SELECT DISTINCT region FROM sessions WHERE status = 'open' AND starts_at > $1", now
    )
    return [r["region"] for r in rows]


async def open_session_counts(
    pool: asyncpg.Pool, now: datetime, soon: timedelta
) -> list[tuple[str, int, int]]:
    """Per region with any: sessions open and not started, and how many of them start
    within ``soon`` (for /metrics; the partial index on open sessions serves it)."""
    rows = await pool.fetch(
        "SELECT region, count(*) AS open, count(*) FILTER (WHERE starts_at <= $2) AS soon"
        " FROM sessions WHERE status = 'open' AND starts_at > $1 GROUP BY region",
        now,
        now + soon,
    )
    return [(r["region"], r["open"], r["soon"]) for r in rows]


async def regions_holding(conn: asyncpg.Pool, now: datetime) -> list[str]:
    """Regions with something left to plan whose policy holds offers back
    (``hold_beyond_h``): those the daily planning round plans."""
    rows = await conn.fetch(
        "SELECT DISTINCT s.region FROM sessions s JOIN policies p ON p.region = s.region"
        " WHERE s.status = 'open' AND s.starts_at > $1 AND p.hold_beyond_h IS NOT NULL",
        now,
    )
    return [r["region"] for r in rows]


async def update_session(conn: Conn, region: str, data: SessionPosted | SessionAmended) -> bool:
    """Bring a session up to date; True if its time, role or skills changed."""
    row = await conn.fetchrow(
        "SELECT starts_at, ends_at, role, skills, organisation FROM sessions WHERE id = $1"
        " FOR UPDATE",
        data.session_id,
    )
    if row is None:
        await insert_session(conn, region, data)
        return True
    new = (data.starts_at, data.ends_at, data.role.value, sorted(k.value for k in data.skills))
    old = (row["starts_at"], row["ends_at"], row["role"], sorted(row["skills"]))
    await conn.execute(
        "UPDATE sessions SET starts_at = $2, ends_at = $3, role = $4, skills = $5,"
        " organisation = $6, sector = $7, site_name = $8, latitude = $9, longitude = $10,"
        " rate_pence_per_hour = $11, urgency = $12, imd_decile = $13, place = $14"
        " WHERE id = $1",
        data.session_id,
        data.starts_at,
        data.ends_at,
        data.role.value,
        [k.value for k in data.skills],
        data.organisation,
        data.sector.value,
        data.site_name,
        data.latitude,
        data.longitude,
        data.rate_pence_per_hour,
        data.urgency.value,
        data.imd_decile,
        data.place,
    )
    return new != old or row["organisation"] != data.organisation


async def release(conn: Conn, session_id: uuid.UUID, *, status: str) -> None:
    """Drop the session's booking and live offers; leave it ``status``.

    A session already cancelled or unfilled stays so: an amendment handled after the
    cancellation (possible only when a lost broker's events come again) can't reopen it.
    """
    await conn.execute("DELETE FROM bookings WHERE session_id = $1", session_id)
    await conn.execute(
        "UPDATE offers SET status = 'withdrawn' WHERE session_id = $1"
        " AND status IN ('offered', 'accepted')",
        session_id,
    )
    await conn.execute(
        "UPDATE sessions SET status = $2 WHERE id = $1 AND status NOT IN ('cancelled', 'unfilled')",
        session_id,
        status,
    )


async def close_session(
    conn: Conn, region: str, data: SessionCancelled | SessionUnfilled, *, status: str
) -> None:
    """Close a session for good, leaving a tombstone if it was never posted here."""
    await conn.execute(
        "INSERT INTO sessions (id, region, organisation, sector, role, starts_at, ends_at,"
        " status) VALUES ($1, $2, $3, $4, '', $5, $6, $7) ON CONFLICT (id) DO NOTHING",
        data.session_id,
        region,
        data.organisation,
        data.sector.value,
        data.starts_at,
        data.ends_at,
        status,
    )
    await release(conn, data.session_id, status=status)


async def cancel_booking(conn: Conn, offer_id: uuid.UUID, clinician_id: uuid.UUID) -> bool:
    """The clinician gave the booking up; True if that freed the session or the offer.

    An offer still standing is marked cancelled too, so that its acceptance, should it
    be handled later, books nothing, and the session goes to someone else now.
    """
    offered: str = await conn.execute(
        "UPDATE offers SET status = 'cancelled' WHERE id = $1 AND clinician_id = $2"
        " AND status IN ('offered', 'accepted')",
        offer_id,
        clinician_id,
    )
    deleted = await conn.fetchval(
        "DELETE FROM bookings WHERE offer_id = $1 AND clinician_id = $2 RETURNING session_id",
        offer_id,
        clinician_id,
    )
    if deleted is not None:
        await conn.execute(
            "UPDATE sessions SET status = 'open' WHERE id = $1 AND status = 'filled'", deleted
        )
    return deleted is not None or offered.endswith(" 1")


async def session_span(conn: Conn, session_id: uuid.UUID) -> Span:
    """The session's time as matching holds it, if it holds the session."""
    row = await conn.fetchrow("SELECT starts_at, ends_at FROM sessions WHERE id = $1", session_id)
    return (row["starts_at"], row["ends_at"]) if row else None


async def offer_span(conn: Conn, offer_id: uuid.UUID) -> Span:
    """The time of the session an offer was made for (as it stood then)."""
    row = await conn.fetchrow("SELECT starts_at, ends_at FROM offers WHERE id = $1", offer_id)
    return (row["starts_at"], row["ends_at"]) if row else None


async def expired_offer_spans(
    pool: asyncpg.Pool, *, after: datetime, until: datetime
) -> dict[str, tuple[datetime, datetime]]:
    """Per region, the stretch of time of offers that expired in (after, until]."""
    rows = await pool.fetch(
        "SELECT region, min(starts_at) AS starts_at, max(ends_at) AS ends_at FROM offers"
        " WHERE status = 'offered' AND expires_at > $1 AND expires_at <= $2 GROUP BY region",
        after,
        until,
    )
    return {r["region"]: (r["starts_at"], r["ends_at"]) for r in rows}


async def withdraw_window(
    conn: Conn, availability_id: uuid.UUID, clinician_id: uuid.UUID
) -> tuple[datetime, datetime] | None:
    """Take a window out of planning; return its span, or None if unknown."""
    await conn.execute(
        "INSERT INTO withdrawn_windows (id) VALUES ($1) ON CONFLICT DO NOTHING", availability_id
    )
    row = await conn.fetchrow(
        "UPDATE availability SET withdrawn = true WHERE id = $1 AND clinician_id = $2"
        " RETURNING starts_at, ends_at",
        availability_id,
        clinician_id,
    )
    return (row["starts_at"], row["ends_at"]) if row else None


async def withdraw_offers_within(
    conn: Conn, clinician_id: uuid.UUID, starts_at: datetime, ends_at: datetime
) -> int:
    """Withdraw the clinician's unanswered offers inside a window they took back."""
    result: str = await conn.execute(
        "UPDATE offers SET status = 'withdrawn' WHERE clinician_id = $1 AND status = 'offered'"
        " AND starts_at >= $2 AND ends_at <= $3",
        clinician_id,
        starts_at,
        ends_at,
    )
    return int(result.rsplit(maxsplit=1)[-1])


async def decline(conn: Conn, offer_id: uuid.UUID, clinician_id: uuid.UUID) -> bool:
    """Record a declined offer (so it is not made again); True if it was open."""
    result: str = await conn.execute(
        "UPDATE offers SET status = 'declined' WHERE id = $1 AND clinician_id = $2"
        " AND status = 'offered'",
        offer_id,
        clinician_id,
    )
    return result.endswith(" 1")


async def set_unmatched(conn: Conn, reasons: dict[uuid.UUID, str]) -> dict[uuid.UUID, str]:
    """Remember why each session has no offer; the organisations of those whose reason is
    new. One statement: a busy region's plan leaves thousands of sessions unplaced, and
    a statement each was most of the service's time under load."""
    if not reasons:
        return {}
    rows = await conn.fetch(
        "UPDATE sessions s SET unmatched_why = r.why"
        " FROM unnest($1::uuid[], $2::text[]) AS r(id, why)"
        " WHERE s.id = r.id AND s.unmatched_why IS DISTINCT FROM r.why AND s.status = 'open'"
        # Offered meanwhile (a plan written from an older snapshot): no reason to give.
        " AND NOT EXISTS (SELECT 1 FROM offers o WHERE o.session_id = s.id"
        " AND (o.status = 'accepted' OR (o.status = 'offered' AND o.expires_at > now())))"
        " RETURNING s.id, s.organisation",
        list(reasons),
        list(reasons.values()),
    )
    return {r["id"]: r["organisation"] for r in rows}


async def unmatched_why(conn: Conn, session_id: uuid.UUID) -> str | None:
    """The last reason matching gave for the session having no offer."""
    why: str | None = await conn.fetchval(
        "SELECT unmatched_why FROM sessions WHERE id = $1", session_id
    )
    return why


async def policy(conn: Conn, region: str) -> Policy:
    """The region's policy; the defaults where the ICB set nothing."""
    row = await conn.fetchrow("SELECT * FROM policies WHERE region = $1", region)
    caps = await conn.fetch("SELECT sector, cap_pct FROM sector_caps WHERE region = $1", region)
    cap_pct = {Sector(r["sector"]): r["cap_pct"] for r in caps}
    if row is None:
        return Policy(cap_pct=cap_pct)
    return Policy(
        cap_pct=cap_pct,
        home_first=row["home_first"],
        alert_share=row["alert_share"],
        hold_beyond_h=row["hold_beyond_h"],
        cross_sector_within_h=row["cross_sector_within_h"],
    )


async def save_policy(conn: Conn, region: str, policy: Policy) -> None:
    """Store the region's policy whole."""
    await conn.execute(
        "INSERT INTO policies (region, home_first, alert_share, hold_beyond_h,"
        " cross_sector_within_h) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (region) DO UPDATE SET home_first = $2, alert_share = $3,"
        " hold_beyond_h = $4, cross_sector_within_h = $5, changed_at = now()",
        region,
        policy.home_first,
        policy.alert_share,
        policy.hold_beyond_h,
        policy.cross_sector_within_h,
    )
    await conn.execute("DELETE FROM sector_caps WHERE region = $1", region)
    await conn.executemany(
        "INSERT INTO sector_caps (region, sector, cap_pct) VALUES ($1, $2, $3)",
        [(region, sector.value, pct) for sector, pct in policy.cap_pct.items()],
    )


async def balances(
    conn: Conn, region: str, now: datetime, window_days: int
) -> dict[Sector, SectorBalance]:
    """Each sector's offered hours and net outflow over the rolling window
    (``policy.window``: the ``window_days`` before now and the ``window_days`` after).

    Offered hours are the sector's clinicians' windows clipped to it, each clinician
    counting at most ``OFFERED_HOURS_PER_WEEK`` in each week of it (partial weeks pro
    rata), to the sector they belonged to when the window began. Net outflow is the live
    moves (and live cross-sector offers, as if accepted) that count in the window or
    after it: a move booked beyond the window's end is charged now, so no plan can
    overdraw the window it will fall in.
    """
    lo, hi = window(now, window_days)
    offered = await conn.fetch(
        "WITH weeks AS (SELECT $2::timestamptz + i * interval '7 days' AS lo,"
        " least($2::timestamptz + (i + 1) * interval '7 days', $3::timestamptz) AS hi"
        " FROM generate_series(0, ceil(extract(epoch FROM $3::timestamptz - $2::timestamptz)"
        " / 604800)::int - 1) AS i),"
        " per AS (SELECT coalesce(w.offered_sector, w.home_sector) AS sector, w.clinician_id,"
        " k.lo, k.hi, sum(extract(epoch FROM least(w.ends_at, k.hi)"
        " - greatest(w.starts_at, k.lo))) / 3600 AS hours"
        " FROM availability w JOIN weeks k ON w.starts_at < k.hi AND w.ends_at > k.lo"
        " WHERE w.region = $1 AND w.ends_at > $2 AND w.starts_at < $3 AND NOT w.withdrawn"
        " GROUP BY 1, 2, 3, 4)"
        " SELECT sector, sum(least(hours, $4 * extract(epoch FROM hi - lo) / 604800)) AS hours"
        " FROM per GROUP BY sector",
        region,
        lo,
        hi,
        OFFERED_HOURS_PER_WEEK,
    )
    moved = await conn.fetch(
        "SELECT sector, sum(hours) AS hours FROM ("
        " SELECT from_sector AS sector, hours FROM moves WHERE region = $1 AND at > $2"
        " AND reversed_at IS NULL"
        " UNION ALL SELECT to_sector, -hours FROM moves WHERE region = $1 AND at > $2"
        " AND reversed_at IS NULL"
        # Live cross-sector offers count as if accepted, so acceptances can't overshoot.
        " UNION ALL SELECT o.clinician_home_sector, extract(epoch FROM o.ends_at - o.starts_at)"
        " / 3600 FROM offers o JOIN sessions s ON s.id = o.session_id WHERE o.region = $1"
        " AND o.status = 'offered' AND o.expires_at > $3 AND s.sector <> o.clinician_home_sector"
        " UNION ALL SELECT s.sector, -extract(epoch FROM o.ends_at - o.starts_at) / 3600"
        " FROM offers o JOIN sessions s ON s.id = o.session_id WHERE o.region = $1"
        " AND o.status = 'offered' AND o.expires_at > $3 AND s.sector <> o.clinician_home_sector"
        ") m GROUP BY sector",
        region,
        lo,
        now,
    )
    hours = {Sector(r["sector"]): float(r["hours"]) for r in offered}
    net = {Sector(r["sector"]): float(r["hours"]) for r in moved}
    return {s: SectorBalance(hours.get(s, 0.0), net.get(s, 0.0)) for s in Sector}


async def worked_before(conn: Conn, region: str, now: datetime) -> frozenset[tuple[uuid.UUID, str]]:
    """(clinician, organisation) pairs with a booking already worked: continuity."""
    rows = await conn.fetch(
        "SELECT DISTINCT b.clinician_id, s.organisation FROM bookings b"
        " JOIN sessions s ON s.id = b.session_id WHERE s.region = $1 AND b.ends_at <= $2",
        region,
        now,
    )
    return frozenset((r["clinician_id"], r["organisation"]) for r in rows)


async def record_move(
    conn: Conn,
    *,
    move_id: uuid.UUID,
    region: str,
    kind: str,
    clinician_id: uuid.UUID,
    from_sector: Sector,
    to_sector: Sector,
    place: str | None,
    hours: float,
    at: datetime,
    session_id: uuid.UUID | None,
) -> bool:
    """Add a move to the ledger; False if that session's live move is already there.

    A session may have reversed moves (bookings released) and at most one live one.
    """
    inserted = await conn.fetchval(
        "INSERT INTO moves (id, region, kind, clinician_id, from_sector, to_sector, place,"
        " hours, at, session_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        " ON CONFLICT (session_id) WHERE reversed_at IS NULL AND session_id IS NOT NULL"
        " DO NOTHING RETURNING id",
        move_id,
        region,
        kind,
        clinician_id,
        from_sector.value,
        to_sector.value,
        place,
        hours,
        at,
        session_id,
    )
    return inserted is not None


async def alerted_sectors(conn: Conn, region: str) -> set[Sector]:
    """Sectors with a drain alert standing."""
    rows = await conn.fetch("SELECT sector FROM drain_alerts WHERE region = $1", region)
    return {Sector(r["sector"]) for r in rows}


async def set_alert(conn: Conn, region: str, sector: Sector, *, raised: bool) -> None:
    """Raise or clear a sector's standing alert."""
    if raised:
        await conn.execute(
            "INSERT INTO drain_alerts (region, sector) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            region,
            sector.value,
        )
    else:
        await conn.execute(
            "DELETE FROM drain_alerts WHERE region = $1 AND sector = $2", region, sector.value
        )


async def rehome(conn: Conn, clinician_id: uuid.UUID, sector: Sector, at: datetime) -> None:
    """A transferred clinician's windows now belong to their new home sector (planning
    sees their new home), but the hours of windows begun before ``at`` stay offered by
    the sector they were offered from: the transfer itself is the charge, once."""
    await conn.execute(
        "UPDATE availability SET offered_sector = coalesce(offered_sector, home_sector)"
        " WHERE clinician_id = $1 AND starts_at < $2",
        clinician_id,
        at,
    )
    await conn.execute(
        "UPDATE availability SET home_sector = $2 WHERE clinician_id = $1",
        clinician_id,
        sector.value,
    )


async def reverse_released_moves(
    conn: Conn, region: str, *, why: str, session_id: uuid.UUID | None = None
) -> list[asyncpg.Record]:
    """Reverse the live session moves (of ``session_id``, or the whole region) whose
    booking no longer stands; return them. A move stands exactly while its booking does."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "UPDATE moves m SET reversed_at = now(), reversed_why = $3"
        " WHERE m.region = $1 AND ($2::uuid IS NULL OR m.session_id = $2)"
        " AND m.kind = 'session' AND m.reversed_at IS NULL AND NOT EXISTS (SELECT 1 FROM"
        " bookings b WHERE b.session_id = m.session_id AND b.clinician_id = m.clinician_id)"
        " RETURNING m.*",
        region,
        session_id,
        why,
    )
    return rows


async def unpublished_reversals(conn: Conn) -> list[asyncpg.Record]:
    """Moves reversed whose ``move.reversed`` is not yet in the outbox (the repair's),
    marked published now: the caller emits them in the same transaction."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "UPDATE moves SET reversal_published = true WHERE NOT reversal_published RETURNING *"
    )
    return rows


async def ledger_regions(conn: Conn | asyncpg.Pool, since: datetime) -> list[str]:
    """Regions whose drain alerts may change as time passes: a move still counting, an
    alert standing, or a live cross-sector offer (counted in net outflow as if accepted:
    without it, a region whose plans lent past the alert share before any acceptance
    was never alerted)."""
    rows = await conn.fetch(
        "SELECT region FROM moves WHERE at > $1 AND reversed_at IS NULL"
        " UNION SELECT region FROM drain_alerts"
        " UNION SELECT o.region FROM offers o JOIN sessions s ON s.id = o.session_id"
        " WHERE o.status = 'offered' AND o.expires_at > now()"
        " AND s.sector <> o.clinician_home_sector",
        since,
    )
    return [r["region"] for r in rows]


async def request_plan(conn: Conn, region: str, span: Span, *, due_at: datetime) -> None:
    """Ask for the region to be planned by ``due_at``, over ``span`` joined to any asked."""
    start, end = _span(span)
    await conn.execute(
        "INSERT INTO plan_requests AS r (region, span_start, span_end, due_at)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (region) DO UPDATE SET"
        # A null span (the whole region) absorbs any other.
        " span_start = CASE WHEN r.span_start IS NULL OR $2::timestamptz IS NULL THEN NULL"
        " ELSE least(r.span_start, $2) END,"
        " span_end = CASE WHEN r.span_end IS NULL OR $3::timestamptz IS NULL THEN NULL"
        " ELSE greatest(r.span_end, $3) END",
        region,
        start,
        end,
        due_at,
    )


async def due_plan_regions(pool: asyncpg.Pool, now: datetime) -> list[str]:
    """Regions whose requested plan has fallen due."""
    rows = await pool.fetch("SELECT region FROM plan_requests WHERE due_at <= $1", now)
    return [r["region"] for r in rows]


async def take_plan_request(conn: Conn, region: str) -> tuple[bool, Span]:
    """Claim the region's request (until the transaction ends): (found, its span)."""
    row = await conn.fetchrow(
        "DELETE FROM plan_requests WHERE region = $1 RETURNING span_start, span_end", region
    )
    if row is None:
        return False, None
    if row["span_start"] is None:
        return True, None
    return True, (row["span_start"], row["span_end"])
