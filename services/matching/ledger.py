"""The ledger of cross-sector moves, and the drain alerts it raises."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from services.matching import repository
from services.matching.policy import cap_hours, past_alert
from shared.catalogue import Sector
from shared.db.types import Conn
from shared.events import (
    ClinicianTransferred,
    Envelope,
    MoveRecorded,
    SectorDrainAlert,
    SectorDrainCleared,
)
from shared.messaging.emitter import Emitter

log = structlog.get_logger(__name__)


async def session_moved(
    conn: Conn, offer: asyncpg.Record, *, envelope: Envelope[Any], emitter: Emitter
) -> None:
    """A filled cross-sector session: count its hours out of the clinician's sector."""
    hours = (offer["ends_at"] - offer["starts_at"]).total_seconds() / 3600
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
    )


async def transferred(conn: Conn, *, envelope: Envelope[Any], emitter: Emitter) -> None:
    """A permanent move: counted as the policy's hours, and the clinician rehomed."""
    data: ClinicianTransferred = envelope.data
    await repository.rehome(conn, data.clinician_id, data.to_sector)
    if data.from_sector is data.to_sector:
        return  # a change of employer within a sector moves nothing between sectors
    policy = await repository.policy(conn, envelope.region)
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
    )


async def _record(
    conn: Conn, move: MoveRecorded, *, envelope: Envelope[Any], emitter: Emitter
) -> None:
    region = envelope.region
    try:
        async with conn.transaction():
            added = await repository.record_move(
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
    await check_alerts(conn, region=region, emitter=emitter, cause=envelope)


async def check_alerts(
    conn: Conn,
    *,
    region: str,
    emitter: Emitter,
    cause: Envelope[Any] | None = None,
    now: datetime | None = None,
) -> list[Sector]:
    """Raise ``sector.drain_alert`` for each sector newly past its alert share, and
    ``sector.drain_cleared`` for each that has fallen back under it.

    An alert stands until the sector falls back under the share, so a sector is
    alerted once per crossing, not on every move. Returns the sectors alerted now.
    """
    now = now or datetime.now(UTC)
    policy = await repository.policy(conn, region)
    balances = await repository.balances(conn, region, now, policy.window_days)
    standing = await repository.alerted_sectors(conn, region)
    raised = []
    for sector, balance in balances.items():
        over = balance.offered_hours > 0 and past_alert(policy, sector, balance)
        if over == (sector in standing):
            continue
        cap = cap_hours(policy, sector, balance)
        figures: dict[str, Any] = {
            "sector": sector,
            "net_out_hours": round(balance.net_out_hours, 2),
            "offered_hours": round(balance.offered_hours, 2),
            "cap_pct": policy.cap_for(sector),
            "used_pct": round(100 * balance.net_out_hours / cap, 1) if cap else 100.0,
            "window_days": policy.window_days,
        }
        await repository.set_alert(conn, region, sector, raised=over)
        event = SectorDrainAlert(**figures) if over else SectorDrainCleared(**figures)
        await emitter.emit(conn, event, region=region, cause=cause)
        log.warning("sector drain alert", region=region, sector=sector.value, raised=over)
        if over:
            raised.append(sector)
    return raised
