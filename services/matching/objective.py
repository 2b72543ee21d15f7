"""What a plan is worth: docs/matching.md's objective, tier by tier. No I/O.

Plans compare lexicographically (``Score``), each tier only breaking ties of the ones
above it, summed over the whole plan:
1. sessions filled;
2. need: urgency, then deprivation: an urgent session outranks any deprivation; among
   equals, the more deprived the organisation's area (IMD decile 1 is the most
   deprived), the more;
3. continuity: offers to a clinician who has worked for that organisation before;
4. spread: how many clinicians get work (so work goes round the bank rather than to a
   few, between clinicians the tiers above rank equally);
5. nearness: the shortest journeys, and staying in one's own sector: a move across
   sectors weighs as much as 30 km of travel. (Rates are set per session by the
   organisation, so who fills it doesn't change its cost; travel is the cost that
   varies. Every pair is already within the clinician's own travel limit.)

A weighted sum can't say this across a plan (six urgent sessions would outweigh seven
routine ones), so the exact solver optimises the tiers in turn. ``value`` folds the
tiers of one offer into one integer, lexicographic per offer: the heuristic ranks
candidates by it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from services.matching.domain import OpenSession
from shared.catalogue import Urgency

FILL = 1_000_000
NEED_UNIT = 10_000
CONTINUITY = 1_000
NEAR_MAX = 999
CROSS_SECTOR_KM = 30.0


class Score(NamedTuple):
    """A plan's worth, tier by tier; plans compare as tuples do."""

    filled: int = 0
    need: int = 0
    continuity: int = 0
    spread: int = 0
    nearness: int = 0


def score(needs: list[int], worked: list[bool], near: list[int], clinicians: list[object]) -> Score:
    """The ``Score`` of a plan given, offer by offer, its tiers and clinician."""
    return Score(len(needs), sum(needs), sum(worked), len(set(clinicians)), sum(near))


MOST_NEED = 19  # ``need``'s largest value: urgent, in the most deprived decile


def need(session: OpenSession) -> int:
    """Urgency and deprivation, 0–19: urgent adds 10, decile d adds 10 - d."""
    urgent = 10 if session.urgency is Urgency.URGENT else 0
    deprivation = 10 - session.imd_decile if session.imd_decile else 0
    return urgent + deprivation


def nearness(km: float, *, cross_sector: bool) -> int:
    """0–999: a tenth of a kilometre less travel is one point."""
    effective = km + (CROSS_SECTOR_KM if cross_sector else 0.0)
    return max(0, NEAR_MAX - round(effective * 10))


def value(session: OpenSession, km: float, *, cross_sector: bool, worked_before: bool) -> int:
    """The worth of offering ``session`` to one clinician."""
    return (
        FILL
        + need(session) * NEED_UNIT
        + (CONTINUITY if worked_before else 0)
        + nearness(km, cross_sector=cross_sector)
    )


def nearnesses(
    km: npt.NDArray[np.float64], cross_sector: npt.NDArray[np.bool_]
) -> npt.NDArray[np.int64]:
    """``nearness`` for many pairs at once (numpy rounds halves to even, as ``round`` does)."""
    effective = km + np.where(cross_sector, CROSS_SECTOR_KM, 0.0)
    near: npt.NDArray[np.int64] = np.maximum(
        0, NEAR_MAX - np.round(effective * 10).astype(np.int64)
    )
    return near


def values(
    needs: npt.NDArray[np.int64],
    km: npt.NDArray[np.float64],
    cross_sector: npt.NDArray[np.bool_],
    worked_before: npt.NDArray[np.bool_],
) -> npt.NDArray[np.int64]:
    """``value`` for many pairs at once."""
    near = nearnesses(km, cross_sector)
    result: npt.NDArray[np.int64] = (
        FILL + needs * NEED_UNIT + np.where(worked_before, CONTINUITY, 0) + near
    )
    return result
