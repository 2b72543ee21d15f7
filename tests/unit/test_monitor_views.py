"""The monitor's pure views: period windows, the charts' SVG, durations in words, and the
export's cells."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta

import pytest

from services.monitor.charts import minutes_words, sankey_svg, trend_svg
from services.monitor.domain import Flow, build_drain
from services.monitor.exports import csv_lines
from services.monitor.summary import (
    LOCAL,
    DayFigures,
    Period,
    PeriodError,
    Window,
    build_trends,
    window_for,
)

NOW = datetime(2026, 3, 29, 11, 0, tzinfo=UTC)  # the day the clocks go forward
SVG = "{http://www.w3.org/2000/svg}"


def test_named_periods_end_today_and_a_custom_one_is_its_days_both_included() -> None:
    """7 days is today and the six before; custom days run midnight to midnight in
    England, so the day the clocks go forward is 23 hours long."""
    week = window_for(Period.DAYS_7, None, None, now=NOW)
    assert (week.first, week.last) == (date(2026, 3, 23), date(2026, 3, 29))
    assert len(week.days()) == 7
    one = window_for(None, date(2026, 3, 29), date(2026, 3, 29), now=NOW)
    assert one.period is Period.CUSTOM
    # (Aware datetimes of one zone subtract by the clock on the wall: compare instants.)
    assert one.until.astimezone(UTC) - one.since.astimezone(UTC) == timedelta(hours=23)
    assert one.since == datetime(2026, 3, 29, tzinfo=LOCAL)


@pytest.mark.parametrize(
    ("period", "first", "last", "wrong"),
    [
        (Period.CUSTOM, None, None, ["from", "to"]),
        (Period.CUSTOM, date(2026, 3, 2), None, ["to"]),
        (None, date(2026, 3, 2), date(2026, 3, 1), ["to"]),
        (None, date(2024, 12, 31), date(2026, 1, 1), ["to"]),  # 367 days
        (Period.TODAY, date(2026, 3, 2), date(2026, 3, 3), ["from", "to"]),
        (None, date(9999, 12, 30), date(9999, 12, 31), ["from", "to"]),  # no 31 Dec + 1
        (None, date(1, 1, 1), date(2026, 1, 1), ["from"]),
    ],
)
def test_a_wrong_period_names_each_wrong_field(
    period: Period | None, first: date | None, last: date | None, wrong: list[str]
) -> None:
    """Each field that is wrong is named once, with why."""
    with pytest.raises(PeriodError) as refused:
        window_for(period, first, last, now=NOW)
    assert [name for name, _ in refused.value.errors] == wrong
    assert all(why for _, why in refused.value.errors)


@pytest.mark.parametrize(
    ("minutes", "words"),
    [(None, "–"), (0.4, "0 min"), (45, "45 min"), (60, "1 h"), (200, "3 h 20 min"),
     (24 * 60 + 250, "1 d 4 h"), (48 * 60, "2 d")],
)  # fmt: skip
def test_durations_read_as_people_say_them(minutes: float | None, words: str) -> None:
    """Minutes, then hours and minutes, then days and hours."""
    assert minutes_words(minutes) == words


def test_the_charts_are_well_formed_svg_with_a_title_and_a_description() -> None:
    """Trends over days with and without values, a Sankey with moves and one with none:
    each parses as XML, is one image named by its title and description, is drawn at
    the width asked for, and breaks a line where a day has no value."""
    window = Window(Period.DAYS_7, date(2026, 3, 23), date(2026, 3, 29))
    days = [DayFigures(d) for d in window.days()]
    days[2] = DayFigures(days[2].day, posted=4, filled=3, median_minutes=90)
    days[5] = DayFigures(days[5].day, posted=2, filled=2, median_minutes=30)
    for svg in (
        trend_svg(days, what="All sectors", width=500, id_prefix="t1"),
        trend_svg([], what="Dentistry", id_prefix="t2"),
        sankey_svg(
            build_drain(
                [Flow("QOP", "community_pharmacy", "general_practice", 3.5)],
                [],
                [],
                now=NOW,
                regions=["QOP"],
            )[0],
            width=390,
        ),
        sankey_svg(build_drain([], [], [], now=NOW, regions=["QOP"])[0]),
    ):
        root = ET.fromstring(svg)
        assert root.get("role") == "img"
        labels = root.get("aria-labelledby", "").split()
        title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
        assert title is not None
        assert desc is not None
        assert [title.get("id"), desc.get("id")] == labels
        assert title.text
        assert desc.text
    trend = ET.fromstring(trend_svg(days, what="All sectors", width=500))
    assert trend.get("width") == "500"
    # Two days with a fill rate, three apart: markers, and no line drawn across the gap.
    assert len(trend.findall(f".//{SVG}circle")) == 2
    assert trend.findall(f".//{SVG}polyline") == []


def test_trends_list_every_day_and_sector_with_zeros_where_nothing_started() -> None:
    """A region without sessions still has a series per catalogue sector and all, each
    with every day of the window."""
    window = Window(Period.CUSTOM, date(2026, 3, 1), date(2026, 3, 3))
    (trends,) = build_trends([], regions=["QOP"], window=window)
    assert next(iter(trends.series)) == ""  # all sectors first
    assert len(trends.series) == 6
    assert all(len(days) == 3 and days[0].posted == 0 for days in trends.series.values())


def test_text_a_spreadsheet_would_run_is_defused_and_numbers_are_left_alone() -> None:
    """=, +, - and @ at the start of text get an apostrophe; ids, numbers and empty cells
    are written as they are."""
    row = {"a": "=SUM(A1)", "b": "-2+3", "c": -1.5, "d": None, "e": uuid.UUID(int=1), "f": True}
    text = csv_lines(list(row), [row], header=False)
    assert text.strip() == "'=SUM(A1),'-2+3,-1.5,,00000000-0000-0000-0000-000000000001,true"
