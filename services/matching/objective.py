"""What a plan is worth: the issue's objective, in order, as one integer per offer. No I/O.

Tiers, each worth more than everything below it for one offer:
1. filling the session at all (``FILL``);
2. urgency, then need: an urgent session outranks any deprivation; among equals, the
   more deprived the organisation's area (IMD decile 1 is the most deprived), the more;
3. continuity: the clinician has worked for that organisation before;
4. the shortest journey, and staying in one's own sector: a move across sectors weighs
   as much as 30 km of travel. (Rates are set per session by the organisation, so who
   fills it doesn't change its cost; travel is the cost that varies.)

The weights make the tiers lexicographic per offer; across a whole plan one extra fill
outweighs any single session's need, which is how a person would rank two plans.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from services.matching.domain import OpenSession
from shared.catalogue import Urgency

FILL = 1_000_000
NEED_UNIT = 10_000
CONTINUITY = 1_000
NEAR_MAX = 999
CROSS_SECTOR_KM = 30.0


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


def values(
    needs: npt.NDArray[np.int64],
    km: npt.NDArray[np.float64],
    cross_sector: npt.NDArray[np.bool_],
    worked_before: npt.NDArray[np.bool_],
) -> npt.NDArray[np.int64]:
    """``value`` for many pairs at once (numpy rounds halves to even, as ``round`` does)."""
    effective = km + np.where(cross_sector, CROSS_SECTOR_KM, 0.0)
    near = np.maximum(0, NEAR_MAX - np.round(effective * 10).astype(np.int64))
    result: npt.NDArray[np.int64] = (
        FILL + needs * NEED_UNIT + np.where(worked_before, CONTINUITY, 0) + near
    )
    return result
