"""A generated week for a large region, for `fairshare bench matching` (seeded).

Shaped by docs/shared domain figures: five sectors; general practice short of clinical
pharmacists, whom community pharmacists can fill (the "robbing Peter to pay Paul"
story); a deprived core where fewer clinicians live; sessions that overlap (mornings,
afternoons, full days, evenings); a third of clinicians self-employed.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from services.matching.domain import Commitment, OpenSession, Window
from services.matching.policy import SectorBalance
from shared.catalogue import SKILLS_FOR, Profession, Role, Sector, Skill, Urgency

LONDON = ZoneInfo("Europe/London")
CENTRE = (53.48, -2.24)  # Manchester
HALF_LAT, HALF_LON = 0.18, 0.45  # about 40 km by 60 km
MONDAY = date(2027, 3, 1)

S, R, P = Sector, Role, Profession
# Share of the week's sessions per sector, and of each sector's sessions per role.
SECTOR_SHARE = {
    S.GENERAL_PRACTICE: 0.42,
    S.COMMUNITY_PHARMACY: 0.28,
    S.DENTISTRY: 0.12,
    S.OPTOMETRY: 0.08,
    S.COMMUNITY_NURSING: 0.10,
}
ROLE_SHARE = {
    S.GENERAL_PRACTICE: {
        R.GP: 0.36,
        R.PRACTICE_NURSE: 0.16,
        R.CLINICAL_PHARMACIST: 0.30,
        R.ADVANCED_PRACTITIONER: 0.10,
        R.PARAMEDIC: 0.08,
    },
    S.COMMUNITY_PHARMACY: {R.COMMUNITY_PHARMACIST: 0.8, R.PHARMACY_TECHNICIAN: 0.2},
    S.DENTISTRY: {R.DENTIST: 0.5, R.DENTAL_NURSE: 0.35, R.DENTAL_HYGIENIST: 0.15},
    S.OPTOMETRY: {R.OPTOMETRIST: 0.7, R.DISPENSING_OPTICIAN: 0.3},
    S.COMMUNITY_NURSING: {R.COMMUNITY_NURSE: 1.0},
}
# Clinicians per 5,000, by profession and home sector.
PEOPLE = {
    (P.GP, S.GENERAL_PRACTICE): 880,
    (P.PRACTICE_NURSE, S.GENERAL_PRACTICE): 420,
    (P.PRACTICE_NURSE, S.COMMUNITY_NURSING): 330,
    (P.ADVANCED_NURSE_PRACTITIONER, S.GENERAL_PRACTICE): 140,
    (P.PHARMACIST, S.COMMUNITY_PHARMACY): 820,
    (P.PHARMACIST, S.GENERAL_PRACTICE): 150,
    (P.PHARMACY_TECHNICIAN, S.COMMUNITY_PHARMACY): 300,
    (P.PARAMEDIC, S.GENERAL_PRACTICE): 170,
    (P.PHYSIOTHERAPIST, S.GENERAL_PRACTICE): 80,
    (P.DENTIST, S.DENTISTRY): 400,
    (P.DENTAL_NURSE, S.DENTISTRY): 340,
    (P.DENTAL_HYGIENIST, S.DENTISTRY): 130,
    (P.OPTOMETRIST, S.OPTOMETRY): 260,
    (P.DISPENSING_OPTICIAN, S.OPTOMETRY): 120,
}
GP_TIMES = [((8, 0), (12, 10)), ((13, 30), (17, 40)), ((8, 0), (18, 30)), ((18, 30), (21, 30))]
SHOP_TIMES = [((9, 0), (17, 30)), ((9, 0), (13, 0)), ((13, 0), (19, 0)), ((8, 30), (18, 0))]
WINDOWS = [((7, 30), (19, 0))] * 5 + [((7, 30), (13, 0))] * 2 + [((12, 30), (19, 0))] * 2
WINDOWS += [((17, 0), (22, 0))]
PREFIXES = {S.GENERAL_PRACTICE: "A", S.DENTISTRY: "V", S.OPTOMETRY: "W", S.COMMUNITY_NURSING: "R"}


@dataclass(frozen=True)
class Region:
    """One generated week: what the engine and the baselines all see."""

    sessions: list[OpenSession]
    windows: list[Window]
    balances: dict[Sector, SectorBalance]
    commitments: list[Commitment] = field(default_factory=list)
    # (session, clinician) pairs offered before and declined or expired: never again.
    already_tried: frozenset[tuple[uuid.UUID, uuid.UUID]] = frozenset()
    # (clinician, organisation) pairs with a past booking: continuity.
    worked_before: frozenset[tuple[uuid.UUID, str]] = frozenset()


def _at(day: date, hm: tuple[int, int]) -> datetime:
    return datetime(day.year, day.month, day.day, *hm, tzinfo=LONDON).astimezone(UTC)


def _km_from_centre(lat: float, lon: float) -> float:
    dy = (lat - CENTRE[0]) * 111.2
    dx = (lon - CENTRE[1]) * 111.2 * math.cos(math.radians(CENTRE[0]))
    return math.hypot(dx, dy)


def _place(rng: random.Random, *, avoid_core: bool) -> tuple[float, float]:
    """A point in the region; clinicians' homes thin out towards the deprived core."""
    while True:
        lat = CENTRE[0] + rng.uniform(-HALF_LAT, HALF_LAT)
        lon = CENTRE[1] + rng.uniform(-HALF_LON, HALF_LON)
        if not avoid_core or rng.random() < 0.25 + 0.75 * min(1, _km_from_centre(lat, lon) / 12):
            return lat, lon


