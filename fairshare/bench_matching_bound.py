"""A valid upper bound on sessions filled, for `fairshare bench matching` at any size.

The MILP proves optima up to a few thousand sessions; a 10,000-session week was out of
its reach (1,369 s and 15 GB, and no plan, with the model built row by row in Python).
The bound here is the LP relaxation of a relaxed model, built from numpy arrays as one
sparse matrix (SciPy) and solved by Glop (OR-Tools' simplex): 962,040 pairs in about
20 s on this machine.

Kept rows (each holds for every valid plan, so dropping the others only raises the
optimum and the bound stays valid):
- one clinician per session;
- per clinician, at each instant a session starts, at most one of their candidate
  sessions running then (the overlap rule as cliques);
- per clinician held to 48 hours (not self-employed, not opted out), in each 7 days
  from a session's start: the hours of their candidate sessions in it, clipped, at most
  48 less their commitments' hours in it;
- per sector whose cap still has room, its net outflow within that room (a sector that
  lends nobody has net outflow at most 0, within any room at or above 0).
Dropped: 11 hours' rest, home first, and the cap of a sector already over it.

The LP's optimum is read from Glop's duals, not its reported objective: for any row
prices ``y >= 0``, ``b @ y + sum(max(0, 1 - (A.T @ y)[j]))`` bounds every plan's fills
(weak duality), whatever the solver's tolerances. Fills are whole, so it is rounded
down (less a hair for floating point).
"""

from __future__ import annotations

import importlib
import time
from datetime import timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp  # type: ignore[import-untyped]

from services.matching.eligibility import Pairs
from services.matching.engine import Problem
from services.matching.policy import budget
from services.matching.working_time import WEEK_LIMIT_H
from shared.catalogue import Sector

# OR-Tools' model builder, untyped on purpose: its .pyi stubs misdeclare numpy arrays,
# and once mypy reads them it no longer finds ``pywraplp`` beside them.
mb: Any = importlib.import_module("ortools.linear_solver.python.model_builder")
mbh: Any = importlib.import_module("ortools.linear_solver.python.model_builder_helper")
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
WEEK_S = int(timedelta(days=7).total_seconds())


class _Matrix:
    """Rows of a sparse matrix, gathered as (row, column, coefficient) arrays."""

    def __init__(self) -> None:
        self.rows: list[IntArray] = []
        self.cols: list[IntArray] = []
        self.coef: list[FloatArray] = []
        self.upper: list[FloatArray] = []
        self.count = 0

    def add(self, group_of: IntArray, cols: IntArray, coef: FloatArray, upper: FloatArray) -> None:
        """Rows ``0..len(upper)-1`` (shifted past those so far): entry k in row group_of[k]."""
        self.rows.append(self.count + group_of)
        self.cols.append(cols)
        self.coef.append(coef)
        self.upper.append(upper)
        self.count += len(upper)

    def csr(self, columns: int) -> tuple[Any, FloatArray]:
        """The matrix and its rows' upper bounds."""
        matrix = sp.csr_matrix(
            (np.concatenate(self.coef), (np.concatenate(self.rows), np.concatenate(self.cols))),
            shape=(self.count, columns),
        )
        return matrix, np.concatenate(self.upper)


def fill_bound(problem: Problem, pairs: Pairs) -> dict[str, Any]:
    """The bound on sessions filled by any plan of ``problem`` over ``pairs``."""
    clock = time.perf_counter()
    n = len(pairs.session)
    if n == 0:
        return {"fill_bound": 0, "lp_s": 0.0, "rows": 0, "status": "no pairs"}
    sessions = problem.sessions
    starts = np.array([int(s.starts_at.timestamp()) for s in sessions], dtype=np.int64)
    ends = np.array([int(s.ends_at.timestamp()) for s in sessions], dtype=np.int64)
    rows = _Matrix()
    rows.add(pairs.session, np.arange(n), np.ones(n), np.ones(len(sessions)))
    _time_rows(rows, problem, pairs, starts, ends)
    _cap_rows(rows, problem, pairs, starts, ends)
    matrix, b = rows.csr(n)
    model = mb.Model()
    model.helper.fill_model_from_sparse_data(
        np.zeros(n), np.ones(n), np.ones(n), np.full(rows.count, -np.inf), b, matrix
    )
    model.helper.set_maximize(True)
    solver = mbh.ModelSolverHelper("glop")
    solver.solve(model.helper)
    duals = np.maximum(0.0, solver.dual_values())
    reduced = 1.0 - matrix.T @ duals
    certified = float(b @ duals + np.maximum(0.0, reduced).sum())
    return {
        "fill_bound": int(np.floor(certified + 1e-6)),
        "lp_objective": round(float(solver.objective_value()), 3),
        "lp_s": round(time.perf_counter() - clock, 2),
        "rows": rows.count,
        "status": str(solver.status().name),
    }


