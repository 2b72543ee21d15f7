"""A valid upper bound on sessions filled, for `fairshare bench matching` at any size.

The MILP proves optima up to a few thousand sessions; a 10,000-session week was out of
its reach (1,369 s and 15 GB, and no plan, with the model built row by row in Python).
The bound here is the LP relaxation of a relaxed model (``services.matching.relaxation``,
which the engine plans large regions from too: its rows, and what it drops), built from
numpy arrays as one sparse matrix and solved by Glop: 962,040 pairs in about 20-60 s
on this machine.

The LP's optimum is read from Glop's duals, not its reported objective: for any row
prices ``y >= 0``, ``b @ y + sum(max(0, 1 - (A.T @ y)[j]))`` bounds every plan's fills
(weak duality), whatever the solver's tolerances. Fills are whole, so it is rounded
down (less a hair for floating point).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from services.matching import relaxation
from services.matching.eligibility import Pairs
from services.matching.engine import Problem
from services.matching.policy import budget


def fill_bound(problem: Problem, pairs: Pairs) -> dict[str, Any]:
    """The bound on sessions filled by any plan of ``problem`` over ``pairs``."""
    clock = time.perf_counter()
    n = len(pairs.session)
    if n == 0:
        return {"fill_bound": 0, "lp_s": 0.0, "rows": 0, "status": "no pairs"}
    balances = problem.balances or {}
    room = {sector: budget(problem.policy, sector, b) for sector, b in balances.items()}
    rows = relaxation.build(problem.sessions, pairs, problem.commitments, room)
    # Not solved to optimality, the duals are zeros: the bound is then every pair (valid).
    x, duals, (matrix, b), status = relaxation.solve(rows, np.ones(n))
    duals = np.maximum(0.0, duals)
    reduced = 1.0 - matrix.T @ duals
    certified = float(b @ duals + np.maximum(0.0, reduced).sum())
    return {
        "fill_bound": int(np.floor(certified + 1e-6)),
        "lp_objective": round(float(x.sum()), 3),
        "lp_s": round(time.perf_counter() - clock, 2),
        "rows": rows.count,
        "status": status,
    }
