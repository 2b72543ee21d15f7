"""Sessions at risk now: starting within 48 hours and still open, each with why matching
has not filled it, in its own words. No I/O.

Matching says why a session has no offer (``session.unmatched``) when the reason changes,
and clears its reason when it makes an offer; the bank says when a clinician gives a
booking up. So the latest of those facts about an open session says where it stands.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from services.monitor.domain import SessionFacts, current, released_at, sector_label

# The two bands the page lists: what starts within a day needs a call today.
SOON = timedelta(hours=24)
HORIZON = timedelta(hours=48)


class Status(StrEnum):
    """Where an open session stands with matching."""

    NO_OFFER = "no_offer"  # matching said why it has no offer (``why``)
    OFFERED = "offered"  # offered to a clinician since matching's last reason
    GIVEN_UP = "given_up"  # a booking given up or released, not planned again yet
    WAITING = "waiting"  # matching has said nothing of it yet (or since it changed)


# Matching's reasons (services/matching/engine.py, ``Why``), as the page names them;
# matching's own sentence about the session goes beside it.
WHY_LABELS: dict[str, str] = {
    "no_eligible_clinician": "No eligible clinician",
    "held_by_drain_guard": "Held by the drain guard",
    "declined_by_all": "Declined by everyone offered it",
    "clinicians_taken": "Clinicians booked elsewhere",
}
STATUS_LABELS: dict[Status, str] = {
    Status.OFFERED: "Offered, awaiting an answer",
    Status.GIVEN_UP: "Booking given up or released, to be offered again",
    Status.WAITING: "Not planned yet",
}


def role_words(role: str | None) -> str:
    """A role as the page names it: ``gp`` → "GP", ``practice_nurse`` → "practice nurse"."""
    if not role:
        return "session"
    return "GP" if role == "gp" else role.replace("_", " ")


def why_label(why: str) -> str:
    """Plain words for one of matching's reasons; an unknown one spelt out from its code."""
    return WHY_LABELS.get(why) or why.replace("_", " ").capitalize()


@dataclass(frozen=True, slots=True)
class Standing:
    """What matching last did about an open session, and since when."""

    status: Status
    since: datetime | None = None
    why: str | None = None  # with NO_OFFER: matching's code
    detail: str | None = None  # with NO_OFFER: matching's sentence

    @property
    def label(self) -> str:
        """The status in plain words (matching's reason, for NO_OFFER)."""
        if self.status is Status.NO_OFFER and self.why is not None:
            return why_label(self.why)
        return STATUS_LABELS[self.status]

    @property
    def reason_key(self) -> str:
        """What the page counts sessions by: matching's reason, else the status."""
        return self.why if self.status is Status.NO_OFFER and self.why else self.status.value


def standing(facts: SessionFacts) -> Standing:
    """The latest of matching's reasons, its offers, the bookings given up, and the
    changes that release a booking and withdraw offers (matching plans the session
    again after one: a booking released, or "not planned yet" if none was made).

    On a tie the order below wins (a reason said at the instant of an offer is older
    news than the offer: matching clears its reason when it offers).
    """
    fills = [f.at for f in facts.filled.values()]
    said: list[tuple[datetime, int, Standing]] = [
        (u.at, 0, Standing(Status.NO_OFFER, u.at, u.why, u.detail))
        for u in facts.unmatched.values()
    ]
    said += [(g.at, 1, Standing(Status.GIVEN_UP, g.at)) for g in facts.given_up.values()]
    said += [
        (at, 1, Standing(Status.GIVEN_UP if any(f < at for f in fills) else Status.WAITING, at))
        for at in released_at(facts)
    ]
    said += [(o.at, 2, Standing(Status.OFFERED, o.at)) for o in facts.offered.values()]
    if not said:
        return Standing(Status.WAITING)
    return max(said, key=lambda item: (item[0], item[1]))[2]


@dataclass(frozen=True, slots=True)
class AtRisk:
    """One open session starting soon."""

    session_id: uuid.UUID
    region: str
    sector: str
    organisation: str
    site_name: str | None
    role: str | None
    starts_at: datetime
    ends_at: datetime
    within_24h: bool
    standing: Standing

    @property
    def sector_label(self) -> str:
        """The sector in plain words."""
        return sector_label(self.sector)

    @property
    def hours(self) -> float:
        """The session's length in hours."""
        return round((self.ends_at - self.starts_at).total_seconds() / 3600, 2)


def at_risk(
    session_id: uuid.UUID, region: str, sector: str, facts: SessionFacts, *, now: datetime
) -> AtRisk | None:
    """The session as an at-risk line, if it starts within ``HORIZON`` of ``now``; the
    caller has checked it is open (not filled, cancelled or unfilled)."""
    said = current(facts)
    if said is None or not now <= said.starts_at < now + HORIZON:
        return None
    return AtRisk(
        session_id=session_id,
        region=region,
        sector=sector,
        organisation=said.organisation,
        site_name=said.site_name,
        role=said.role,
        starts_at=said.starts_at,
        ends_at=said.ends_at,
        within_24h=said.starts_at < now + SOON,
        standing=standing(facts),
    )


@dataclass(frozen=True, slots=True)
class RegionRisk:
    """One region's at-risk sessions: how many start within 24 and 48 hours, how many
    for each reason, and the first ``shown`` of them by start."""

    region: str
    within_24h: int
    within_48h: int
    reasons: tuple[tuple[str, str, int], ...]  # (key, label, sessions), most first
    sessions: tuple[AtRisk, ...]


def summarise_risk(
    lines: Iterable[AtRisk], *, regions: Iterable[str], shown: int
) -> list[RegionRisk]:
    """Each of ``regions`` (code order, a region with none listed too), its sessions by
    start (then id, so the order is stable), counted in full and listed to ``shown``."""
    by_region: dict[str, list[AtRisk]] = {}
    for line in lines:
        by_region.setdefault(line.region, []).append(line)
    out = []
    for region in sorted(set(regions)):
        found = sorted(by_region.get(region, []), key=lambda a: (a.starts_at, a.session_id))
        counted = Counter(a.standing.reason_key for a in found)
        labels = {a.standing.reason_key: a.standing.label for a in found}
        reasons = tuple(
            (key, labels[key], n)
            for key, n in sorted(counted.items(), key=lambda kv: (-kv[1], kv[0]))
        )
        out.append(
            RegionRisk(
                region=region,
                within_24h=sum(a.within_24h for a in found),
                within_48h=len(found),
                reasons=reasons,
                sessions=tuple(found[:shown]),
            )
        )
    return out


def reason_words(reasons: Sequence[tuple[str, str, int]]) -> str:
    """ "3 no eligible clinician, 1 offered, awaiting an answer" (for a screen reader's
    summary of the list)."""
    return ", ".join(f"{n} {label.lower()}" for _, label, n in reasons)
