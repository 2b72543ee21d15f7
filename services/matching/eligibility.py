"""Every eligible (session, clinician) pair of a region, found in bulk with numpy. No I/O.

The rules are ``domain.eligible``'s; checking them pair by pair for 10,000 sessions and
5,000 clinicians is 50 million Python calls, so sessions are grouped by role and day and
compared with that day's windows of the professions that may fill the role, a matrix at a
time. Commitments are cut out of the windows first, so "free for the whole session"
becomes "some free window covers it".
"""

from __future__ import annotations

import bisect
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.matching.domain import Commitment, OpenSession, Window
from shared.catalogue import ROLE_FILLERS, Profession, Skill

DAY_S = 86_400
EARTH_KM = 6371.0
_PROFESSIONS = list(Profession)
_SKILL_BIT = {skill: 1 << i for i, skill in enumerate(Skill)}

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Pairs:
    """Eligible pairs as parallel arrays, one row per (session, clinician)."""

    session: IntArray  # index into the problem's sessions
    clinician: IntArray  # index into ``clinicians``
    km: FloatArray
    clinicians: list[uuid.UUID]
    first_window: list[Window]  # per clinician: profession, home sector, flags


def _mask(skills: frozenset[Skill]) -> int:
    bits = 0
    for skill in skills:
        bits |= _SKILL_BIT[skill]
    return bits


def _epoch(w: OpenSession | Commitment) -> tuple[int, int]:
    return int(w.starts_at.timestamp()), int(w.ends_at.timestamp())


def free_spans(
    spans: Sequence[tuple[int, int, int]],
    commitments: Sequence[Commitment],
    clinician_index: dict[uuid.UUID, int],
) -> list[tuple[int, int, int]]:
    """(window index, start, end) in epoch seconds: the windows (given as clinician's
    index, start, end) with every commitment of their clinician cut out. Integers, not
    new Window objects: a region re-planned for one new session still walks thousands
    of windows, and copying them dominated. Only the commitments of clinicians with a
    window are converted: a stretch reads a week of them for working time."""
    busy: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for c in commitments:
        clinician = clinician_index.get(c.clinician_id)
        if clinician is not None:
            busy[clinician].append(_epoch(c))
    for held_spans in busy.values():
        held_spans.sort()
    pieces: list[tuple[int, int, int]] = []
    for index, (clinician, start, end) in enumerate(spans):
        held = busy.get(clinician)
        if not held:
            pieces.append((index, start, end))
            continue
        # One sweep: ``held`` is sorted by start, so the free time is what lies between
        # the commitments that overlap the window.
        cursor = start
        for b_start, b_end in held:
            if b_start >= end:
                break
            if b_end <= cursor:
                continue
            if b_start > cursor:
                pieces.append((index, cursor, b_start))
            cursor = b_end
            if cursor >= end:
                break
        if cursor < end:
            pieces.append((index, cursor, end))
    return pieces


def _haversine(
    lat1: FloatArray, lon1: FloatArray, lat2: FloatArray, lon2: FloatArray
) -> FloatArray:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    result: FloatArray = 2 * EARTH_KM * np.arcsin(np.sqrt(np.minimum(1.0, a)))
    return result


@dataclass(frozen=True, slots=True)
class _Pieces:
    """The windows' free pieces as arrays, one row per piece, with its window's fields."""

    span: IntArray  # (start, end) in epoch seconds
    profession: IntArray
    skill: IntArray
    clinician: IntArray
    geo: FloatArray  # latitude, longitude, travel km
    clinician_index: dict[uuid.UUID, int]
    first_window: list[Window]

    def on_day(self, day: int, cache: dict[int, IntArray]) -> IntArray:
        """The pieces touching ``day``: one that covers a session holds its start."""
        if day not in cache:
            first, last = self.span[:, 0] // DAY_S, (self.span[:, 1] - 1) // DAY_S
            cache[day] = np.flatnonzero((first <= day) & (last >= day))
        return cache[day]


