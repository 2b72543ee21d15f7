"""Equity: how well a region fills the sessions of its deprived areas, its places and
its PCNs, over a period. No I/O: each session's area comes from its facts (``area``),
kept beside its figures (``session_store.save``); ``equity_routes`` reads them.

Deprived areas, where care is most needed, are hardest to staff: matching fills them
first, and this is where an ICB sees whether that works. A session's area is that of the
organisation where it is worked, as vacancies last said it (``session.posted`` and
``.amended`` carry its IMD decile, place and PCN when vacancies has them recorded).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from html import escape

from services.monitor.charts import (
    BLUE,
    FONT,
    GRID,
    INK,
    MUTED,
    clamp_width,
)
from services.monitor.domain import SessionFacts, current, fill_rate
from services.monitor.summary import Window

# A PCN's own ODS code: U and five digits (a session worked at the PCN itself belongs to
# it; a member practice's sessions name their PCN in the event).
_PCN_CODE = re.compile(r"^U\d{5}$")
NOT_RECORDED = ""  # the group of sessions whose organisation's area vacancies lacks


@dataclass(frozen=True, slots=True)
class Area:
    """Where a session is worked, as the ICB plans: the IMD decile of the organisation's
    area (1 most deprived), its place and its PCN; None where not recorded."""

    imd_decile: int | None = None
    place: str | None = None
    pcn: str | None = None


# The columns of session_facts that keep each session's area, in ``Area``'s order.
AREA_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Area))


def area(facts: SessionFacts) -> Area:
    """The session's area as vacancies last said it (``domain.current``); empty while
    vacancies has said nothing, or said nothing of the area."""
    now = current(facts)
    if now is None:
        return Area()
    pcn = now.pcn or (now.organisation if _PCN_CODE.match(now.organisation) else None)
    place = now.place.strip() if now.place and now.place.strip() else None
    return Area(now.imd_decile, place, pcn)


def quintile(decile: int | None) -> int | None:
    """The deprivation quintile of an IMD decile: 1 (deciles 1–2, most deprived) to 5
    (deciles 9–10, least deprived); None for none."""
    if decile is None or not 1 <= decile <= 10:
        return None
    return (decile + 1) // 2


QUINTILE_WORDS = {
    1: "1 · most deprived",
    2: "2",
    3: "3",
    4: "4",
    5: "5 · least deprived",
}


class Breakdown(StrEnum):
    """The three ways the page splits a region's sessions."""

    DEPRIVATION = "deprivation_quintile"
    PLACE = "place"
    PCN = "pcn"


@dataclass(frozen=True, slots=True)
class AreaRow:
    """What the database sums, per region and area: the sessions starting in the
    period, as they stand now."""

    region: str
    imd_decile: int | None
    place: str | None
    pcn: str | None
    posted: int
    filled: int
    cancelled: int
    unfilled: int
    hours_filled: float


@dataclass(frozen=True, slots=True)
class Group:
    """One group of one breakdown: a quintile, a place or a PCN (``key`` empty for the
    sessions whose area is not recorded)."""

    key: str
    label: str
    posted: int = 0
    filled: int = 0
    cancelled: int = 0
    unfilled: int = 0
    hours_filled: float = 0.0

    @property
    def wanted(self) -> int:
        """Posted less cancelled by the organisation: what could have been filled."""
        return self.posted - self.cancelled

    @property
    def fill_rate(self) -> float | None:
        """Filled over wanted, as the headline's; None when nothing is wanted."""
        return fill_rate(self.posted, self.filled, self.cancelled)


@dataclass(frozen=True, slots=True)
class RegionEquity:
    """One region's sessions of the period by deprivation quintile (all five listed,
    most deprived first), by place and by PCN (by name, not recorded last)."""

    region: str
    window: Window
    quintiles: tuple[Group, ...]
    places: tuple[Group, ...]
    pcns: tuple[Group, ...]

    @property
    def gap_points(self) -> float | None:
        """Fill rate of the least deprived fifth minus that of the most deprived, in
        percentage points (positive: deprived areas are filled less); None unless both
        have sessions wanted."""
        most, least = self.quintiles[0].fill_rate, self.quintiles[4].fill_rate
        if most is None or least is None:
            return None
        return round(100 * (least - most), 1)

    def breakdowns(self) -> tuple[tuple[Breakdown, tuple[Group, ...]], ...]:
        """Each breakdown with its groups, in the page's order."""
        return (
            (Breakdown.DEPRIVATION, self.quintiles),
            (Breakdown.PLACE, self.places),
            (Breakdown.PCN, self.pcns),
        )


def _add(groups: dict[str, Group], key: str, label: str, row: AreaRow) -> None:
    g = groups.get(key) or Group(key, label)
    groups[key] = Group(
        key,
        label,
        g.posted + row.posted,
        g.filled + row.filled,
        g.cancelled + row.cancelled,
        g.unfilled + row.unfilled,
        round(g.hours_filled + row.hours_filled, 2),
    )


def _by_name(groups: dict[str, Group]) -> tuple[Group, ...]:
    named = sorted((g for k, g in groups.items() if k != NOT_RECORDED), key=lambda g: g.label)
    rest = [groups[NOT_RECORDED]] if NOT_RECORDED in groups else []
    return (*named, *rest)


