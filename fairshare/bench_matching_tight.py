"""The `tight` family of `fairshare bench matching`: a fortnight where every rule binds.

Where the default week has ample clinicians, this one is built so that each rule
decides something:
- supply about equal to demand per profession: clinicians are drawn per session's
  role, about one clinician-day of free time per session;
- few candidates: short travel (5–15 km) over a larger area, so a session has at
  most about 20 eligible clinicians;
- the drain guard: community pharmacy starts near its cap lending to general practice,
  general practice near its own lending nurses to community nursing (opposing flows),
  and dentistry over its cap (it lends no one until someone moves in); a few
  clinicians were transferred between sectors (charged to the balances as the ledger
  does, 150 hours each);
- 30–60% of each clinician's time already booked (commitments);
- pairs already tried (5%: declined or expired before) and continuity (past bookings
  at nearby organisations);
- evening and 12-hour sessions over long windows on five or six days, so 11 hours'
  rest and 48 hours in 7 days bind;
- a fortnight from Monday 22 March 2027 across the clocks going forward (28 March).
"""

from __future__ import annotations

import random
import uuid
from datetime import date, timedelta

from fairshare.bench_matching_region import (
    CENTRE,
    PREFIXES,
    ROLE_SHARE,
    SECTOR_SHARE,
    Region,
    _at,
    _decile,
)
from services.matching.domain import Commitment, OpenSession, Window
from services.matching.eligibility import find_pairs
from services.matching.policy import SectorBalance
from shared.catalogue import ROLE_FILLERS, SKILLS_FOR, Profession, Sector, Urgency

S, P = Sector, Profession
FIRST_DAY = date(2027, 3, 22)  # a Monday; the clocks go forward on Sunday 28 March
DAYS = 14
HALF_LAT, HALF_LON = 0.30, 0.70  # about 65 km by 95 km
SESSION_TIMES = [
    ((8, 0), (12, 30)),
    ((13, 0), (18, 0)),
    ((8, 0), (20, 0)),  # a 12-hour day
    ((18, 0), (22, 0)),  # an evening: rest binds before the next morning
    ((7, 0), (19, 0)),
]
WINDOW_TIMES = [((7, 0), (22, 0)), ((7, 0), (20, 0)), ((8, 0), (18, 0))]
# Who lives in which sector, per profession (the rest of a profession's people live in
# its usual sector): pharmacists in community pharmacy and general practice, nurses in
# general practice and community nursing, so flows run both ways.
HOMES = {
    P.PHARMACIST: [(S.COMMUNITY_PHARMACY, 0.75), (S.GENERAL_PRACTICE, 0.25)],
    P.PRACTICE_NURSE: [(S.GENERAL_PRACTICE, 0.6), (S.COMMUNITY_NURSING, 0.4)],
    P.ADVANCED_NURSE_PRACTITIONER: [(S.GENERAL_PRACTICE, 0.7), (S.COMMUNITY_NURSING, 0.3)],
    P.PARAMEDIC: [(S.GENERAL_PRACTICE, 1.0)],
    P.PHYSIOTHERAPIST: [(S.GENERAL_PRACTICE, 1.0)],
    P.GP: [(S.GENERAL_PRACTICE, 1.0)],
    P.PHARMACY_TECHNICIAN: [(S.COMMUNITY_PHARMACY, 1.0)],
    P.DENTIST: [(S.DENTISTRY, 1.0)],
    P.DENTAL_NURSE: [(S.DENTISTRY, 1.0)],
    P.DENTAL_HYGIENIST: [(S.DENTISTRY, 1.0)],
    P.OPTOMETRIST: [(S.OPTOMETRY, 1.0)],
    P.DISPENSING_OPTICIAN: [(S.OPTOMETRY, 1.0)],
}
# Each sector's net outflow at the start, as a share of its offered hours (caps 10%).
START_DRAIN = {
    S.COMMUNITY_PHARMACY: 0.085,
    S.GENERAL_PRACTICE: 0.088,
    S.COMMUNITY_NURSING: -0.05,
    S.DENTISTRY: 0.104,
    S.OPTOMETRY: 0.0,
}
TRIED = 0.05  # share of eligible pairs offered before and declined or expired


def _place(rng: random.Random) -> tuple[float, float]:
    return (
        CENTRE[0] + rng.uniform(-HALF_LAT, HALF_LAT),
        CENTRE[1] + rng.uniform(-HALF_LON, HALF_LON),
    )


