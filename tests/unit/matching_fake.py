"""An in-memory matching repository (``services.matching.ports.MatchingRepository``), so
the use cases run without PostgreSQL; and an emitter that keeps what it emits.

Each method mirrors its SQL in ``services/matching/repository.py`` (read it there; the
comments here say only where the fake differs or what it has to imitate), including
the constraints of the migrations the use cases rely on:

- ``offers_once_per_pair``: one offer per (session, clinician, start, end) among offers
  not withdrawn (``UniqueViolationError``);
- ``bookings``: one booking per session (``UniqueViolationError``) and no two bookings
  of one clinician that overlap (the exclusion constraint: ``ExclusionViolationError``);
- ``moves``: unique ids (a transfer redelivered: ``UniqueViolationError``) and at most
  one live move per session (``ON CONFLICT DO NOTHING``).

Rows handed to the use cases (``offer_for_update``, ``reverse_released_moves``) are
dicts standing in for ``asyncpg.Record``: the use cases only index them by column name.
Times are held in UTC, as PostgreSQL's ``timestamptz`` comes back through asyncpg.
Where the SQL calls ``now()`` (the transaction's time) the fake reads its ``now``.
What it can't imitate: concurrency (advisory locks, row locks, isolation): the tests
run one use case at a time, each as if in its own transaction.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, cast

import asyncpg
from pydantic import BaseModel

from services.matching.domain import Commitment, OpenSession, Proposal, Window
from services.matching.policy import OFFERED_HOURS_PER_WEEK, Policy, SectorBalance, window
from services.matching.ports import MatchingRepository
from services.matching.repository import RULE_REACH, Span
from shared.catalogue import Profession, Role, Sector, Skill, Urgency
from shared.db.types import Conn
from shared.events import (
    Envelope,
    SessionAmended,
    SessionCancelled,
    SessionPosted,
    SessionUnfilled,
)
from shared.messaging.emitter import Emitter

Row = dict[str, Any]


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC)


# The zone times are handed back in: UTC, as asyncpg returns ``timestamptz``. A test may
# set Europe/London to try the use cases with times as a driver could return them.
HAND_BACK_IN: tzinfo = UTC


def _out(at: datetime) -> datetime:
    return at.astimezone(HAND_BACK_IN)


def _overlaps_span(starts_at: datetime, ends_at: datetime, span: Span) -> bool:
    return span is None or (starts_at < span[1] and ends_at > span[0])


class FakeConn:
    """Stands in for the connection: the use cases open (nested) transactions on it.

    Every fake write checks its constraints before it changes anything, so a failed
    statement leaves nothing behind, as a rolled-back savepoint would."""

    @asynccontextmanager
    async def transaction(self, **_: Any) -> AsyncIterator[None]:
        yield

    def as_conn(self) -> Conn:
        """Typed as the use cases want it."""
        return cast("Conn", self)


class FakePool:
    """Stands in for the pool the sweep's use cases (``ledger.keep_current``) take."""

    def __init__(self, conn: FakeConn) -> None:
        self._conn = conn

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[FakeConn]:
        yield self._conn

    def as_pool(self) -> asyncpg.Pool:
        """Typed as the use cases want it."""
        return cast("asyncpg.Pool", self)


