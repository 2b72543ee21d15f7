"""The page's charts, drawn on the server as SVG: nothing is fetched from a CDN, and the
page needs no charting library. No I/O.

Each chart is drawn for the width the page asks for (in CSS pixels), so its text stays
at a readable size on a phone and on a projector instead of being scaled with the
picture. Every chart is one ``role="img"`` with a title and a description that says
what it shows in words; the page puts a table of the same figures beside it for anyone
who can't see it (or wants the numbers). Shapes differ by more than colour: posted is
an outlined bar and filled a solid one, fill rate has round markers and time to fill
square ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from html import escape

from services.monitor.domain import RegionDrain, sector_label
from services.monitor.summary import DayFigures

# NHS identity colours, as the page's; every one at least 3:1 on white (shapes) and the
# text ones at least 4.5:1.
INK = "#212b32"
MUTED = "#4c6272"
GRID = "#d8dde0"
BLUE = "#005eb8"
GREEN = "#007f3b"
SECTOR_COLOURS: dict[str, str] = {
    "general_practice": "#005eb8",
    "community_pharmacy": "#007f3b",
    "dentistry": "#330072",
    "optometry": "#ae2573",
    "community_nursing": "#425563",
}
OTHER_COLOUR = "#768692"
FONT = "system-ui, -apple-system, 'Segoe UI', Arial, sans-serif"

MIN_WIDTH, MAX_WIDTH, DEFAULT_WIDTH = 280, 1600, 720


def clamp_width(width: int | None) -> int:
    """The width to draw at: the page's, kept to what the layouts are made for."""
    return max(MIN_WIDTH, min(MAX_WIDTH, width or DEFAULT_WIDTH))


def minutes_words(minutes: float | None) -> str:
    """A duration as people say it: "45 min", "3 h 20 min", "2 d 4 h"; "–" for none."""
    if minutes is None:
        return "–"
    m = round(minutes)
    if m < 60:
        return f"{m} min"
    if m < 24 * 60:
        h, rest = divmod(m, 60)
        return f"{h} h {rest} min" if rest else f"{h} h"
    d, rest = divmod(round(m / 60), 24)
    return f"{d} d {rest} h" if rest else f"{d} d"


def _pct(rate: float | None) -> str:
    return "–" if rate is None else f"{round(100 * rate)}%"


def _day(day: date) -> str:
    return f"{day:%a} {day.day} {day:%b}"


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _attrs(attrs: dict[str, str]) -> str:
    return "".join(f' {k}="{escape(v)}"' for k, v in attrs.items())


def _text(
    x: float,
    y: float,
    words: str,
    *,
    size: int = 12,
    fill: str = INK,
    anchor: str = "start",
    bold: bool = False,
    halo: bool = False,
) -> str:
    """A line of text; ``halo`` draws a white outline under it, legible over a band."""
    attrs = {"text-anchor": anchor} if anchor != "start" else {}
    if bold:
        attrs["font-weight"] = "600"
    if halo:
        attrs |= {"stroke": "#fff", "stroke-width": "4", "paint-order": "stroke"}
    return (
        f'<text x="{_n(x)}" y="{_n(y)}" font-size="{size}" fill="{fill}"{_attrs(attrs)}>'
        f"{escape(words)}</text>"
    )


def _nice_max(value: float) -> float:
    """A round top for an axis at or above ``value`` (1, 2, 5 × a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


@dataclass(frozen=True, slots=True)
class _Axis:
    """One panel of a trend chart: where it is, and the days across it."""

    top: float
    height: float
    left: float
    right: float
    days: float
    top_value: float = 1.0

    @property
    def band(self) -> float:
        return (self.right - self.left) / max(1, self.days)

    def x(self, i: int) -> float:
        return self.left + self.band * (i + 0.5)

    def y(self, value: float) -> float:
        return self.top + self.height * (1 - value / self.top_value)

    def grid(self, title: str, ticks: Sequence[tuple[float, str]]) -> list[str]:
        """The panel's title and its horizontal lines, each labelled on the left."""
        out = [_text(0, self.top - 10, title, size=13, bold=True)]
        for value, label in ticks:
            y = _n(self.y(value))
            out.append(
                f'<line x1="{_n(self.left)}" x2="{_n(self.right)}" y1="{y}" y2="{y}"'
                f' stroke="{GRID}"/>'
            )
            out.append(
                _text(self.left - 6, self.y(value) + 4, label, size=11, fill=MUTED, anchor="end")
            )
        return out


