"""`fairshare bench matching` on a small week, and its HiGHS model against brute force.

Figures are not judged here (speed targets are read from the benchmark's JSON); what is
checked is that the comparison is sound: the MILP is the model of docs/matching.md
(it agrees with a brute-force optimum), and its optimum bounds the engine's plan.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings

from fairshare.bench_matching import run
from fairshare.bench_matching_baselines import eligible_pairs, greedy, highs_optimum
from fairshare.bench_matching_bound import fill_bound
from services.matching.engine import Problem
from services.matching.policy import SectorBalance
from shared.catalogue import Sector
from tests.unit.matching_check import brute_force, violations
from tests.unit.test_matching_properties import a_region

KEYS = {
    "solve_s",
    "filled",
    "greedy_filled",
    "optimum_filled",
    "fill_bound",
    "lost_fills",
    "improvement_captured",
    "tier_gaps",
    "home_first_held_pct",
    "deprived_fill_rate",
    "greedy_deprived_fill_rate",
    "optimum_deprived_fill_rate",
    "held_by_guard",
    "max_sector_drain_pct",
    "cap_pct",
    "region_fill_rate",
    "replan_p99_ms",
    "peak_rss_mb",
    "batch",
    "online",
    "met",
}
ONLINE_KEYS = {
    "filled",
    "greedy_filled",
    "fill_bound",
    "lost_fills",
    "improvement_captured",
    "home_first_held_pct",
    "deprived_fill_rate",
    "greedy_deprived_fill_rate",
    "held_by_guard",
    "max_sector_drain_pct",
}


@pytest.mark.parametrize("family", ["default", "tight"])
def test_a_small_week_gives_every_figure_and_a_sound_gap(family: str) -> None:
    """Every key the issue names, offline and online; HiGHS proves the fill tier on this
    size; the LP bound is never below it and no plan fills more than either; sectors
    stay within their caps."""
    result = run(
        family=family,
        sessions=300,
        clinicians=150,
        seed=3,
        highs_time_limit_s=20,
        incremental=10,
        batches=1,
    )
    assert set(result) >= KEYS
    assert set(result["online"]) >= ONLINE_KEYS
    assert result["optimum_filled"] is not None
    assert result["bound"]["fill_bound"] >= result["optimum_filled"] >= result["filled"]
    assert result["filled"] >= result["greedy_filled"] > 0
    assert result["lost_fills"] >= 0
    assert 0 <= result["improvement_captured"] <= 1
    assert result["online"]["fill_bound"] >= result["online"]["filled"] > 0
    assert result["home_first_held_pct"] in (None, 100.0)
    assert result["met"]["max_sector_drain_within_cap"]
    assert 0 < result["filled"] <= result["sessions"]


def _with_balances(problem: Problem) -> Problem:
    if problem.balances is None:
        problem = replace(problem, balances=dict.fromkeys(Sector, SectorBalance(60.0)))
    assert problem.balances is not None
    return problem


@settings(max_examples=40, deadline=None, derandomize=True)
@given(a_region(most_sessions=5, most_clinicians=3))
def test_the_milp_agrees_with_brute_force(problem: Problem) -> None:
    """On small regions HiGHS's optimum of the bench's MILP is the brute-force optimum
    (tier by tier), and its plan keeps every rule, with commitments, tried pairs and
    sectors already over their caps; the LP bound is never below the optimum's fills;
    first come first served keeps the hard rules."""
    problem = _with_balances(problem)
    pairs = eligible_pairs(problem)
    optimum = highs_optimum(problem, pairs, time_limit_s=20)
    plan = [
        (problem.sessions[int(pairs.session[i])], pairs.clinicians[int(pairs.clinician[i])])
        for i in optimum.chosen
    ]
    assert violations(problem, plan) == []
    assert optimum.objective == brute_force(problem)
    assert fill_bound(problem, pairs)["fill_bound"] >= optimum.filled
    first_come = greedy(problem, pairs, seed=1)
    greedy_plan = [
        (problem.sessions[int(pairs.session[i])], pairs.clinicians[int(pairs.clinician[i])])
        for i in first_come.chosen
    ]
    broken = violations(problem, greedy_plan)
    assert [v for v in broken if "home first" not in v and "cap" not in v] == []