@dataclass
class FakeRepository:
    """The matching schema's rows as Python objects."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    sessions: dict[uuid.UUID, Row] = field(default_factory=dict)
    availability: dict[uuid.UUID, Row] = field(default_factory=dict)
    withdrawn_windows: set[uuid.UUID] = field(default_factory=set)
    offers: dict[uuid.UUID, Row] = field(default_factory=dict)
    bookings: dict[uuid.UUID, Row] = field(default_factory=dict)  # by session
    moves: dict[uuid.UUID, Row] = field(default_factory=dict)
    policies: dict[str, Policy] = field(default_factory=dict)
    drain_alerts: set[tuple[str, Sector]] = field(default_factory=set)
    plan_requests: dict[str, Row] = field(default_factory=dict)

    # -- helpers -----------------------------------------------------------------------

    def _live_offer(self, o: Row, now: datetime) -> bool:
        return bool(
            o["status"] == "accepted" or (o["status"] == "offered" and o["expires_at"] > now)
        )

    def _session_has_live_offer(self, session_id: uuid.UUID, now: datetime) -> bool:
        return any(
            o["session_id"] == session_id and self._live_offer(o, now) for o in self.offers.values()
        )

    # -- the protocol ------------------------------------------------------------------

    async def lock_region(self, conn: Conn, region: str) -> None:
        del conn, region  # one use case at a time

    async def insert_session(
        self, conn: Conn, region: str, data: SessionPosted | SessionAmended
    ) -> None:
        if data.session_id in self.sessions:
            return
        self.sessions[data.session_id] = {
            "id": data.session_id,
            "region": region,
            "organisation": data.organisation,
            "sector": data.sector.value,
            "role": data.role.value,
            "skills": [k.value for k in data.skills],
            "starts_at": _utc(data.starts_at),
            "ends_at": _utc(data.ends_at),
            "site_name": data.site_name,
            "latitude": data.latitude,
            "longitude": data.longitude,
            "rate_pence_per_hour": data.rate_pence_per_hour,
            "urgency": data.urgency.value,
            "imd_decile": data.imd_decile,
            "place": data.place,
            "status": "open",
            "unmatched_why": None,
        }

    async def insert_window(
        self, conn: Conn, *, region: str, availability_id: uuid.UUID, window: Window
    ) -> None:
        if availability_id in self.withdrawn_windows or availability_id in self.availability:
            return
        self.availability[availability_id] = {
            "id": availability_id,
            "clinician_id": window.clinician_id,
            "region": region,
            "profession": window.profession.value,
            "home_sector": window.home_sector.value,
            "starts_at": _utc(window.starts_at),
            "ends_at": _utc(window.ends_at),
            "skills": [k.value for k in window.skills],
            "latitude": window.latitude,
            "longitude": window.longitude,
            "travel_km": window.travel_km,
            "wtr_opt_out": window.wtr_opt_out,
            "self_employed": window.self_employed,
            "withdrawn": False,
            "offered_sector": None,
        }

    async def sessions_needing_offer(
        self, conn: Conn, region: str, now: datetime, span: Span = None
    ) -> list[OpenSession]:
        return [
            OpenSession(
                id=r["id"],
                organisation=r["organisation"],
                sector=Sector(r["sector"]),
                role=Role(r["role"]),
                starts_at=_out(r["starts_at"]),
                ends_at=_out(r["ends_at"]),
                skills=frozenset(Skill(k) for k in r["skills"]),
                site_name=r["site_name"],
                latitude=r["latitude"],
                longitude=r["longitude"],
                rate_pence_per_hour=r["rate_pence_per_hour"],
                urgency=Urgency(r["urgency"]),
                imd_decile=r["imd_decile"],
                place=r["place"] or "",
            )
            for r in self.sessions.values()
            if r["region"] == region
            and r["status"] == "open"
            and r["starts_at"] > now
            and _overlaps_span(r["starts_at"], r["ends_at"], span)
            and not self._session_has_live_offer(r["id"], now)
        ]

    async def windows(
        self, conn: Conn, region: str, now: datetime, span: Span = None
    ) -> list[Window]:
        return [
            Window(
                clinician_id=r["clinician_id"],
                profession=Profession(r["profession"]),
                home_sector=Sector(r["home_sector"]),
                starts_at=_out(r["starts_at"]),
                ends_at=_out(r["ends_at"]),
                skills=frozenset(Skill(k) for k in r["skills"]),
                latitude=r["latitude"],
                longitude=r["longitude"],
                travel_km=r["travel_km"],
                wtr_opt_out=r["wtr_opt_out"],
                self_employed=r["self_employed"],
            )
            for r in self.availability.values()
            if r["region"] == region
            and r["ends_at"] > now
            and not r["withdrawn"]
            and _overlaps_span(r["starts_at"], r["ends_at"], span)
        ]

    async def commitments(
        self, conn: Conn, region: str, now: datetime, span: Span = None
    ) -> list[Commitment]:
        since = now - RULE_REACH
        booked = {b["offer_id"] for b in self.bookings.values()}
        found = [
            Commitment(b["clinician_id"], _out(b["starts_at"]), _out(b["ends_at"]))
            for b in self.bookings.values()
            if self.offers[b["offer_id"]]["region"] == region
            and b["ends_at"] > since
            and _overlaps_span(b["starts_at"], b["ends_at"], span)
        ]
        found += [
            Commitment(o["clinician_id"], _out(o["starts_at"]), _out(o["ends_at"]))
            for o in self.offers.values()
            if o["region"] == region
            and o["ends_at"] > since
            and (
                (o["status"] == "offered" and o["expires_at"] > now)
                or (o["status"] == "accepted" and o["id"] not in booked)
            )
            and _overlaps_span(o["starts_at"], o["ends_at"], span)
        ]
        return found

    async def tried_pairs(
        self, conn: Conn, region: str, span: Span = None
    ) -> frozenset[tuple[uuid.UUID, uuid.UUID]]:
        found = set()
        for o in self.offers.values():
            s = self.sessions[o["session_id"]]
            if (
                o["region"] == region
                and s["status"] == "open"
                and o["status"] != "withdrawn"
                and o["starts_at"] == s["starts_at"]
                and o["ends_at"] == s["ends_at"]
                and _overlaps_span(s["starts_at"], s["ends_at"], span)
            ):
                found.add((o["session_id"], o["clinician_id"]))
        return frozenset(found)

    async def insert_offer(
        self,
        conn: Conn,
        *,
        offer_id: uuid.UUID,
        region: str,
        proposal: Proposal,
        expires_at: datetime,
    ) -> None:
        session = proposal.session
        key = (session.id, proposal.clinician_id, session.starts_at, session.ends_at)
        if offer_id in self.offers or any(
            (o["session_id"], o["clinician_id"], o["starts_at"], o["ends_at"]) == key
            and o["status"] != "withdrawn"
            for o in self.offers.values()
        ):
            raise asyncpg.UniqueViolationError("offers_once_per_pair")
        self.offers[offer_id] = {
            "id": offer_id,
            "session_id": session.id,
            "clinician_id": proposal.clinician_id,
            "clinician_home_sector": proposal.home_sector.value,
            "region": region,
            "starts_at": _utc(session.starts_at),
            "ends_at": _utc(session.ends_at),
            "expires_at": _utc(expires_at),
            "status": "offered",
            "reasons": list(proposal.reasons),
            "created_at": self.now,
        }
        self.sessions[session.id]["unmatched_why"] = None

    async def still_offerable(self, conn: Conn, proposal: Proposal, now: datetime) -> bool:
        session, clinician = proposal.session, proposal.clinician_id
        start, end = session.starts_at, session.ends_at
        s = self.sessions.get(session.id)
        if s is None or not (
            s["status"] == "open"
            and s["starts_at"] == start
            and s["ends_at"] == end
            and s["starts_at"] > now
            and not self._session_has_live_offer(session.id, now)
        ):
            return False
        for o in self.offers.values():
            if (
                o["session_id"] == session.id
                and o["clinician_id"] == clinician
                and o["status"] != "withdrawn"
                and (o["starts_at"], o["ends_at"]) == (start, end)
            ):
                return False
            if (
                o["clinician_id"] == clinician
                and self._live_offer(o, now)
                and o["starts_at"] < end
                and o["ends_at"] > start
            ):
                return False
        if any(
            b["clinician_id"] == clinician and b["starts_at"] < end and b["ends_at"] > start
            for b in self.bookings.values()
        ):
            return False
        return any(
            w["clinician_id"] == clinician
            and not w["withdrawn"]
            and w["starts_at"] <= start
            and w["ends_at"] >= end
            for w in self.availability.values()
        )

    async def offer_for_update(self, conn: Conn, offer_id: uuid.UUID) -> asyncpg.Record | None:
        o = self.offers.get(offer_id)
        if o is None:
            return None
        s = self.sessions[o["session_id"]]
        row = {
            **o,
            "starts_at": _out(o["starts_at"]),
            "ends_at": _out(o["ends_at"]),
            "expires_at": _out(o["expires_at"]),
            "session_status": s["status"],
            "organisation": s["organisation"],
            "sector": s["sector"],
            "place": s["place"],
        }
        return cast("asyncpg.Record", row)

    async def set_offer_status(self, conn: Conn, offer_id: uuid.UUID, status: str) -> None:
        if offer_id in self.offers:
            self.offers[offer_id]["status"] = status

    async def bookings_near(
        self,
        conn: Conn,
        clinician_id: uuid.UUID,
        span: tuple[datetime, datetime],
        *,
        reach: timedelta,
    ) -> list[tuple[datetime, datetime]]:
        lo, hi = span[0] - reach, span[1] + reach
        return [
            (_out(b["starts_at"]), _out(b["ends_at"]))
            for b in self.bookings.values()
            if b["clinician_id"] == clinician_id and b["starts_at"] < hi and b["ends_at"] > lo
        ]

    async def live_offers_against(
        self, conn: Conn, offer_id: uuid.UUID, now: datetime, *, reach: timedelta
    ) -> list[tuple[uuid.UUID, datetime, datetime]]:
        x = self.offers[offer_id]
        return [
            (o["session_id"], _out(o["starts_at"]), _out(o["ends_at"]))
            for o in self.offers.values()
            if o["id"] != x["id"]
            and o["status"] == "offered"
            and o["expires_at"] > now
            and (
                o["session_id"] == x["session_id"]
                or (
                    o["clinician_id"] == x["clinician_id"]
                    and o["starts_at"] < x["ends_at"] + reach
                    and o["ends_at"] > x["starts_at"] - reach
                )
            )
        ]

    async def working_time_terms(
        self, conn: Conn, clinician_id: uuid.UUID, span: tuple[datetime, datetime]
    ) -> tuple[bool, bool]:
        mine = [w for w in self.availability.values() if w["clinician_id"] == clinician_id]
        if not mine:
            return (False, False)
        # ORDER BY covers DESC, NOT withdrawn DESC, starts_at DESC LIMIT 1
        w = max(
            mine,
            key=lambda w: (
                w["starts_at"] <= span[0] and w["ends_at"] >= span[1],
                not w["withdrawn"],
                w["starts_at"],
            ),
        )
        return (bool(w["wtr_opt_out"]), bool(w["self_employed"]))

    async def book(self, conn: Conn, offer: asyncpg.Record) -> None:
        if offer["session_id"] in self.bookings:
            raise asyncpg.UniqueViolationError("bookings_pkey")
        if any(
            b["clinician_id"] == offer["clinician_id"]
            and b["starts_at"] < offer["ends_at"]
            and b["ends_at"] > offer["starts_at"]
            for b in self.bookings.values()
        ):
            raise asyncpg.ExclusionViolationError("bookings_clinician_id_tstzrange_excl")
        self.bookings[offer["session_id"]] = {
            "session_id": offer["session_id"],
            "offer_id": offer["id"],
            "clinician_id": offer["clinician_id"],
            "starts_at": _utc(offer["starts_at"]),
            "ends_at": _utc(offer["ends_at"]),
            "booked_at": self.now,
        }
        self.sessions[offer["session_id"]]["status"] = "filled"

    async def update_session(
        self, conn: Conn, region: str, data: SessionPosted | SessionAmended
    ) -> bool:
        row = self.sessions.get(data.session_id)
        if row is None:
            await self.insert_session(conn, region, data)
            return True
        new = (
            _utc(data.starts_at),
            _utc(data.ends_at),
            data.role.value,
            sorted(k.value for k in data.skills),
        )
        old = (row["starts_at"], row["ends_at"], row["role"], sorted(row["skills"]))
        changed = new != old or row["organisation"] != data.organisation
        row.update(
            starts_at=new[0],
            ends_at=new[1],
            role=data.role.value,
            skills=[k.value for k in data.skills],
            organisation=data.organisation,
            sector=data.sector.value,
            site_name=data.site_name,
            latitude=data.latitude,
            longitude=data.longitude,
            rate_pence_per_hour=data.rate_pence_per_hour,
            urgency=data.urgency.value,
            imd_decile=data.imd_decile,
            place=data.place,
        )
        return changed

    async def release(self, conn: Conn, session_id: uuid.UUID, *, status: str) -> None:
        self.bookings.pop(session_id, None)
        for o in self.offers.values():
            if o["session_id"] == session_id and o["status"] in ("offered", "accepted"):
                o["status"] = "withdrawn"
        s = self.sessions.get(session_id)
        if s is not None and s["status"] not in ("cancelled", "unfilled"):
            s["status"] = status

    async def close_session(
        self, conn: Conn, region: str, data: SessionCancelled | SessionUnfilled, *, status: str
    ) -> None:
        if data.session_id not in self.sessions:
            self.sessions[data.session_id] = {
                "id": data.session_id,
                "region": region,
                "organisation": data.organisation,
                "sector": data.sector.value,
                "role": "",
                "skills": [],
                "starts_at": _utc(data.starts_at),
                "ends_at": _utc(data.ends_at),
                "site_name": "",
                "latitude": 0.0,
                "longitude": 0.0,
                "rate_pence_per_hour": None,
                "urgency": "routine",
                "imd_decile": None,
                "place": None,
                "status": status,
                "unmatched_why": None,
            }
        await self.release(conn, data.session_id, status=status)

    async def cancel_booking(
        self, conn: Conn, offer_id: uuid.UUID, clinician_id: uuid.UUID
    ) -> bool:
        o = self.offers.get(offer_id)
        offered = (
            o is not None
            and o["clinician_id"] == clinician_id
            and o["status"] in ("offered", "accepted")
        )
        if o is not None and offered:
            o["status"] = "cancelled"
        deleted = next(
            (
                b["session_id"]
                for b in self.bookings.values()
                if b["offer_id"] == offer_id and b["clinician_id"] == clinician_id
            ),
            None,
        )
        if deleted is not None:
            del self.bookings[deleted]
            if self.sessions[deleted]["status"] == "filled":
                self.sessions[deleted]["status"] = "open"
        return deleted is not None or offered

    async def session_span(self, conn: Conn, session_id: uuid.UUID) -> Span:
        s = self.sessions.get(session_id)
        return (s["starts_at"], s["ends_at"]) if s else None

    async def offer_span(self, conn: Conn, offer_id: uuid.UUID) -> Span:
        o = self.offers.get(offer_id)
        return (o["starts_at"], o["ends_at"]) if o else None

    async def withdraw_window(
        self, conn: Conn, availability_id: uuid.UUID, clinician_id: uuid.UUID
    ) -> tuple[datetime, datetime] | None:
        self.withdrawn_windows.add(availability_id)
        w = self.availability.get(availability_id)
        if w is None or w["clinician_id"] != clinician_id:
            return None
        w["withdrawn"] = True
        return (w["starts_at"], w["ends_at"])

    async def withdraw_offers_within(
        self, conn: Conn, clinician_id: uuid.UUID, starts_at: datetime, ends_at: datetime
    ) -> int:
        count = 0
        for o in self.offers.values():
            if (
                o["clinician_id"] == clinician_id
                and o["status"] == "offered"
                and o["starts_at"] >= starts_at
                and o["ends_at"] <= ends_at
            ):
                o["status"] = "withdrawn"
                count += 1
        return count

    async def decline(self, conn: Conn, offer_id: uuid.UUID, clinician_id: uuid.UUID) -> bool:
        o = self.offers.get(offer_id)
        if o is None or o["clinician_id"] != clinician_id or o["status"] != "offered":
            return False
        o["status"] = "declined"
        return True

    async def set_unmatched(
        self, conn: Conn, reasons: dict[uuid.UUID, str]
    ) -> dict[uuid.UUID, str]:
        news = {}
        for session_id, why in reasons.items():
            s = self.sessions.get(session_id)
            if (
                s is not None
                and s["unmatched_why"] != why
                and s["status"] == "open"
                and not self._session_has_live_offer(session_id, self.now)
            ):
                s["unmatched_why"] = why
                news[session_id] = s["organisation"]
        return news

    async def policy(self, conn: Conn, region: str) -> Policy:
        stored = self.policies.get(region)
        if stored is None:
            return Policy(cap_pct={})
        # Only what the tables hold: the window and transfer hours are the defaults.
        return Policy(
            cap_pct=dict(stored.cap_pct),
            home_first=stored.home_first,
            alert_share=stored.alert_share,
            hold_beyond_h=stored.hold_beyond_h,
            cross_sector_within_h=stored.cross_sector_within_h,
        )

    async def balances(
        self, conn: Conn, region: str, now: datetime, window_days: int
    ) -> dict[Sector, SectorBalance]:
        lo, hi = window(now, window_days)
        week = timedelta(days=7)
        weeks = [
            (lo + i * week, min(lo + (i + 1) * week, hi))
            for i in range(math.ceil((hi - lo) / week))
        ]
        per: dict[tuple[str, uuid.UUID, int], float] = defaultdict(float)
        for w in self.availability.values():
            if (
                w["region"] != region
                or w["withdrawn"]
                or w["ends_at"] <= lo
                or w["starts_at"] >= hi
            ):
                continue
            sector = w["offered_sector"] or w["home_sector"]
            for k, (k_lo, k_hi) in enumerate(weeks):
                if w["starts_at"] < k_hi and w["ends_at"] > k_lo:
                    seconds = (min(w["ends_at"], k_hi) - max(w["starts_at"], k_lo)).total_seconds()
                    per[(sector, w["clinician_id"], k)] += seconds / 3600
        hours: dict[Sector, float] = defaultdict(float)
        for (sector, _, k), h in per.items():
            k_lo, k_hi = weeks[k]
            hours[Sector(sector)] += min(h, OFFERED_HOURS_PER_WEEK * ((k_hi - k_lo) / week))
        net: dict[Sector, float] = defaultdict(float)
        for m in self.moves.values():
            if m["region"] == region and m["at"] > lo and m["reversed_at"] is None:
                net[Sector(m["from_sector"])] += m["hours"]
                net[Sector(m["to_sector"])] -= m["hours"]
        for o in self.offers.values():
            s = self.sessions[o["session_id"]]
            if (
                o["region"] == region
                and o["status"] == "offered"
                and o["expires_at"] > now
                and s["sector"] != o["clinician_home_sector"]
            ):
                h = (o["ends_at"] - o["starts_at"]).total_seconds() / 3600
                net[Sector(o["clinician_home_sector"])] += h
                net[Sector(s["sector"])] -= h
        return {s: SectorBalance(hours.get(s, 0.0), net.get(s, 0.0)) for s in Sector}

    async def worked_before(
        self, conn: Conn, region: str, now: datetime
    ) -> frozenset[tuple[uuid.UUID, str]]:
        return frozenset(
            (b["clinician_id"], self.sessions[b["session_id"]]["organisation"])
            for b in self.bookings.values()
            if self.sessions[b["session_id"]]["region"] == region and b["ends_at"] <= now
        )

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
    ) -> bool:
        if session_id is not None and any(
            m["session_id"] == session_id and m["reversed_at"] is None for m in self.moves.values()
        ):
            return False  # ON CONFLICT (session_id) WHERE reversed_at IS NULL DO NOTHING
        if move_id in self.moves:
            raise asyncpg.UniqueViolationError("moves_pkey")
        assert hours > 0, "CHECK (hours > 0)"
        assert from_sector is not to_sector, "CHECK (from_sector <> to_sector)"
        self.moves[move_id] = {
            "id": move_id,
            "region": region,
            "kind": kind,
            "clinician_id": clinician_id,
            "from_sector": from_sector.value,
            "to_sector": to_sector.value,
            "place": place,
            "hours": hours,
            "at": _utc(at),
            "session_id": session_id,
            "reversed_at": None,
            "reversed_why": None,
            "reversal_published": True,
        }
        return True

    async def alerted_sectors(self, conn: Conn, region: str) -> set[Sector]:
        return {sector for r, sector in self.drain_alerts if r == region}

    async def set_alert(self, conn: Conn, region: str, sector: Sector, *, raised: bool) -> None:
        if raised:
            self.drain_alerts.add((region, sector))
        else:
            self.drain_alerts.discard((region, sector))

    async def rehome(
        self, conn: Conn, clinician_id: uuid.UUID, sector: Sector, at: datetime
    ) -> None:
        for w in self.availability.values():
            if w["clinician_id"] == clinician_id and w["starts_at"] < at:
                w["offered_sector"] = w["offered_sector"] or w["home_sector"]
        for w in self.availability.values():
            if w["clinician_id"] == clinician_id:
                w["home_sector"] = sector.value

    async def reverse_released_moves(
        self, conn: Conn, region: str, *, why: str, session_id: uuid.UUID | None = None
    ) -> list[asyncpg.Record]:
        rows = []
        for m in self.moves.values():
            if (
                m["region"] == region
                and (session_id is None or m["session_id"] == session_id)
                and m["kind"] == "session"
                and m["reversed_at"] is None
                and not any(
                    b["session_id"] == m["session_id"] and b["clinician_id"] == m["clinician_id"]
                    for b in self.bookings.values()
                )
            ):
                m["reversed_at"] = self.now
                m["reversed_why"] = why
                rows.append(cast("asyncpg.Record", dict(m)))
        return rows

    async def unpublished_reversals(self, conn: Conn) -> list[asyncpg.Record]:
        rows = []
        for m in self.moves.values():
            if not m["reversal_published"]:
                m["reversal_published"] = True
                rows.append(cast("asyncpg.Record", dict(m)))
        return rows

    async def ledger_regions(self, conn: Conn | asyncpg.Pool, since: datetime) -> list[str]:
        live = {
            m["region"] for m in self.moves.values() if m["at"] > since and not m["reversed_at"]
        }
        lending = {
            o["region"]
            for o in self.offers.values()
            if o["status"] == "offered"
            and o["expires_at"] > self.now  # the SQL's now()
            and self.sessions[o["session_id"]]["sector"] != o["clinician_home_sector"]
        }
        return sorted(live | lending | {region for region, _ in self.drain_alerts})

    async def request_plan(self, conn: Conn, region: str, span: Span, *, due_at: datetime) -> None:
        start, end = span if span else (None, None)
        r = self.plan_requests.get(region)
        if r is None:
            self.plan_requests[region] = {"span_start": start, "span_end": end, "due_at": due_at}
            return
        # A null span (the whole region) absorbs any other; due_at stays as first asked.
        r["span_start"] = (
            None if r["span_start"] is None or start is None else min(r["span_start"], start)
        )
        r["span_end"] = None if r["span_end"] is None or end is None else max(r["span_end"], end)

    async def take_plan_request(self, conn: Conn, region: str) -> tuple[bool, Span]:
        r = self.plan_requests.pop(region, None)
        if r is None:
            return False, None
        if r["span_start"] is None:
            return True, None
        return True, (r["span_start"], r["span_end"])

    # -- for tests ---------------------------------------------------------------------

    def save_policy(self, region: str, policy: Policy) -> None:
        """What ``repository.save_policy`` stores (the tables keep no window length)."""
        self.policies[region] = replace(policy, cap_pct=dict(policy.cap_pct))


@dataclass(frozen=True)
class RecordingEmitter(Emitter):
    """An emitter that keeps each event's envelope instead of writing the outbox."""

    emitted: list[Envelope[Any]] = field(default_factory=list)

    async def emit_many(
        self,
        conn: Conn,
        items: list[tuple[BaseModel, str]],
        *,
        cause: Envelope[Any] | None = None,
    ) -> None:
        for data, region in items:
            await self.emit(conn, data, region=region, cause=cause)

    async def emit(
        self,
        conn: Conn,
        data: BaseModel,
        *,
        region: str,
        cause: Envelope[Any] | None = None,
        correlation_id: uuid.UUID | None = None,
    ) -> Envelope[Any]:
        _, envelope = self.envelope(data, region=region, cause=cause, correlation_id=correlation_id)
        self.emitted.append(envelope)
        return envelope

    def of_type(self, event_type: str) -> list[Envelope[Any]]:
        """The envelopes emitted of one type, in order."""
        return [e for e in self.emitted if e.type == event_type]


def _conforms(fake: FakeRepository) -> MatchingRepository:
    """mypy checks here that the fake keeps the protocol's signatures."""
    return fake
