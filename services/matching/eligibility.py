"""Every eligible (session, clinician) pair of a region, found in bulk with numpy. No I/O.

The rules are ``domain.eligible``'s; checking them pair by pair for 10,000 sessions and
5,000 clinicians is 50 million Python calls, so sessions are grouped by role and day and
compared with that day's windows of the professions that may fill the role, a matrix at a
time. Commitments are cut out of the windows first, so "free for the whole session"
becomes "some free window covers it".
"""

from __future__ import annotations

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


def _epoch(w: Window | OpenSession | Commitment) -> tuple[int, int]:
    return int(w.starts_at.timestamp()), int(w.ends_at.timestamp())


def free_spans(
    windows: Sequence[Window], commitments: Sequence[Commitment]
) -> list[tuple[int, int, int]]:
    """(window index, start, end) in epoch seconds: the windows with every commitment of
    their clinician cut out. Integers, not new Window objects: a region re-planned for
    one new session still walks thousands of windows, and copying them dominated."""
    busy: dict[uuid.UUID, list[tuple[int, int]]] = defaultdict(list)
    for c in commitments:
        busy[c.clinician_id].append(_epoch(c))
    for spans in busy.values():
        spans.sort()
    pieces: list[tuple[int, int, int]] = []
    for index, w in enumerate(windows):
        start, end = _epoch(w)
        held = busy.get(w.clinician_id)
        if not held:
            pieces.append((index, start, end))
            continue
        parts = [(start, end)]
        for b_start, b_end in held:
            cut: list[tuple[int, int]] = []
            for p_start, p_end in parts:
                if b_end <= p_start or b_start >= p_end:
                    cut.append((p_start, p_end))
                    continue
                if b_start > p_start:
                    cut.append((p_start, b_start))
                if b_end < p_end:
                    cut.append((b_end, p_end))
            parts = cut
        pieces.extend((index, a, b) for a, b in parts)
    return pieces


def _haversine(
    lat1: FloatArray, lon1: FloatArray, lat2: FloatArray, lon2: FloatArray
) -> FloatArray:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    result: FloatArray = 2 * EARTH_KM * np.arcsin(np.sqrt(np.minimum(1.0, a)))
    return result


def find_pairs(
    sessions: Sequence[OpenSession],
    windows: Sequence[Window],
    commitments: Sequence[Commitment],
) -> Pairs:
    """Every (session, clinician) pair that ``domain.eligible`` allows."""
    clinician_index: dict[uuid.UUID, int] = {}
    first_window: list[Window] = []
    for w in windows:
        if w.clinician_id not in clinician_index:
            clinician_index[w.clinician_id] = len(first_window)
            first_window.append(w)
    free = free_spans(windows, commitments)
    empty = Pairs(
        np.zeros(0, np.int64),
        np.zeros(0, np.int64),
        np.zeros(0, np.float64),
        list(clinician_index),
        first_window,
    )
    if not sessions or not free:
        return empty

    # Per window once, then per free piece by its window's index.
    of = np.array([i for i, _, _ in free], dtype=np.int64)
    w_span = np.array([(a, b) for _, a, b in free], dtype=np.int64).reshape(-1, 2)
    profession_index = {p: i for i, p in enumerate(_PROFESSIONS)}
    w_prof = np.array([profession_index[w.profession] for w in windows], dtype=np.int64)[of]
    w_skill = np.array([_mask(w.skills) for w in windows], dtype=np.int64)[of]
    w_geo = np.array(
        [(w.latitude, w.longitude, w.travel_km) for w in windows], dtype=np.float64
    ).reshape(-1, 3)[of]
    w_clin = np.array([clinician_index[w.clinician_id] for w in windows], dtype=np.int64)[of]
    by_day: dict[int, list[int]] = defaultdict(list)
    for i, (start, end) in enumerate(w_span.tolist()):
        for day in range(start // DAY_S, (end - 1) // DAY_S + 1):
            by_day[day].append(i)

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
        day_windows = by_day.get(day)
        if not day_windows:
            continue
        allowed = [_PROFESSIONS.index(p) for p in ROLE_FILLERS[role]]  # type: ignore[index]
        w_idx = np.array(day_windows, dtype=np.int64)
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