def _decile(rng: random.Random, lat: float, lon: float) -> int:
    """Deprivation rises towards the centre: decile 1–3 within about 8 km."""
    return max(1, min(10, 1 + int(_km_from_centre(lat, lon) / 3.5) + rng.randint(-1, 1)))


def generate(sessions: int, clinicians: int, seed: int) -> Region:
    """A week of ``sessions`` posted sessions and ``clinicians`` clinicians' windows."""
    rng = random.Random(seed)
    days = [MONDAY + timedelta(days=d) for d in range(6)]  # Monday to Saturday
    made: list[OpenSession] = []
    sites: dict[Sector, list[tuple[str, float, float, int]]] = {}
    for sector, share in SECTOR_SHARE.items():
        count = max(1, round(sessions * share / 25))  # about 25 sessions a site a week
        sites[sector] = []
        for n in range(count):
            lat, lon = _place(rng, avoid_core=False)
            ods = (
                f"F{n:04d}"[:5] if sector is S.COMMUNITY_PHARMACY else f"{PREFIXES[sector]}{n:05d}"
            )
            sites[sector].append((ods, lat, lon, _decile(rng, lat, lon)))
    sectors = list(SECTOR_SHARE)
    weights = list(SECTOR_SHARE.values())
    for _ in range(sessions):
        sector = rng.choices(sectors, weights)[0]
        roles = ROLE_SHARE[sector]
        role = rng.choices(list(roles), list(roles.values()))[0]
        ods, lat, lon, decile = rng.choice(sites[sector])
        day = rng.choice(days) if rng.random() < 0.9 else days[5]
        start, end = rng.choice(GP_TIMES if sector is S.GENERAL_PRACTICE else SHOP_TIMES)
        fillers = [p for (p, _), _n in PEOPLE.items() if role in _roles_of(p)]
        needs: frozenset[Skill] = frozenset()
        if fillers and rng.random() < 0.15:
            common = frozenset.intersection(*(SKILLS_FOR[p] for p in fillers))
            if common:
                needs = frozenset({rng.choice(sorted(common))})
        made.append(
            OpenSession(
                id=uuid.UUID(int=rng.getrandbits(128)),
                organisation=ods,
                sector=sector,
                role=role,
                starts_at=_at(day, start),
                ends_at=_at(day, end),
                skills=needs,
                site_name=ods,
                latitude=lat,
                longitude=lon,
                urgency=Urgency.URGENT if rng.random() < 0.15 else Urgency.ROUTINE,
                imd_decile=decile,
            )
        )
    windows: list[Window] = []
    scale = clinicians / sum(PEOPLE.values())
    people = [key for key, n in PEOPLE.items() for _ in range(round(n * scale))]
    offered: dict[Sector, float] = dict.fromkeys(Sector, 0.0)
    for profession, home in people[:clinicians]:
        who = uuid.UUID(int=rng.getrandbits(128))
        lat, lon = _place(rng, avoid_core=True)
        skills = frozenset(k for k in sorted(SKILLS_FOR[profession]) if rng.random() < 0.6)
        travel = rng.choice([10.0, 15.0, 20.0, 30.0, 30.0, 40.0])
        self_employed, opted_out = rng.random() < 0.3, rng.random() < 0.1
        for day in rng.sample(days, rng.randint(2, 4)):
            start, end = rng.choice(WINDOWS)
            window = Window(
                who,
                profession,
                home,
                _at(day, start),
                _at(day, end),
                skills=skills,
                latitude=lat,
                longitude=lon,
                travel_km=travel,
                wtr_opt_out=opted_out,
                self_employed=self_employed,
            )
            windows.append(window)
            offered[home] += (window.ends_at - window.starts_at).total_seconds() / 3600
    # The rolling 28 days hold four such weeks; community pharmacy has already lent 8%.
    prior = {S.COMMUNITY_PHARMACY: 0.08}
    balances = {
        s: SectorBalance(4 * offered[s], prior.get(s, 0.01) * 4 * offered[s]) for s in Sector
    }
    return Region(made, windows, balances)


def _roles_of(profession: Profession) -> set[Role]:
    from shared.catalogue import ROLE_FILLERS  # noqa: PLC0415

    return {role for role, who in ROLE_FILLERS.items() if profession in who}