def _bars(axis: _Axis, series: Sequence[DayFigures]) -> list[str]:
    """Posted (an outlined bar) and filled (a solid one in front of it) per day."""
    out = axis.grid(
        "Sessions posted and filled",
        [(v, _n(v)) for v in (0.0, axis.top_value / 2, axis.top_value)],
    )
    base = axis.top + axis.height
    for i, d in enumerate(series):
        # At most 40 px: a period of a day or two is still read as bars, not a wall.
        x, bw = axis.x(i), min(40.0, max(2.0, axis.band * 0.7))
        y_posted, y_filled = axis.y(d.posted), axis.y(d.filled)
        tip = f"{_day(d.day)}: {d.posted} posted, {d.filled} filled"
        out.append(
            f"<g><title>{escape(tip)}</title>"
            f'<rect x="{_n(x - bw / 2)}" y="{_n(y_posted)}" width="{_n(bw)}"'
            f' height="{_n(base - y_posted)}" fill="#fff" stroke="{BLUE}" stroke-width="1.5"/>'
            f'<rect x="{_n(x - bw * 0.3)}" y="{_n(y_filled)}" width="{_n(bw * 0.6)}"'
            f' height="{_n(base - y_filled)}" fill="{GREEN}"/></g>'
        )
    return out


def _line(
    axis: _Axis, values: Sequence[float | None], tips: Sequence[str], colour: str, *, square: bool
) -> list[str]:
    """A line through the days that have a value, broken where one has none (no value is
    not zero), with a marker and a tooltip on each day that has one."""
    out: list[str] = []
    runs: list[list[tuple[float, float]]] = [[]]
    for i, v in enumerate(values):
        if v is None:
            runs.append([])
        else:
            runs[-1].append((axis.x(i), axis.y(v)))
    for run in runs:
        if len(run) > 1:
            points = " ".join(f"{_n(x)},{_n(y)}" for x, y in run)
            out.append(
                f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>'
            )
    for i, v in enumerate(values):
        if v is None:
            continue
        x, y = axis.x(i), axis.y(v)
        shape = (
            f'<rect x="{_n(x - 3.5)}" y="{_n(y - 3.5)}" width="7" height="7" fill="{colour}"/>'
            if square
            else f'<circle cx="{_n(x)}" cy="{_n(y)}" r="3.5" fill="{colour}"/>'
        )
        out.append(f"<g><title>{escape(tips[i])}</title>{shape}</g>")
    return out


