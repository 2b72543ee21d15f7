"""What the matching use cases need of their storage, as a protocol.

``services.matching.repository`` (the module itself, asyncpg and SQL) is the running
service's implementation; the use cases (``planning``, ``ledger``, ``handlers``) take it
as a parameter that defaults to it, so that they can also run on an in-memory one (the
unit tests' fake) without PostgreSQL. Same names and signatures as the module, ``conn``
first; only what the use cases call (the planner's and the sweep's scheduling queries
on the pool, ``due_plan_regions``, ``expired_offer_spans`` and
``regions_with_open_sessions``, are not here).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Protocol

import asyncpg

from services.matching.domain import Commitment, OpenSession, Proposal, Window
from services.matching.policy import Policy, SectorBalance
from services.matching.repository import Span
from shared.catalogue import Sector
from shared.db.types import Conn
from shared.events import SessionAmended, SessionCancelled, SessionPosted, SessionUnfilled


class MatchingRepository(Protocol):  # pragma: no cover - a protocol: signatures only
    """The matching schema as the use cases use it."""

    async def lock_region(self, conn: Conn, region: str) -> None: ...

    async def insert_session(
        self, conn: Conn, region: str, data: SessionPosted | SessionAmended
    ) -> None: ...

    async def insert_window(
        self, conn: Conn, *, region: str, availability_id: uuid.UUID, window: Window
    ) -> None: ...

    async def sessions_needing_offer(
        self, conn: Conn, region: str, now: datetime, span: Span = None
    ) -> list[OpenSession]: ...

    async def windows(
        self, conn: Conn, region: str, now: datetime, span: Span = None
    ) -> list[Window]: ...

    async def commitments(
        self, conn: Conn, region: str, now: datetime, span: Span = None
    ) -> list[Commitment]: ...

    async def tried_pairs(
        self, conn: Conn, region: str, span: Span = None
    ) -> frozenset[tuple[uuid.UUID, uuid.UUID]]: ...

    async def insert_offer(
        self,
        conn: Conn,
        *,
        offer_id: uuid.UUID,
        region: str,
        proposal: Proposal,
        expires_at: datetime,
    ) -> None: ...

    async def still_offerable(self, conn: Conn, proposal: Proposal, now: datetime) -> bool: ...

    async def offer_for_update(self, conn: Conn, offer_id: uuid.UUID) -> asyncpg.Record | None: ...

    async def set_offer_status(self, conn: Conn, offer_id: uuid.UUID, status: str) -> None: ...

    async def bookings_near(
        self,
        conn: Conn,
        clinician_id: uuid.UUID,
        span: tuple[datetime, datetime],
        *,
        reach: timedelta,
    ) -> list[tuple[datetime, datetime]]: ...

    async def live_offers_against(
        self, conn: Conn, offer_id: uuid.UUID, now: datetime, *, reach: timedelta
    ) -> list[tuple[uuid.UUID, datetime, datetime]]: ...

    async def working_time_terms(
        self, conn: Conn, clinician_id: uuid.UUID, span: tuple[datetime, datetime]
    ) -> tuple[bool, bool]: ...

    async def book(self, conn: Conn, offer: asyncpg.Record) -> None: ...

    async def update_session(
        self, conn: Conn, region: str, data: SessionPosted | SessionAmended
    ) -> bool: ...

    async def release(self, conn: Conn, session_id: uuid.UUID, *, status: str) -> None: ...

    async def close_session(
        self, conn: Conn, region: str, data: SessionCancelled | SessionUnfilled, *, status: str
    ) -> None: ...

    async def cancel_booking(
        self, conn: Conn, offer_id: uuid.UUID, clinician_id: uuid.UUID
    ) -> bool: ...

    async def session_span(self, conn: Conn, session_id: uuid.UUID) -> Span: ...

    async def offer_span(self, conn: Conn, offer_id: uuid.UUID) -> Span: ...

    async def withdraw_window(
        self, conn: Conn, availability_id: uuid.UUID, clinician_id: uuid.UUID
    ) -> tuple[datetime, datetime] | None: ...

    async def withdraw_offers_within(
        self, conn: Conn, clinician_id: uuid.UUID, starts_at: datetime, ends_at: datetime
    ) -> int: ...

    async def decline(self, conn: Conn, offer_id: uuid.UUID, clinician_id: uuid.UUID) -> bool: ...

    async def set_unmatched(
        self, conn: Conn, reasons: dict[uuid.UUID, str]
    ) -> dict[uuid.UUID, str]: ...

    async def policy(self, conn: Conn, region: str) -> Policy: ...

    async def balances(
        self, conn: Conn, region: str, now: datetime, window_days: int
    ) -> dict[Sector, SectorBalance]: ...

    async def worked_before(
        self, conn: Conn, region: str, now: datetime
    ) -> frozenset[tuple[uuid.UUID, str]]: ...

    async def record_move(
        self,
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
    ) -> bool: ...

    async def alerted_sectors(self, conn: Conn, region: str) -> set[Sector]: ...

    async def set_alert(self, conn: Conn, region: str, sector: Sector, *, raised: bool) -> None: ...

    async def rehome(
        self, conn: Conn, clinician_id: uuid.UUID, sector: Sector, at: datetime
    ) -> None: ...

    async def reverse_released_moves(
        self, conn: Conn, region: str, *, why: str, session_id: uuid.UUID | None = None
    ) -> list[asyncpg.Record]: ...

    async def unpublished_reversals(self, conn: Conn) -> list[asyncpg.Record]: ...

    async def ledger_regions(self, conn: Conn | asyncpg.Pool, since: datetime) -> list[str]: ...

    async def request_plan(
        self, conn: Conn, region: str, span: Span, *, due_at: datetime
    ) -> None: ...

    async def take_plan_request(self, conn: Conn, region: str) -> tuple[bool, Span]: ...