def build_equity(
    rows: Iterable[AreaRow], *, regions: Iterable[str], window: Window
) -> list[RegionEquity]:
    """Each of ``regions`` (in code order): the five quintiles always (zeros where no
    session), "not recorded" after them only when some session's decile is unknown;
    places and PCNs that had sessions, by name, "not recorded" last."""
    found: dict[str, list[AreaRow]] = {}
    for r in rows:
        found.setdefault(r.region, []).append(r)
    views = []
    for region in sorted(set(regions)):
        quints: dict[str, Group] = {str(q): Group(str(q), w) for q, w in QUINTILE_WORDS.items()}
        places: dict[str, Group] = {}
        pcns: dict[str, Group] = {}
        for r in found.get(region, []):
            q = quintile(r.imd_decile)
            _add(
                quints, str(q) if q else NOT_RECORDED, QUINTILE_WORDS.get(q or 0, "Not recorded"), r
            )
            _add(places, r.place or NOT_RECORDED, r.place or "Not recorded", r)
            _add(pcns, r.pcn or NOT_RECORDED, r.pcn or "No PCN recorded", r)
        ordered_quints = [quints[str(q)] for q in QUINTILE_WORDS]
        if NOT_RECORDED in quints:
            ordered_quints.append(quints[NOT_RECORDED])
        views.append(
            RegionEquity(region, window, tuple(ordered_quints), _by_name(places), _by_name(pcns))
        )
    return views


# --- The chart: fill rate per group, as horizontal bars on one scale, 0 to 100% ---


def _pct(rate: float | None) -> str:
    return "no sessions wanted" if rate is None else f"{round(100 * rate)}%"


def _bar_words(g: Group) -> str:
    return f"{g.label}: {_pct(g.fill_rate)} filled ({g.filled} of {g.wanted} wanted)"


ROW_H, LABEL_W_MIN = 26.0, 120.0


def _panel(title: str, groups: Sequence[Group], *, top: float, w: int) -> tuple[list[str], float]:
    """A titled panel of one bar per group; returns its parts and the y below it."""
    label_w = max(LABEL_W_MIN, min(0.38 * w, 200.0))
    figure_w = 74.0
    x0, x1 = label_w, w - figure_w
    parts = [
        f'<text x="0" y="{top + 14:.0f}" font-size="13" font-weight="600" fill="{INK}">'
        f"{escape(title)}</text>"
    ]
    y = top + 24
    for share in (0.0, 0.5, 1.0):
        x = x0 + share * (x1 - x0)
        parts.append(
            f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{x:.1f}" y2="{y + ROW_H * len(groups):.1f}"'
            f' stroke="{GRID}" stroke-width="1"/>'
        )
    for g in groups:
        rate = g.fill_rate
        label = g.label if len(g.label) <= 28 else g.label[:27] + "…"
        parts.append(
            f"<g><title>{escape(_bar_words(g))}</title>"
            f'<text x="{x0 - 8:.1f}" y="{y + 17:.1f}" font-size="12" fill="{INK}"'
            f' text-anchor="end">{escape(label)}</text>'
            # The track is outlined: its full length is every session wanted.
            f'<rect x="{x0:.1f}" y="{y + 5:.1f}" width="{x1 - x0:.1f}" height="14" fill="#fff"'
            f' stroke="{MUTED}" stroke-width="1"/>'
        )
        if rate is not None and rate > 0:
            parts.append(
                f'<rect x="{x0:.1f}" y="{y + 5:.1f}" width="{rate * (x1 - x0):.1f}" height="14"'
                f' fill="{BLUE}" data-rate="{rate:.4f}"/>'
            )
        words = "–" if rate is None else f"{round(100 * rate)}% of {g.wanted}"
        parts.append(
            f'<text x="{x1 + 6:.1f}" y="{y + 17:.1f}" font-size="12" fill="{INK}">'
            f"{escape(words)}</text></g>"
        )
        y += ROW_H
    return parts, y + 8


def _words(view: RegionEquity) -> str:
    rates = "; ".join(_bar_words(g) for g in view.quintiles)
    gap = view.gap_points
    said = (
        f" The least deprived fifth is filled {abs(gap):g} points"
        f" {'more' if gap >= 0 else 'less'} than the most deprived."
        if gap is not None
        else ""
    )
    places = "; ".join(_bar_words(g) for g in view.places) or "no sessions"
    return f"Fill rate by deprivation quintile of the area: {rates}.{said} By place: {places}."


def equity_svg(view: RegionEquity, *, width: int | None = None, id_prefix: str = "equity") -> str:
    """Fill rate by deprivation quintile, then by place, as bars on one 0–100% scale,
    drawn at ``width``; one image with a title and its figures in words."""
    w = clamp_width(width)
    first, y = _panel("By deprivation of the area (IMD quintile)", view.quintiles, top=0, w=w)
    second, y = _panel("By place", view.places, top=y + 6, w=w) if view.places else ([], y)
    h = y + 4
    ident = escape(id_prefix)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h:.0f}"'
        f' viewBox="0 0 {w} {h:.0f}" role="img" aria-labelledby="{ident}-t {ident}-d"'
        f' font-family="{escape(FONT)}">'
        f'<title id="{ident}-t">Fill rate by deprivation and by place</title>'
        f'<desc id="{ident}-d">{escape(_words(view))}</desc>'
        f"{''.join(first)}{''.join(second)}</svg>"
    )
