"""The global stage of the planner: a min-cost max-flow over a whole region (OR-Tools).

Network: source → session (capacity 1) → (clinician, time block) → sink (capacity 1).
Flow is maximised first, so as many sessions as possible are filled, then the cost,
which is the objective's lower tiers turned into costs. A time block is one clique of a
clique cover of all sessions' intervals (every session in it contains one instant), so a
clinician gets at most one of a set of sessions that all overlap. Sessions in different
blocks may still overlap (a long session and a short one beside it), and working-time
rules, home-first and the sector caps are not flows: the engine repairs what this stage
gets wrong, then fills what it can greedily. Min-cost flow is used because it solves a
10,000 × 5,000 region in about a second, where an exact MILP of the same region does not.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from ortools.graph.python import min_cost_flow

IntArray = npt.NDArray[np.int64]


def clique_blocks(starts: IntArray, ends: IntArray) -> IntArray:
    """A clique cover of intervals: block id per interval (greedy stabbing by end)."""
    block = np.zeros(len(starts), dtype=np.int64)
    current, point = -1, None
    for i in np.argsort(ends, kind="stable").tolist():
        if point is None or starts[i] >= point:
            current += 1
            point = ends[i]
        block[i] = current
    return block


def assign(
    n_sessions: int,
    pair_session: IntArray,
    pair_clinician: IntArray,
    pair_value: IntArray,
    session_block: IntArray,
) -> npt.NDArray[np.bool_]:
    """Which pairs the flow chooses (at most one per session and per clinician block)."""
    chosen = np.zeros(len(pair_session), dtype=np.bool_)
    if len(pair_session) == 0:
        return chosen
    keys = pair_clinician * (int(session_block.max()) + 1) + session_block[pair_session]
    _, block_of_pair = np.unique(keys, return_inverse=True)
    n_blocks = int(block_of_pair.max()) + 1
    source, sink = 0, 1 + n_sessions + n_blocks
    used_sessions = np.unique(pair_session)
    costs = int(pair_value.max()) - pair_value  # lower cost = more value; never negative
    tails = np.concatenate(
        [
            np.zeros(len(used_sessions), np.int64),
            1 + pair_session,
            1 + n_sessions + np.arange(n_blocks, dtype=np.int64),
        ]
    )
    heads = np.concatenate(
        [
            1 + used_sessions,
            1 + n_sessions + block_of_pair,
            np.full(n_blocks, sink, np.int64),
        ]
    )
    capacities = np.ones(len(tails), np.int64)
    unit_costs = np.concatenate(
        [np.zeros(len(used_sessions), np.int64), costs, np.zeros(n_blocks, np.int64)]
    )
    flow = min_cost_flow.SimpleMinCostFlow()
    flow.add_arcs_with_capacity_and_unit_cost(
        tails.astype(np.int32), heads.astype(np.int32), capacities, unit_costs
    )
    flow.set_node_supply(source, len(used_sessions))
    flow.set_node_supply(sink, -len(used_sessions))
    status = flow.solve_max_flow_with_min_cost()
    if status != flow.OPTIMAL:
        raise RuntimeError(f"min-cost flow failed: {status}")
    first_pair_arc = len(used_sessions)
    arcs = np.arange(first_pair_arc, first_pair_arc + len(pair_session), dtype=np.int32)
    flows = np.asarray(flow.flows(arcs))
    chosen[:] = flows > 0
    return chosen
