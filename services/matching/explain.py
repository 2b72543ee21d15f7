"""Offers and gaps explained in plain words, for the clinician and the ICB. No I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from services.matching.domain import OpenSession, Window
from services.matching.policy import Policy, SectorBalance, cap_hours
from shared.catalogue import Sector

if TYPE_CHECKING:
    from services.matching.engine import Why


def words(value: str) -> str:
    """An enum value as words: ``community_pharmacy`` → ``community pharmacy``."""
    return value.replace("_", " ")


@dataclass(frozen=True)
class Context:
    """What the explanations draw on, computed once per plan."""

    sessions: Sequence[OpenSession]
    people: Sequence[Window]
    eligible_counts: Sequence[int]
    policy: Policy
    start_balances: Mapping[Sector, SectorBalance]
    net_out: Mapping[Sector, float]


def reasons(context: Context, s: int, c: int, *, km: float, worked_before: bool) -> tuple[str, ...]:
    """Why this clinician, and what kept others out."""
    session, person = context.sessions[s], context.people[c]
    said = [
        f"As a {words(person.profession)} you may fill a {words(session.role)} session"
        + (" and you hold the skills it needs." if session.skills else "."),
        "You are free for the whole session.",
        f"It is {km:.0f} km from your base, within your {person.travel_km:.0f} km.",
    ]
    if person.home_sector is session.sector:
        said.append("It is in your home sector.")
    else:
        sector = person.home_sector
        cap = cap_hours(context.policy, sector, context.start_balances[sector])
        said.append(
            f"It is outside your home sector ({words(sector)}): nothing in"
            f" {words(sector)} that you could fill is open at that time, and"
            f" {words(sector)}'s net outflow stays within its cap"
            f" ({max(0.0, context.net_out[sector]):.0f} of {cap:.0f} hours over"
            f" the {context.policy.window_days} days either side of today)."
        )
    ranked = []
    if session.urgency == "urgent":
        ranked.append("the session is urgent")
    if session.imd_decile and session.imd_decile <= 3:
        ranked.append(f"it serves a deprived area (IMD decile {session.imd_decile})")
    if worked_before:
        ranked.append(f"you have worked at {session.organisation} before")
    others = context.eligible_counts[s] - 1
    said.append(
        f"{others} other clinician{'s' if others != 1 else ''} could also fill it; you were"
        " chosen"
        + (f" because {', and '.join(ranked)}" if ranked else " for the shortest journey")
        + ", with every session in the region planned together."
    )
    return tuple(said)


def unplaced(context: Context, s: int, why: Why, *, total: int, held: int) -> str:
    """Why a session has no offer, for the ICB and the organisation."""
    from services.matching.engine import Why  # noqa: PLC0415 - the enum lives with the plan

    session = context.sessions[s]
    role = words(session.role)
    if why is Why.NO_ELIGIBLE:
        return (
            f"No clinician in the bank who may fill a {role} session holds its skills, is"
            " free for all of it and is within their travel distance."
        )
    if why is Why.DECLINED_BY_ALL:
        return (
            f"All {total} eligible clinician{'s' if total != 1 else ''} were offered it"
            " and declined, let the offer expire or were booked elsewhere."
        )
    if why is Why.DRAIN_GUARD:
        return (
            f"{held} eligible clinician{'s' if held != 1 else ''} from other sectors"
            f" {'were' if held != 1 else 'was'} held back by the drain guard: their own"
            " sector has open sessions they could fill at that time, lending them"
            " would take their sector past its cap, or the session is further ahead than"
            " moves across sectors are offered (their own sector comes first until then)."
        )
    return (
        "The eligible clinicians were offered other sessions at that time that ranked"
        " higher, or this one would break their working-time limits."
    )
