"""The per-clinician rules of a plan, written once for both planners. No I/O.

The heuristic asks "may this clinician also take this session?" (``can_add``); the
exact model states the same rules as constraints (``conflict_cliques``,
``rest_conflicts``, ``week_rows``). Both read their definitions from here and from
``working_time``, so a rule changed here changes in both.

- No two sessions of one clinician overlap.
- Unless self-employed (for whom both are warnings): 11 hours' rest between working
  days, and, unless opted out, at most 48 hours in any 7 days that include a new shift.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from services.matching.domain import overlaps
from services.matching.working_time import WEEK, WEEK_LIMIT_H, breaks_any, too_little_rest

Span = tuple[datetime, datetime]
WEEK_LIMIT_S = int(WEEK_LIMIT_H * 3600)


def can_add(
    new: Span, others: Sequence[Span], busy: Sequence[Span], *, strict: bool, opted_out: bool
) -> bool:
    """Whether a clinician holding ``others`` (and committed to ``busy``) may take ``new``."""
    if any(overlaps(*new, *o) for o in others):
        return False
    return not strict or not breaks_any(new, [*busy, *others], opted_out=opted_out)


def conflict_cliques(spans: Sequence[Span]) -> list[list[int]]:
    """Sets of ``spans`` (indices) that all share an instant: one clinician takes at most
    one of each. Every overlapping pair is in some set (a pair overlaps exactly when the
    later start lies inside the other), and a set is tighter for a solver than its
    pairs."""
    order = sorted(range(len(spans)), key=lambda i: spans[i][0])
    cliques: list[list[int]] = []
    seen: set[tuple[int, ...]] = set()
    for k, i in enumerate(order):
        t = spans[i][0]
        members = tuple(j for j in order[: k + 1] if spans[j][0] <= t < spans[j][1])
        if len(members) > 1 and members not in seen:
            seen.add(members)
            cliques.append(list(members))
    return cliques


def rest_conflicts(spans: Sequence[Span]) -> list[tuple[int, int]]:
    """Pairs of ``spans`` (indices) less than 11 hours apart on different working days."""
    return [
        (i, j)
        for i in range(len(spans))
        for j in range(i + 1, len(spans))
        if too_little_rest(spans[i], spans[j])
    ]


def rested_after(span: Span, busy: Sequence[Span]) -> bool:
    """Whether ``span`` keeps 11 hours' rest from every commitment."""
    return not any(too_little_rest(span, b) for b in busy)


def _seconds(span: Span) -> int:
    return int((span[1] - span[0]).total_seconds())


def _clip(span: Span, start: datetime, end: datetime) -> int:
    return max(0, int((min(span[1], end) - max(span[0], start)).total_seconds()))


def week_rows(
    spans: Sequence[Span], busy: Sequence[Span]
) -> list[tuple[list[tuple[int, int]], int]]:
    """The 48-hour rule as rows ``sum(seconds * x[i]) <= bound`` over ``spans`` (indices).

    One row per 7 days that could be the busiest (starting at some start, or 7 days
    before some end). Hours already past the limit (bookings from before, or elsewhere)
    bar every new shift in those 7 days and nothing outside them: were the bound
    negative, a whole region's model would be infeasible for one clinician's history.
    """
    every = [*spans, *busy]
    if sum(_seconds(s) for s in every) <= WEEK_LIMIT_S:
        return []
    rows = []
    for t in sorted({s for s, _ in every} | {e - WEEK for _, e in every}):
        end = t + WEEK
        fixed = sum(_clip(b, t, end) for b in busy)
        terms = [(i, _clip(s, t, end)) for i, s in enumerate(spans)]
        terms = [(i, s) for i, s in terms if s]
        if terms and fixed + sum(s for _, s in terms) > WEEK_LIMIT_S:
            rows.append((terms, max(0, WEEK_LIMIT_S - fixed)))
    return rows