def _busy(problem: Problem, pairs: Pairs) -> dict[int, list[tuple[int, int]]]:
    index = {c: i for i, c in enumerate(pairs.clinicians)}
    busy: dict[int, list[tuple[int, int]]] = {}
    for commitment in problem.commitments:
        if commitment.clinician_id in index:
            busy.setdefault(index[commitment.clinician_id], []).append(
                (int(commitment.starts_at.timestamp()), int(commitment.ends_at.timestamp()))
            )
    return busy


def _time_rows(
    rows: _Matrix, problem: Problem, pairs: Pairs, starts: IntArray, ends: IntArray
) -> None:
    """Overlap cliques and the 48 hours, at each instant a session starts."""
    ps, pc = pairs.session, pairs.clinician
    s_start, s_end = starts[ps], ends[ps]
    held = np.array(
        [not (p.self_employed or p.wtr_opt_out) for p in pairs.first_window], dtype=np.bool_
    )[pc]
    busy = _busy(problem, pairs)
    for t in np.unique(starts).tolist():
        running = np.flatnonzero((s_start <= t) & (t < s_end))
        _, inv, counts = np.unique(pc[running], return_inverse=True, return_counts=True)
        many = counts[inv] >= 2
        if many.any():
            groups, group_of = np.unique(inv[many], return_inverse=True)
            rows.add(group_of, running[many], np.ones(int(many.sum())), np.ones(len(groups)))
        inside = np.flatnonzero(held & (s_end > t) & (s_start < t + WEEK_S))
        hours = (np.minimum(s_end[inside], t + WEEK_S) - np.maximum(s_start[inside], t)) / 3600
        who, inv = np.unique(pc[inside], return_inverse=True)
        total = np.bincount(inv, weights=hours, minlength=len(who))
        fixed = np.array(
            [
                sum(max(0, min(e, t + WEEK_S) - max(s, t)) for s, e in busy.get(c, [])) / 3600
                for c in who.tolist()
            ]
        )
        room = np.maximum(0.0, WEEK_LIMIT_H - fixed) if len(who) else np.zeros(0)
        binding = total > room + 1e-9
        if binding.any():
            pick = binding[inv]
            groups, group_of = np.unique(inv[pick], return_inverse=True)
            rows.add(group_of, inside[pick], hours[pick], room[groups])


def _cap_rows(
    rows: _Matrix, problem: Problem, pairs: Pairs, starts: IntArray, ends: IntArray
) -> None:
    """Each sector with room under its cap: hours out less hours in, within the room."""
    ps, pc = pairs.session, pairs.clinician
    sectors = list(Sector)
    s_sector = np.array([sectors.index(s.sector) for s in problem.sessions], dtype=np.int64)[ps]
    c_home = np.array([sectors.index(p.home_sector) for p in pairs.first_window], dtype=np.int64)[
        pc
    ]
    moved = s_sector != c_home
    balances = problem.balances or {}
    for k, sector in enumerate(sectors):
        if sector not in balances:
            continue
        room = budget(problem.policy, sector, balances[sector])
        terms = np.flatnonzero(moved & ((c_home == k) | (s_sector == k)))
        if room < 0 or len(terms) == 0:
            continue
        length = (ends[ps[terms]] - starts[ps[terms]]) / 3600
        coef = np.where(c_home[terms] == k, length, -length)
        rows.add(np.zeros(len(terms), dtype=np.int64), terms, coef, np.array([room]))