def _pieces(
    sessions: Sequence[OpenSession], windows: Sequence[Window], commitments: Sequence[Commitment]
) -> _Pieces:
    """One pass over the windows for everything the matrices need: a stretch re-planned
    for one new session walks thousands of them, and a pass per field cost more than
    the matrices themselves. A window in which no session starts can cover none, and is
    passed over first (a stretch of 20 sessions reads 7,000 windows around them)."""
    starts = sorted(s.starts_at for s in sessions)
    clinician_index: dict[uuid.UUID, int] = {}
    first_window: list[Window] = []
    masks: dict[frozenset[Skill], int] = {}
    profession_index = {p: i for i, p in enumerate(_PROFESSIONS)}
    spans: list[tuple[int, int, int]] = []
    per_window: list[tuple[int, int, int]] = []  # profession, skills, clinician
    geo: list[tuple[float, float, float]] = []
    for w in windows:
        k = bisect.bisect_left(starts, w.starts_at)
        if k == len(starts) or starts[k] >= w.ends_at:
            continue
        clinician = clinician_index.get(w.clinician_id)
        if clinician is None:
            clinician = clinician_index[w.clinician_id] = len(first_window)
            first_window.append(w)
        mask = masks.get(w.skills)
        if mask is None:
            mask = masks[w.skills] = _mask(w.skills)
        spans.append((clinician, int(w.starts_at.timestamp()), int(w.ends_at.timestamp())))
        per_window.append((profession_index[w.profession], mask, clinician))
        geo.append((w.latitude, w.longitude, w.travel_km))
    free = np.array(free_spans(spans, commitments, clinician_index), dtype=np.int64)
    of = free.reshape(-1, 3)[:, 0]
    fields = np.array(per_window, dtype=np.int64).reshape(-1, 3)[of]
    return _Pieces(
        span=free.reshape(-1, 3)[:, 1:],
        profession=fields[:, 0],
        skill=fields[:, 1],
        clinician=fields[:, 2],
        geo=np.array(geo, dtype=np.float64).reshape(-1, 3)[of],
        clinician_index=clinician_index,
        first_window=first_window,
    )


def find_pairs(
    sessions: Sequence[OpenSession],
    windows: Sequence[Window],
    commitments: Sequence[Commitment],
) -> Pairs:
    """Every (session, clinician) pair that ``domain.eligible`` allows."""
    pieces = _pieces(sessions, windows, commitments)
    clinician_index, first_window = pieces.clinician_index, pieces.first_window
    empty = Pairs(
        np.zeros(0, np.int64),
        np.zeros(0, np.int64),
        np.zeros(0, np.float64),
        list(clinician_index),
        first_window,
    )
    if not sessions or not len(pieces.span):
        return empty
    w_span, w_prof, w_skill, w_clin, w_geo = (
        pieces.span,
        pieces.profession,
        pieces.skill,
        pieces.clinician,
        pieces.geo,
    )
    by_day: dict[int, IntArray] = {}

    groups: dict[tuple[object, int], list[int]] = defaultdict(list)
    s_span = np.array([_epoch(s) for s in sessions], dtype=np.int64).reshape(-1, 2)
    for i, s in enumerate(sessions):
        groups[(s.role, int(s_span[i, 0]) // DAY_S)].append(i)
    s_skill = np.array([_mask(s.skills) for s in sessions], dtype=np.int64)
    s_geo = np.array([(s.latitude, s.longitude) for s in sessions], dtype=np.float64)

    found_s: list[IntArray] = []
    found_w: list[IntArray] = []
    found_km: list[FloatArray] = []
    for (role, day), members in groups.items():
        w_idx = pieces.on_day(day, by_day)
        if w_idx.size == 0:
            continue
        allowed = [_PROFESSIONS.index(p) for p in ROLE_FILLERS[role]]  # type: ignore[index]
        w_idx = w_idx[np.isin(w_prof[w_idx], allowed)]
        if w_idx.size == 0:
            continue
        s_idx = np.array(members, dtype=np.int64)
        km = _haversine(
            s_geo[s_idx, 0][:, None],
            s_geo[s_idx, 1][:, None],
            w_geo[w_idx, 0][None, :],
            w_geo[w_idx, 1][None, :],
        )
        ok = (
            (w_span[w_idx, 0][None, :] <= s_span[s_idx, 0][:, None])
            & (w_span[w_idx, 1][None, :] >= s_span[s_idx, 1][:, None])
            & ((s_skill[s_idx][:, None] & ~w_skill[w_idx][None, :]) == 0)
            & (km <= w_geo[w_idx, 2][None, :])
        )
        si, wi = np.nonzero(ok)
        found_s.append(s_idx[si])
        found_w.append(w_idx[wi])
        found_km.append(km[si, wi])
    if not found_s:
        return empty
    pair_s = np.concatenate(found_s)
    pair_c = w_clin[np.concatenate(found_w)]
    pair_km = np.concatenate(found_km)
    # A clinician with two windows covering one session is one pair, not two.
    key = pair_s * len(first_window) + pair_c
    _, first = np.unique(key, return_index=True)
    return Pairs(pair_s[first], pair_c[first], pair_km[first], list(clinician_index), first_window)