def _sessions(rng: random.Random, count: int) -> list[OpenSession]:
    days = [FIRST_DAY + timedelta(days=d) for d in range(DAYS) if d % 7 != 6]  # no Sundays
    sites: dict[Sector, list[tuple[str, float, float, int]]] = {}
    for sector, share in SECTOR_SHARE.items():
        sites[sector] = []
        for n in range(max(1, round(count * share / 40))):
            lat, lon = _place(rng)
            ods = (
                f"F{n:04d}"[:5] if sector is S.COMMUNITY_PHARMACY else f"{PREFIXES[sector]}{n:05d}"
            )
            sites[sector].append((ods, lat, lon, _decile(rng, lat, lon)))
    made = []
    for _ in range(count):
        sector = rng.choices(list(SECTOR_SHARE), list(SECTOR_SHARE.values()))[0]
        roles = ROLE_SHARE[sector]
        role = rng.choices(list(roles), list(roles.values()))[0]
        ods, lat, lon, decile = rng.choice(sites[sector])
        start, end = rng.choice(SESSION_TIMES)
        day = rng.choice(days)
        made.append(
            OpenSession(
                id=uuid.UUID(int=rng.getrandbits(128)),
                organisation=ods,
                sector=sector,
                role=role,
                starts_at=_at(day, start),
                ends_at=_at(day, end),
                site_name=ods,
                latitude=lat,
                longitude=lon,
                urgency=Urgency.URGENT if rng.random() < 0.2 else Urgency.ROUTINE,
                imd_decile=decile,
            )
        )
    return made


def generate(sessions: int, clinicians: int, seed: int) -> Region:
    """A fortnight of ``sessions`` sessions; ``clinicians`` is ignored (supply is drawn
    to match demand, about one clinician per session's worth of free time)."""
    del clinicians
    rng = random.Random(seed)
    made = _sessions(rng, sessions)
    days = [FIRST_DAY + timedelta(days=d) for d in range(DAYS)]
    windows: list[Window] = []
    commitments: list[Commitment] = []
    offered: dict[Sector, float] = dict.fromkeys(Sector, 0.0)
    orgs_near: list[tuple[str, float, float]] = [
        (s.organisation, s.latitude, s.longitude) for s in made
    ]
    worked: set[tuple[uuid.UUID, str]] = set()
    # One clinician per ~5 sessions of demand, each offering 5 or 6 long days a week with
    # 30 to 60% of it already booked: free time about equal to the sessions' hours.
    people = max(1, sessions // 3)
    for _ in range(people):
        session = rng.choice(made)
        profession = rng.choice(sorted(ROLE_FILLERS[session.role]))
        homes = HOMES.get(profession, [(session.sector, 1.0)])
        home = rng.choices([h for h, _ in homes], [w for _, w in homes])[0]
        who = uuid.UUID(int=rng.getrandbits(128))
        lat = session.latitude + rng.uniform(-0.05, 0.05)
        lon = session.longitude + rng.uniform(-0.08, 0.08)
        skills = frozenset(k for k in sorted(SKILLS_FOR[profession]) if rng.random() < 0.6)
        travel = rng.choice([8.0, 10.0, 12.0, 15.0, 20.0])
        self_employed, opted_out = rng.random() < 0.3, rng.random() < 0.05
        booked = rng.uniform(0.3, 0.6)
        for day in days:
            if day.weekday() == 6 or rng.random() < 0.2:
                continue
            start, end = rng.choice(WINDOW_TIMES)
            begins, ends = _at(day, start), _at(day, end)
            windows.append(
                Window(
                    who,
                    profession,
                    home,
                    begins,
                    ends,
                    skills=skills,
                    latitude=lat,
                    longitude=lon,
                    travel_km=travel,
                    wtr_opt_out=opted_out,
                    self_employed=self_employed,
                )
            )
            offered[home] += (ends - begins).total_seconds() / 3600
            if rng.random() < booked:
                # A booking from before: a morning or an afternoon of the window.
                half = (ends - begins) / 2
                at = begins if rng.random() < 0.5 else begins + half
                commitments.append(Commitment(who, at, at + half))
        for ods, olat, olon in rng.sample(orgs_near, k=min(3, len(orgs_near))):
            if abs(olat - lat) < 0.1 and abs(olon - lon) < 0.15:
                worked.add((who, ods))
    # Prior standing over the rolling 28 days (two such fortnights of offered hours);
    # then a pharmacist moved to general practice for every 500 clinicians, each
    # counting 150 hours out of community pharmacy, as the ledger counts a transfer.
    base = {s: 2 * offered[s] for s in Sector}
    net = {s: START_DRAIN[s] * base[s] for s in Sector}
    for _ in range(max(1, people // 500)):
        net[S.COMMUNITY_PHARMACY] += 150
        net[S.GENERAL_PRACTICE] -= 150
    balances = {s: SectorBalance(base[s], net[s]) for s in Sector}
    pairs = find_pairs(made, windows, commitments)
    tried = {
        (made[s].id, pairs.clinicians[c])
        for s, c in zip(pairs.session.tolist(), pairs.clinician.tolist(), strict=True)
        if rng.random() < TRIED
    }
    return Region(made, windows, balances, commitments, frozenset(tried), frozenset(worked))
