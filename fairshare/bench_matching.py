"""`fairshare bench matching`: the engine against first come first served and HiGHS.

All three see the same generated week (``bench_matching_region``) in one process. The
engine's time is the whole of ``engine.plan``: eligibility, solving, repair and
explanations. Speed targets are read from the JSON, never asserted by tests.
"""

from __future__ import annotations

import random
import statistics
import time
import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from fairshare.bench_matching_baselines import Baseline, eligible_pairs, greedy, highs_optimum
from fairshare.bench_matching_region import Region, generate
from services.matching.domain import Commitment, OpenSession
from services.matching.engine import Plan, Problem, plan
from services.matching.policy import DEFAULT_CAP_PCT, Policy

DEPRIVED = 3  # IMD deciles 1-3: the most deprived 30% of areas
REACH = timedelta(hours=13)


def _incremental(region: Region, result: Plan, count: int, seed: int) -> list[float]:
    """Milliseconds to plan each of ``count`` new sessions into the planned week.

    As the service does on `session.posted`: the new session and the week's unplaced
    sessions near it, the windows near it, and everything offered so far as
    commitments, with the balances after the plan.
    """
    rng = random.Random(seed + 1)
    commitments = [
        Commitment(p.clinician_id, p.session.starts_at, p.session.ends_at) for p in result.proposals
    ]
    unplaced = [s for s in region.sessions if s.id in result.unplaced]
    timings: list[float] = []
    for _ in range(count):
        model = rng.choice(region.sessions)
        new = replace(model, id=uuid.UUID(int=rng.getrandbits(128)))
        lo, hi = new.starts_at - REACH, new.ends_at + REACH
        near: list[OpenSession] = [s for s in unplaced if s.starts_at < hi and s.ends_at > lo]
        problem = Problem(
            sessions=[new, *near],
            windows=[w for w in region.windows if w.starts_at < hi and w.ends_at > lo],
            commitments=[c for c in commitments if c.starts_at < hi and c.ends_at > lo],
            balances=result.balances,
        )
        clock = time.perf_counter()
        step = plan(problem)
        timings.append((time.perf_counter() - clock) * 1000)
        placed = {p.session.id for p in step.proposals}
        commitments += [
            Commitment(p.clinician_id, p.session.starts_at, p.session.ends_at)
            for p in step.proposals
        ]
        unplaced = [s for s in unplaced if s.id not in placed]
        if new.id not in placed:
            unplaced.append(new)
    return timings


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def run(
    *,
    sessions: int,
    clinicians: int,
    seed: int,
    highs_time_limit_s: float,
    incremental: int,
    console: Console | None = None,
    optimum: bool = True,
) -> dict[str, Any]:
    """Generate the week, run all three, and return the figures."""
    console = console or Console(stderr=True)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        step = progress.add_task("generating the week")
        region = generate(sessions, clinicians, seed)
        problem = Problem(
            sessions=region.sessions,
            windows=region.windows,
            balances=region.balances,
            policy=Policy(),
        )
        progress.update(step, description="the engine")
        clock = time.perf_counter()
        result = plan(problem)
        solve_s = time.perf_counter() - clock
        progress.update(step, description="first come, first served")
        pairs = eligible_pairs(problem)
        first_come = greedy(problem, pairs, seed)
        progress.update(step, description=f"HiGHS (up to {highs_time_limit_s:.0f} s)")
        best = (
            highs_optimum(problem, pairs, highs_time_limit_s)
            if optimum
            else Baseline([], 0, 0, 0.0, 0.0, {"status": "skipped", "has_solution": False})
        )
        progress.update(step, description=f"{incremental} new sessions, one at a time")
        timings = _incremental(region, result, incremental, seed)
    filled = {p.session.id for p in result.proposals}
    deprived = [s for s in region.sessions if s.imd_decile and s.imd_decile <= DEPRIVED]
    proven = best.extra["status"] == "Optimal"
    reference = best.objective if proven else best.extra.get("bound", float("nan"))
    assert problem.balances is not None
    return {
        "solve_s": round(solve_s, 3),
        "filled": len(result.proposals),
        "greedy_filled": first_come.filled,
        "optimum_filled": best.filled if best.extra["has_solution"] else None,
        "objective_gap": (
            round((reference - result.objective) / reference, 5)
            if best.extra["has_solution"] and reference > 0
            else None
        ),
        "max_sector_drain_pct": round(
            max(
                100 * b.net_out_hours / b.offered_hours
                for b in result.balances.values()
                if b.offered_hours
            ),
            2,
        ),
        "greedy_max_sector_drain_pct": round(first_come.max_drain_pct, 2),
        "cap_pct": DEFAULT_CAP_PCT,
        "deprived_fill_rate": round(
            sum(s.id in filled for s in deprived) / max(1, len(deprived)), 4
        ),
        "region_fill_rate": round(len(filled) / len(region.sessions), 4),
        "incremental_p99_ms": round(_p99(timings), 2) if timings else None,
        # The working behind the figures.
        "sessions": len(region.sessions),
        "clinicians": len({w.clinician_id for w in region.windows}),
        "eligible_pairs": len(pairs.session),
        "objective": result.objective,
        "greedy_objective": first_come.objective,
        "optimum_objective": best.objective if best.extra["has_solution"] else None,
        "optimum_bound": (round(best.extra["bound"], 1) if best.extra["has_solution"] else None),
        "optimum_status": best.extra["status"]
        + (
            " (objective_gap measured against HiGHS's bound)"
            if best.extra["has_solution"] and not proven
            else ""
        ),
        "optimum_solve_s": round(best.solve_s, 2),
        "optimum_rows": best.extra.get("rows"),
        "greedy_solve_s": round(first_come.solve_s, 3),
        "start_max_sector_drain_pct": round(
            max(
                100 * b.net_out_hours / b.offered_hours
                for b in problem.balances.values()
                if b.offered_hours
            ),
            2,
        ),
        "incremental_p50_ms": round(statistics.median(timings), 2) if timings else None,
        "engine_timings_s": {k: round(v, 3) for k, v in result.timings_s.items()},
    }
