"""The matching problem's LP relaxation, as one sparse matrix. No I/O.

Two users: the engine's ``relax`` stage plans a large region from it (each working
day's LP, rounded), and `fairshare bench matching` bounds any plan's fills with it.

Kept rows (each holds for every valid plan, so dropping the others only raises the
optimum, and a bound from it stays valid):
- one clinician per session;
- per clinician, at each instant a session starts, at most one of their candidate
  sessions running then (the overlap rule as cliques);
- per clinician held to 48 hours (not self-employed, not opted out), in each 7 days
  from a session's start: the hours of their candidate sessions in it, clipped, at most
  48 less their commitments' hours in it;
- per sector whose cap still has room, its net outflow within that room (a sector that
  lends nobody has net outflow at most 0, within any room at or above 0).
Dropped: 11 hours' rest, home first, and the cap of a sector already over it; the
engine's later stages enforce them on what the LP suggests.

Measured on the benchmark's generated weeks, this LP is nearly integral: its optimum
equals the proven optimum at 1,000 and 2,000 sessions, and at 10,000 sessions 99.9%
of its values are 0 or 1. It is built from numpy arrays and solved by Glop (OR-Tools'
simplex), which solved it faster here than HiGHS (one working day of a 10,000-session
week, 24 candidates a session: Glop 0.6 s, HiGHS 1.0 s).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp  # type: ignore[import-untyped]

from services.matching.domain import Commitment, OpenSession
from services.matching.eligibility import Pairs
from services.matching.working_time import WEEK_LIMIT_H
from shared.catalogue import Sector

# OR-Tools' model builder, untyped on purpose: its .pyi stubs misdeclare numpy arrays,
# and once mypy reads them it no longer finds ``pywraplp`` beside them.
mb: Any = importlib.import_module("ortools.linear_solver.python.model_builder")
mbh: Any = importlib.import_module("ortools.linear_solver.python.model_builder_helper")
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
WEEK_S = int(timedelta(days=7).total_seconds())


class Rows:
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


def spans(sessions: Sequence[OpenSession]) -> tuple[IntArray, IntArray]:
    """Each session's start and end in epoch seconds."""
    starts = np.array([int(s.starts_at.timestamp()) for s in sessions], dtype=np.int64)
    ends = np.array([int(s.ends_at.timestamp()) for s in sessions], dtype=np.int64)
    return starts, ends


def build(
    sessions: Sequence[OpenSession],
    pairs: Pairs,
    commitments: Sequence[Commitment],
    room: Mapping[Sector, float],
    *,
    every_start: bool = True,
) -> Rows:
    """Every kept row over ``pairs`` (``room``: hours each sector may still lose, for
    the sectors whose cap is kept). The time rows are written at every session's start,
    or with ``every_start=False`` only at the starts of the sessions in ``pairs``: the
    same cliques, fewer 48-hour rows (a weaker LP, for a part of the region)."""
    starts, ends = spans(sessions)
    rows = Rows()
    n = len(pairs.session)
    rows.add(pairs.session, np.arange(n), np.ones(n), np.ones(len(sessions)))
    instants = np.unique(starts if every_start else starts[pairs.session])
    _time_rows(rows, pairs, commitments, starts, ends, instants)
    _cap_rows(rows, sessions, pairs, room, starts, ends)
    return rows


def solve(rows: Rows, values: FloatArray) -> tuple[FloatArray, FloatArray, Any, str]:
    """The LP maximising ``values`` (one per pair, each pair in [0, 1]): the pairs'
    values, the rows' duals, the matrix and rows' bounds as (matrix, b), and the status."""
    n = len(values)
    matrix, b = rows.csr(n)
    model = mb.Model()
    model.helper.fill_model_from_sparse_data(
        np.zeros(n), np.ones(n), values, np.full(rows.count, -np.inf), b, matrix
    )
    model.helper.set_maximize(True)
    solver = mbh.ModelSolverHelper("glop")
    solver.solve(model.helper)
    status = str(solver.status().name)
    if status != "OPTIMAL":
        return np.zeros(n), np.zeros(rows.count), (matrix, b), status
    x = np.asarray(solver.variable_values(), dtype=np.float64)
    duals = np.asarray(solver.dual_values(), dtype=np.float64)
    return x, duals, (matrix, b), status


def _busy(pairs: Pairs, commitments: Sequence[Commitment]) -> dict[int, list[tuple[int, int]]]:
    index = {c: i for i, c in enumerate(pairs.clinicians)}
    busy: dict[int, list[tuple[int, int]]] = {}
    for commitment in commitments:
        if commitment.clinician_id in index:
            busy.setdefault(index[commitment.clinician_id], []).append(
                (int(commitment.starts_at.timestamp()), int(commitment.ends_at.timestamp()))
            )
    return busy


def _time_rows(
    rows: Rows,
    pairs: Pairs,
    commitments: Sequence[Commitment],
    starts: IntArray,
    ends: IntArray,
    instants: IntArray,
) -> None:
    """Overlap cliques and the 48 hours, at each of ``instants``."""
    ps, pc = pairs.session, pairs.clinician
    s_start, s_end = starts[ps], ends[ps]
    held = np.array(
        [not (p.self_employed or p.wtr_opt_out) for p in pairs.first_window], dtype=np.bool_
    )[pc]
    busy = _busy(pairs, commitments)
    for t in instants.tolist():
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
    rows: Rows,
    sessions: Sequence[OpenSession],
    pairs: Pairs,
    room: Mapping[Sector, float],
    starts: IntArray,
    ends: IntArray,
) -> None:
    """Each sector with room under its cap: hours out less hours in, within the room."""
    ps, pc = pairs.session, pairs.clinician
    sectors = list(Sector)
    s_sector = np.array([sectors.index(s.sector) for s in sessions], dtype=np.int64)[ps]
    c_home = np.array([sectors.index(p.home_sector) for p in pairs.first_window], dtype=np.int64)[
        pc
    ]
    moved = s_sector != c_home
    for k, sector in enumerate(sectors):
        if sector not in room:
            continue
        terms = np.flatnonzero(moved & ((c_home == k) | (s_sector == k)))
        if room[sector] < 0 or len(terms) == 0:
            continue
        length = (ends[ps[terms]] - starts[ps[terms]]) / 3600
        coef = np.where(c_home[terms] == k, length, -length)
        rows.add(np.zeros(len(terms), dtype=np.int64), terms, coef, np.array([room[sector]]))
