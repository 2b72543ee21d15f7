"""An independent reading of docs/matching.md against a whole region's state: what every
live offer and booking must keep, what the ledger and the drain alerts must say.

It reads the in-memory repository's rows (``matching_fake``) and works everything out
itself, pair by pair, from the specification: not through the repository's queries,
the engine or ``working_time``. Where a figure depends on history the rows don't keep
(which sector a clinician belonged to when, which transfers happened) the test tells it.
"""

from __future__ import annotations

import math
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from services.matching.domain import distance_km
from services.matching.policy import Policy
from shared.catalogue import Profession, Role, Sector, Skill, may_fill
from tests.unit.matching_fake import FakeRepository

LONDON = ZoneInfo("Europe/London")
WEEK = timedelta(days=7)
REST = timedelta(hours=11)
PER_WEEK_H = 60.0  # what one clinician counts towards offered hours in a week
EPS = 1e-6

Row = dict[str, Any]


def _hours(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() / 3600


def _overlap(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


@dataclass(frozen=True)
class Held:
    """A live offer or a booking: time a clinician holds."""

    kind: str  # "offer" or "booking"
    offer_id: uuid.UUID
    session_id: uuid.UUID
    clinician_id: uuid.UUID
    starts_at: datetime
    ends_at: datetime
    home: Sector  # the clinician's home sector when offered
    sector: Sector  # the session's

    @property
    def span(self) -> tuple[datetime, datetime]:
        return (self.starts_at, self.ends_at)

    @property
    def cross(self) -> bool:
        return self.home is not self.sector


@dataclass
class Person:
    """What the test knows of a clinician: their terms and home sector over time."""

    profession: Profession
    home: Sector
    opted_out: bool
    self_employed: bool
    # (when, new home): each transfer, in order.
    moves: list[tuple[datetime, Sector]] = field(default_factory=list)

    def home_at(self, at: datetime) -> Sector:
        home = self.home
        for when, to in self.moves:
            if when <= at:
                home = to
        return home

    @property
    def home_now(self) -> Sector:
        return self.moves[-1][1] if self.moves else self.home


@dataclass(frozen=True)
class Transfer:
    """A transfer the test sent (once, however often delivered)."""

    clinician_id: uuid.UUID
    from_sector: Sector
    to_sector: Sector
    at: datetime


@dataclass
class Region:
    """A region's state as the checker reads it, at ``now``."""

    fake: FakeRepository
    region: str
    now: datetime
    policy: Policy
    people: dict[uuid.UUID, Person]
    transfers: list[Transfer]

    # -- what is held -----------------------------------------------------------------

    def held(self) -> list[Held]:
        """Every booking, and every live offer not booked: each once."""
        fake = self.fake
        booked = {b["offer_id"] for b in fake.bookings.values()}
        found = []
        for o in fake.offers.values():
            if o["region"] != self.region:
                continue
            if o["id"] in booked:
                kind = "booking"
            elif (o["status"] == "offered" and o["expires_at"] > self.now) or o[
                "status"
            ] == "accepted":
                kind = "offer"
            else:
                continue
            found.append(
                Held(
                    kind,
                    o["id"],
                    o["session_id"],
                    o["clinician_id"],
                    o["starts_at"],
                    o["ends_at"],
                    Sector(o["clinician_home_sector"]),
                    Sector(fake.sessions[o["session_id"]]["sector"]),
                )
            )
        return found

    def needing_offer(self) -> list[Row]:
        """Open sessions still to start, with no live offer or booking."""
        held = {h.session_id for h in self.held()}
        return [
            s
            for s in self.fake.sessions.values()
            if s["region"] == self.region
            and s["status"] == "open"
            and s["starts_at"] > self.now
            and s["id"] not in held
        ]

    def tried(self, session: Row, clinician: uuid.UUID) -> bool:
        """Offered this session as it stands before (and not withdrawn)."""
        return any(
            o["session_id"] == session["id"]
            and o["clinician_id"] == clinician
            and o["status"] != "withdrawn"
            and (o["starts_at"], o["ends_at"]) == (session["starts_at"], session["ends_at"])
            for o in self.fake.offers.values()
        )

    def eligible(self, session: Row, clinician: uuid.UUID, busy: Iterable[Held]) -> bool:
        """Rules 1-6 of an eligible pair (docs/matching.md)."""
        span = (session["starts_at"], session["ends_at"])
        if self.tried(session, clinician) or any(_overlap(span, h.span) for h in busy):
            return False
        for w in self.fake.availability.values():
            if (
                w["clinician_id"] == clinician
                and w["region"] == self.region
                and not w["withdrawn"]
                and w["starts_at"] <= span[0]
                and w["ends_at"] >= span[1]
                and session["role"]
                and may_fill(Profession(w["profession"]), Role(session["role"]))
                and {Skill(k) for k in session["skills"]} <= {Skill(k) for k in w["skills"]}
                and distance_km(
                    session["latitude"], session["longitude"], w["latitude"], w["longitude"]
                )
                <= w["travel_km"]
            ):
                return True
        return False

    # -- the drain guard's figures ----------------------------------------------------

    def offered(self) -> dict[Sector, float]:
        """Hours offered over the window, 60 h a week per clinician at most, to the
        sector the clinician belonged to when the window began."""
        days = self.policy.window_days
        lo, hi = self.now - timedelta(days=days), self.now + timedelta(days=days)
        weeks = []
        start = lo
        while start < hi:
            weeks.append((start, min(start + WEEK, hi)))
            start += WEEK
        per: dict[tuple[Sector, uuid.UUID, int], float] = defaultdict(float)
        for w in self.fake.availability.values():
            if w["region"] != self.region or w["withdrawn"]:
                continue
            sector = self.people[w["clinician_id"]].home_at(w["starts_at"])
            for k, (a, b) in enumerate(weeks):
                inside = _hours(max(a, w["starts_at"]), min(b, w["ends_at"]))
                if inside > 0:
                    per[(sector, w["clinician_id"], k)] += inside
        hours: dict[Sector, float] = defaultdict(float)
        for (sector, _, k), h in per.items():
            a, b = weeks[k]
            hours[sector] += min(h, PER_WEEK_H * (b - a) / WEEK)
        return hours

    def expected_moves(self) -> Counter[tuple[Any, ...]]:
        """The ledger as it must be: each standing cross-sector booking, each transfer."""
        moves: Counter[tuple[Any, ...]] = Counter()
        for h in self.held():
            if h.kind == "booking" and h.cross:
                hours = round(_hours(h.starts_at, h.ends_at), 6)
                key = (
                    "session",
                    h.clinician_id,
                    h.home,
                    h.sector,
                    hours,
                    h.starts_at,
                    h.session_id,
                )
                moves[key] += 1
        for t in self.transfers:
            hours = round(self.policy.transfer_hours, 6)
            moves[("transfer", t.clinician_id, t.from_sector, t.to_sector, hours, t.at, None)] += 1
        return moves

    def ledger(self) -> Counter[tuple[Any, ...]]:
        """The ledger's live moves."""
        return Counter(
            (
                m["kind"],
                m["clinician_id"],
                Sector(m["from_sector"]),
                Sector(m["to_sector"]),
                round(m["hours"], 6),
                m["at"],
                m["session_id"],
            )
            for m in self.fake.moves.values()
            if m["region"] == self.region and m["reversed_at"] is None
        )

    def net_out(self) -> dict[Sector, float]:
        """Out minus in over the window: the moves the ledger must hold (not the moves it
        holds: that is another property) counting after the window's start, and live
        cross-sector offers as if accepted."""
        since = self.now - timedelta(days=self.policy.window_days)
        net: dict[Sector, float] = defaultdict(float)
        for kind, _, src, dst, hours, at, _ in self.expected_moves().elements():
            del kind
            if at > since:
                net[src] += hours
                net[dst] -= hours
        for h in self.held():
            if (
                h.kind == "offer"
                and h.cross
                and self.fake.offers[h.offer_id]["status"] == "offered"
            ):
                hours = _hours(h.starts_at, h.ends_at)
                net[h.home] += hours
                net[h.sector] -= hours
        return net

    def cap(self, sector: Sector, offered: dict[Sector, float]) -> float:
        return self.policy.cap_for(sector) / 100 * offered.get(sector, 0.0)

    # -- the properties ---------------------------------------------------------------

    def rules_broken(self) -> list[str]:
        """One clinician per session; per clinician, no overlap, 11 hours' rest between
        working days and 48 hours in any 7 days (the self-employed excepted; 48 hours
        for those who did not opt out), over everything they hold."""
        found = []
        held = self.held()
        for session, n in Counter(h.session_id for h in held).items():
            if n > 1:
                found.append(f"session {session} held by {n} offers/bookings")
        mine: dict[uuid.UUID, list[Held]] = defaultdict(list)
        for h in held:
            mine[h.clinician_id].append(h)
        for clinician, items in mine.items():
            person = self.people[clinician]
            items.sort(key=lambda h: h.starts_at)
            for i, a in enumerate(items):
                for b in items[i + 1 :]:
                    if _overlap(a.span, b.span):
                        found.append(f"{clinician} holds overlapping {a.kind} and {b.kind}")
                    elif not person.self_employed and _short_rest(a.span, b.span):
                        found.append(f"{clinician}: under 11 hours' rest ({a.kind}, {b.kind})")
            if not (person.self_employed or person.opted_out):
                worst = _busiest_week([h.span for h in items])
                if worst > 48 + EPS:
                    found.append(f"{clinician}: {worst:.1f} hours in 7 days")
        return found

    def home_first_broken(self, made: list[tuple[Held, list[Held]]]) -> list[str]:
        """For each cross-sector offer just made (with what was held before the plan
        that made it): no session of the clinician's home sector that overlaps it, that
        they were eligible for then and that nobody holds now, is left open."""
        if not self.policy.home_first:
            return []
        found = []
        open_now = self.needing_offer()
        for h, before in made:
            if not h.cross:
                continue
            busy = [b for b in before if b.clinician_id == h.clinician_id]
            for s in open_now:
                if (
                    Sector(s["sector"]) is h.home
                    and _overlap(h.span, (s["starts_at"], s["ends_at"]))
                    and self.eligible(s, h.clinician_id, busy)
                ):
                    found.append(f"home first: {h.clinician_id} offered out, {s['id']} left open")
        return found

    def caps_broken(self, made: list[Held]) -> list[str]:
        """Each sector that just lent (a cross-sector offer or booking made) is within its
        cap: net outflow at most cap% of hours offered over the window."""
        offered, net = self.offered(), self.net_out()
        found = []
        for sector in {h.home for h in made if h.cross}:
            if net.get(sector, 0.0) > self.cap(sector, offered) + EPS:
                found.append(
                    f"{sector} lent past its cap: {net[sector]:.2f} h out,"
                    f" cap {self.cap(sector, offered):.2f} h"
                )
        return found

    def ledger_wrong(self) -> list[str]:
        """The ledger's live moves are exactly the standing cross-sector bookings and
        the transfers."""
        want, have = self.expected_moves(), self.ledger()
        if want == have:
            return []
        return [f"ledger: missing {dict(want - have)}, phantom {dict(have - want)}"]

    def alerts_wrong(self) -> list[str]:
        """A sector's alert stands exactly while its net outflow is past the alert share
        of its cap (a sector with no hours offered is never alerted)."""
        offered, net = self.offered(), self.net_out()
        standing = {sector for region, sector in self.fake.drain_alerts if region == self.region}
        found = []
        for sector in Sector:
            line = self.policy.alert_share * self.cap(sector, offered)
            n = net.get(sector, 0.0)
            if offered.get(sector, 0.0) > 0 and abs(n - line) < EPS:
                continue  # on the line: floating point decides, not the rule
            due = offered.get(sector, 0.0) > 0 and n > line
            if due != (sector in standing):
                state = "stands" if sector in standing else "is missing"
                found.append(f"{sector}'s alert {state}: net out {n:.2f} h, alert at {line:.2f} h")
        return found

    def left_open(self, before: list[Held]) -> list[str]:
        """After a whole-region plan (``before``: what was held before it): no session is
        left without an offer that some clinician could have been given too under every
        rule (filling comes first). Home first asks, as for the plan, whether they were
        eligible for an open home session against what they held before it."""
        found = []
        held = self.held()
        offered, net = self.offered(), self.net_out()
        open_now = self.needing_offer()
        for s in open_now:
            span = (s["starts_at"], s["ends_at"])
            for clinician, person in self.people.items():
                busy = [h for h in held if h.clinician_id == clinician]
                if not self.eligible(s, clinician, busy):
                    continue
                if not person.self_employed:
                    if any(_short_rest(span, b.span) for b in busy):
                        continue
                    if (
                        not person.opted_out
                        and _busiest_week_with(span, [b.span for b in busy]) > 48 + EPS
                    ):
                        continue
                home, sector = person.home_now, Sector(s["sector"])
                if home is not sector:
                    room = self.cap(home, offered) - net.get(home, 0.0)
                    if room - _hours(*span) < EPS:
                        continue
                    earlier = [h for h in before if h.clinician_id == clinician]
                    if self.policy.home_first and any(
                        Sector(h["sector"]) is home
                        and _overlap(span, (h["starts_at"], h["ends_at"]))
                        and self.eligible(h, clinician, earlier)
                        for h in open_now
                    ):
                        continue
                found.append(f"{s['id']} left open though {clinician} could take it")
        return found


def _short_rest(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> bool:
    """Two shifts starting on different London dates, less than 11 hours apart."""
    first, second = sorted((a, b))
    if second[0] < first[1]:
        return False
    if first[0].astimezone(LONDON).date() == second[0].astimezone(LONDON).date():
        return False
    # Real time: both in UTC (aware datetimes of one zone subtract by the wall clock).
    return second[0].timestamp() - first[1].timestamp() < REST.total_seconds()


def _week_hours(spans: list[tuple[datetime, datetime]], t: float) -> float:
    end = t + WEEK.total_seconds()
    return sum(max(0.0, min(e.timestamp(), end) - max(s.timestamp(), t)) for s, e in spans) / 3600


def _busiest_week(spans: list[tuple[datetime, datetime]]) -> float:
    """The most hours in any 7 days (the busiest starts at a shift's start, or 7 days
    before a shift's end)."""
    starts = [s.timestamp() for s, _ in spans] + [
        e.timestamp() - WEEK.total_seconds() for _, e in spans
    ]
    return max((_week_hours(spans, t) for t in starts), default=0.0)


def _busiest_week_with(
    new: tuple[datetime, datetime], spans: list[tuple[datetime, datetime]]
) -> float:
    """The most hours in any 7 days that include ``new``, with it."""
    every = [new, *spans]
    lo, hi = new[0].timestamp(), new[1].timestamp()
    week = WEEK.total_seconds()
    starts = [s.timestamp() for s, _ in every] + [e.timestamp() - week for _, e in every]
    return max(
        (_week_hours(every, t) for t in starts if t < hi and t + week > lo),
        default=math.inf,
    )