def _day_labels(axis: _Axis, series: Sequence[DayFigures]) -> list[str]:
    """Days along the bottom: as many as fit (one per 64 px), evenly spaced."""
    n = len(series)
    stride = max(1, -(-n // max(1, int((axis.right - axis.left) // 64))))
    base = axis.top + axis.height
    return [
        _text(
            axis.x(i),
            base + 16,
            f"{d.day.day} {d.day:%b}" if n > 1 else _day(d.day),
            size=11,
            fill=MUTED,
            anchor="middle",
        )
        for i, d in enumerate(series)
        if i % stride == 0
    ]


def _trend_words(series: Sequence[DayFigures], what: str) -> str:
    posted = sum(d.posted for d in series)
    filled = sum(d.filled for d in series)
    medians = [d.median_minutes for d in series if d.median_minutes is not None]
    days = f"{len(series)} day{'s' if len(series) != 1 else ''}"
    if series:
        days += f" from {_day(series[0].day)} to {_day(series[-1].day)}"
    times = (
        f" Daily median time to fill from {minutes_words(min(medians))}"
        f" to {minutes_words(max(medians))}."
        if medians
        else " No session filled yet, so no time to fill."
    )
    return (
        f"{what}, {days}: {posted} sessions posted and {filled} filled.{times}"
        " The table below the chart lists every day."
    )


def trend_svg(
    series: Sequence[DayFigures], *, what: str, width: int | None = None, id_prefix: str = "trend"
) -> str:
    """Posted against filled, fill rate and median time to fill per day, three panels
    over one axis of days. ``what`` names whose figures they are ("All sectors",
    "Dentistry"); ``id_prefix`` keeps the SVG's ids unique on the page."""
    w = clamp_width(width)
    frame = {"left": 48.0, "right": w - 12.0, "days": float(len(series))}
    posted = _Axis(
        26, 110, top_value=_nice_max(max((d.posted for d in series), default=0)), **frame
    )
    rates = _Axis(172, 70, **frame)
    medians = [d.median_minutes for d in series]
    top_minutes = _nice_max(max((m for m in medians if m is not None), default=0) / 60) * 60
    times = _Axis(278, 70, top_value=top_minutes, **frame)
    body = [
        *_bars(posted, series),
        *rates.grid("Fill rate", [(0.0, "0%"), (0.5, "50%"), (1.0, "100%")]),
        *_line(
            rates,
            [d.fill_rate for d in series],
            [f"{_day(d.day)}: fill rate {_pct(d.fill_rate)}" for d in series],
            BLUE,
            square=False,
        ),
        *times.grid(
            "Median time to fill",
            [(v, f"{_n(v / 60)} h") for v in (0.0, top_minutes / 2, top_minutes)],
        ),
        *_line(
            times,
            medians,
            [f"{_day(d.day)}: median {minutes_words(d.median_minutes)}" for d in series],
            INK,
            square=True,
        ),
        *_day_labels(times, series),
    ]
    title = f"Trends per day: {what}"
    return _svg(
        w, 378, title, _trend_words(series, what), id_prefix, "".join(body), **{"font-family": FONT}
    )


def _svg(w: int, h: float, title: str, desc: str, id_prefix: str, body: str, **attrs: str) -> str:
    ident = escape(id_prefix)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{_n(h)}"'
        f' viewBox="0 0 {w} {_n(h)}" role="img" aria-labelledby="{ident}-t {ident}-d"'
        f"{_attrs(attrs)}>"
        f'<title id="{ident}-t">{escape(title)}</title><desc id="{ident}-d">{escape(desc)}</desc>'
        f"{body}</svg>"
    )


# --- The sector flow: a Sankey diagram of hours moved between sectors ---


def _colour(sector: str) -> str:
    return SECTOR_COLOURS.get(sector, OTHER_COLOUR)


SANKEY_TOP = 8.0
# Between two nodes of a side: room for a node's two lines of label however thin it is.
SANKEY_GAP = 34.0


@dataclass(frozen=True, slots=True)
class _Sankey:
    """Where a Sankey's nodes go: each side's sectors stacked at one scale (px per hour)."""

    width: int
    height: float
    scale: float
    hours: dict[tuple[str, str], float]  # (from, to) → hours
    out_of: dict[str, float]
    into: dict[str, float]
    y_src: dict[str, float]
    y_dst: dict[str, float]
    top: float = SANKEY_TOP
    node_w: float = 12.0

    @property
    def x_left(self) -> float:
        return 2.0

    @property
    def x_right(self) -> float:
        return self.width - 2.0 - self.node_w


def _layout(view: RegionDrain, width: int) -> _Sankey:
    hours = {(f.from_sector, f.to_sector): f.hours for f in view.flows if f.hours > 0}
    order = [s.sector for s in view.sectors]
    out_of = {s: sum(h for (a, _), h in hours.items() if a == s) for s in order}
    into = {s: sum(h for (_, b), h in hours.items() if b == s) for s in order}
    out_of = {s: h for s, h in out_of.items() if h > 0}
    into = {s: h for s, h in into.items() if h > 0}
    stacked = max(len(out_of), len(into))
    height = max(150.0, 66.0 * stacked)
    gap, top = SANKEY_GAP, SANKEY_TOP
    scale = (height - gap * (stacked - 1)) / sum(hours.values())

    def place(side: dict[str, float]) -> dict[str, float]:
        span = sum(h * scale for h in side.values()) + gap * (len(side) - 1)
        y, at = top + (height - span) / 2, {}
        for s, h in side.items():
            at[s] = y
            y += h * scale + gap
        return at

    return _Sankey(width, height, scale, hours, out_of, into, place(out_of), place(into))


def _bands(k: _Sankey) -> list[str]:
    """A band per pair, leaving its source in the order of the targets and entering its
    target in the order of the sources, so that no two bands cross at a node."""
    out = []
    next_src, next_dst = dict(k.y_src), dict(k.y_dst)
    x0, x1 = k.x_left + k.node_w, k.x_right
    mid = (x0 + x1) / 2
    for s in k.out_of:
        for t in k.into:
            hours = k.hours.get((s, t))
            if not hours:
                continue
            th = hours * k.scale
            y0, y1 = next_src[s], next_dst[t]
            next_src[s] += th
            next_dst[t] += th
            path = (
                f"M{_n(x0)},{_n(y0)} C{_n(mid)},{_n(y0)} {_n(mid)},{_n(y1)} {_n(x1)},{_n(y1)}"
                f" L{_n(x1)},{_n(y1 + th)} C{_n(mid)},{_n(y1 + th)} {_n(mid)},{_n(y0 + th)}"
                f" {_n(x0)},{_n(y0 + th)} Z"
            )
            tip = f"{sector_label(s)} to {sector_label(t)}: {hours:.1f} h"
            out.append(
                f'<path d="{path}" fill="{_colour(s)}" fill-opacity="0.38" stroke="{_colour(s)}"'
                f' stroke-opacity="0.7" stroke-width="0.5"><title>{escape(tip)}</title></path>'
            )
    return out


def _nodes(k: _Sankey, view: RegionDrain) -> list[str]:
    """Each side's bars, labelled inside the diagram (white halo over the bands): on the
    left a sector's hours out, net outflow and cap; on the right its hours in."""
    rows = {s.sector: s for s in view.sectors}
    out = []
    for side, x, hours_of, ys in (
        ("out", k.x_left, k.out_of, k.y_src),
        ("in", k.x_right, k.into, k.y_dst),
    ):
        for sector, hours in hours_of.items():
            h, y = hours * k.scale, ys[sector]
            out.append(
                f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(k.node_w)}"'
                f' height="{_n(max(h, 1.5))}" fill="{_colour(sector)}"/>'
            )
            words = f"{hours:.1f} h {side}"
            row = rows.get(sector)
            if side == "out" and row is not None:
                net = row.net_out_hours
                words += f" · net {abs(net):.1f} h {'in' if net < 0 else 'out'}"
                words += f" · cap {row.cap_pct:g}%"
                if row.alert_standing:
                    words += " · drain alert"
            # Labels inside the diagram, beside their bar, over the bands (with a halo).
            lx, anchor = (x + k.node_w + 6, "start") if side == "out" else (x - 6, "end")
            cy = y + h / 2
            out.append(_text(lx, cy - 2, sector_label(sector), bold=True, anchor=anchor, halo=True))
            out.append(_text(lx, cy + 12, words, size=11, fill=MUTED, anchor=anchor, halo=True))
    return out


