"""The ledger of cross-sector moves, and the drain alerts it raises."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog

from services.matching import repository
from services.matching.domain import utc
from services.matching.policy import cap_hours, past_alert
from services.matching.ports import MatchingRepository
from shared.catalogue import Sector
from shared.db.types import Conn
from shared.events import (
    ClinicianTransferred,
    Envelope,
    MoveRecorded,
    MoveReversed,
    SectorDrainAlert,
    SectorDrainCleared,
)
from shared.messaging.emitter import Emitter

log = structlog.get_logger(__name__)

# Each sector's net outflow over its cap (1 = at the cap), as check_alerts last worked it
# out in this process: on every move, and for every region on each sweep. /metrics reads
# it here (services/matching/gauges.py) rather than working every region out again.
DRAIN_SHARES: dict[tuple[str, Sector], float] = {}


async def session_moved(
    conn: Conn,
    offer: asyncpg.Record,
    *,
    envelope: Envelope[Any],
    emitter: Emitter,
    repo: MatchingRepository = repository,
) -> None:
    """A filled cross-sector session: count its hours out of the clinician's sector."""
    # In UTC: two times of one zone subtract by the wall clock (a 12-hour session across
    # the March clock change counted 13).
    hours = (utc(offer["ends_at"]) - utc(offer["starts_at"])).total_seconds() / 3600
    await _record(
        conn,
        MoveRecorded(
            move_id=uuid.uuid4(),
            kind="session",
            clinician_id=offer["clinician_id"],
            from_sector=Sector(offer["clinician_home_sector"]),
            to_sector=Sector(offer["sector"]),
            place=offer["place"],
            hours=hours,
            at=offer["starts_at"],
            session_id=offer["session_id"],
        ),
        envelope=envelope,
        emitter=emitter,
        repo=repo,
    )


async def transferred(
    conn: Conn,
    *,
    envelope: Envelope[ClinicianTransferred],
    emitter: Emitter,
    repo: MatchingRepository = repository,
) -> None:
    """A permanent move: counted once, as the policy's hours, and the clinician rehomed.

    Rehoming leaves the hours they offered before the transfer with the sector they
    offered them from: moving those too charged the old sector twice (150 hours out and
    its cap's base cut).
    """
    data: ClinicianTransferred = envelope.data
    await repo.rehome(conn, data.clinician_id, data.to_sector, envelope.occurred_at)
    if data.from_sector is data.to_sector:
        return  # a change of employer within a sector moves nothing between sectors
    policy = await repo.policy(conn, envelope.region)
    await _record(
        conn,
        MoveRecorded(
            # One ledger entry per transfer event, however often it is redelivered.
            move_id=uuid.uuid5(uuid.NAMESPACE_URL, f"transfer:{envelope.event_id}"),
            kind="transfer",
            clinician_id=data.clinician_id,
            from_sector=data.from_sector,
            to_sector=data.to_sector,
            place=None,
            hours=policy.transfer_hours,
            at=envelope.occurred_at,
            session_id=None,
        ),
        envelope=envelope,
        emitter=emitter,
        repo=repo,
    )


async def session_released(
    conn: Conn,
    *,
    region: str,
    session_id: uuid.UUID,
    why: str,
    emitter: Emitter,
    cause: Envelope[Any] | None = None,
    repo: MatchingRepository = repository,
) -> int:
    """The session's booking may have been released: reverse its move if so
    (``move.reversed``), giving its hours and cap room back, and re-check the alerts.
    Returns how many moves were reversed (0 or 1)."""
    rows = await repo.reverse_released_moves(conn, region, why=why, session_id=session_id)
    await _reversed(conn, rows, emitter=emitter, cause=cause)
    if rows:
        await check_alerts(conn, region=region, emitter=emitter, cause=cause, repo=repo)
    return len(rows)


async def _reversed(
    conn: Conn,
    rows: list[asyncpg.Record],
    *,
    emitter: Emitter,
    cause: Envelope[Any] | None = None,
) -> None:
    for r in rows:
        reversal = MoveReversed(
            move_id=r["id"],
            kind=r["kind"],
            clinician_id=r["clinician_id"],
            from_sector=Sector(r["from_sector"]),
            to_sector=Sector(r["to_sector"]),
            hours=r["hours"],
            at=r["at"],
            session_id=r["session_id"],
            reason=r["reversed_why"],
        )
        await emitter.emit(conn, reversal, region=r["region"], cause=cause)
        log.info("move reversed", region=r["region"], move_id=str(r["id"]), why=r["reversed_why"])