def sankey_svg(view: RegionDrain, *, width: int | None = None, id_prefix: str = "flow") -> str:
    """Hours moved between sectors over the window: each sector that lost hours on the
    left, each that gained on the right, a band per pair as thick as its hours. Each
    left label also says the sector's net outflow and its cap, and a standing drain
    alert in words (not only by colour)."""
    w = clamp_width(width)
    title = f"Hours moved between sectors, last {view.window_days} days"
    flows = [f for f in view.flows if f.hours > 0]
    if not flows:
        words = f"Nothing moved between sectors in the last {view.window_days} days."
        body = _text(w / 2, 30, words, size=13, fill=MUTED, anchor="middle")
        return _svg(w, 48, title, words, id_prefix, body, **{"font-family": FONT})
    k = _layout(view, w)
    total = sum(f.hours for f in flows)
    biggest = sorted(flows, key=lambda f: -f.hours)[:3]
    desc = (
        f"{total:.1f} hours moved between sectors in region {view.region} over the last"
        f" {view.window_days} days. Largest: "
        + "; ".join(
            f"{sector_label(f.from_sector)} to {sector_label(f.to_sector)} {f.hours:.1f} h"
            for f in biggest
        )
        + ". The table of hours from each sector to each other lists every pair."
    )
    body = "".join([*_bands(k), *_nodes(k, view)])
    return _svg(w, k.top * 2 + k.height, title, desc, id_prefix, body, **{"font-family": FONT})