async def keep_current(
    pool: asyncpg.Pool,
    *,
    emitter: Emitter,
    now: datetime | None = None,
    repo: MatchingRepository = repository,
) -> None:
    """What time alone changes, for the sweep: publish reversals the ledger's repair made,
    and re-check every region's alerts as the window slides (a move leaving the window
    can clear an alert; offered hours leaving it can raise one)."""
    now = now or datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction():
        await _reversed(conn, await repo.unpublished_reversals(conn), emitter=emitter)
    for region in await repo.ledger_regions(pool, now - timedelta(days=_LONGEST_WINDOW)):
        async with pool.acquire() as conn, conn.transaction():
            await repo.lock_region(conn, region)
            await check_alerts(conn, region=region, emitter=emitter, now=now, repo=repo)


# Regions with a live move this recent are re-checked (longer than any policy's window).
_LONGEST_WINDOW = 366


async def _record(
    conn: Conn,
    move: MoveRecorded,
    *,
    envelope: Envelope[Any],
    emitter: Emitter,
    repo: MatchingRepository = repository,
) -> None:
    region = envelope.region
    try:
        async with conn.transaction():
            added = await repo.record_move(
                conn,
                move_id=move.move_id,
                region=region,
                kind=move.kind,
                clinician_id=move.clinician_id,
                from_sector=move.from_sector,
                to_sector=move.to_sector,
                place=move.place,
                hours=move.hours,
                at=move.at,
                session_id=move.session_id,
            )
    except asyncpg.UniqueViolationError:
        added = False  # the same transfer again
    if not added:
        return
    await emitter.emit(conn, move, region=region, cause=envelope)
    await check_alerts(conn, region=region, emitter=emitter, cause=envelope, repo=repo)


async def check_alerts(
    conn: Conn,
    *,
    region: str,
    emitter: Emitter,
    cause: Envelope[Any] | None = None,
    now: datetime | None = None,
    repo: MatchingRepository = repository,
) -> list[Sector]:
    """Raise ``sector.drain_alert`` for each sector newly past its alert share, and
    ``sector.drain_cleared`` for each that has fallen back under it.

    An alert stands until the sector falls back under the share, so a sector is
    alerted once per crossing, not on every move. Returns the sectors alerted now.
    """
    now = now or datetime.now(UTC)
    policy = await repo.policy(conn, region)
    balances = await repo.balances(conn, region, now, policy.window_days)
    standing = await repo.alerted_sectors(conn, region)
    raised = []
    for sector, balance in balances.items():
        cap = cap_hours(policy, sector, balance)
        _note_share(region, sector, balance.offered_hours, balance.net_out_hours, cap)
        over = balance.offered_hours > 0 and past_alert(policy, sector, balance)
        if over == (sector in standing):
            continue
        figures: dict[str, Any] = {
            "sector": sector,
            "net_out_hours": round(balance.net_out_hours, 2),
            "offered_hours": round(balance.offered_hours, 2),
            "cap_pct": policy.cap_for(sector),
            "used_pct": round(100 * balance.net_out_hours / cap, 1) if cap else 100.0,
            "window_days": policy.window_days,
        }
        await repo.set_alert(conn, region, sector, raised=over)
        event = SectorDrainAlert(**figures) if over else SectorDrainCleared(**figures)
        await emitter.emit(conn, event, region=region, cause=cause)
        log.warning("sector drain alert", region=region, sector=sector.value, raised=over)
        if over:
            raised.append(sector)
    return raised


def _note_share(region: str, sector: Sector, offered: float, net_out: float, cap: float) -> None:
    """Keep the sector's share of its cap for /metrics; none while it offered no hours
    (no alert is raised then either). A cap of nothing is passed by any outflow."""
    if offered <= 0:
        DRAIN_SHARES.pop((region, sector), None)
    elif cap > 0:
        DRAIN_SHARES[region, sector] = net_out / cap
    else:
        DRAIN_SHARES[region, sector] = math.inf if net_out > 0 else 0.0
