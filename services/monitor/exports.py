"""What the exports hold, row by row, and how a row is written as CSV or JSON. No I/O.

Every export is a flat table, the same columns in CSV and JSON, so an analyst's script
reads either. Nothing personal: sessions and moves carry Fairshare's own ids, never a
clinician's (not even the pseudonymous one), names only of organisations.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from services.monitor.domain import SectorCounts, SessionFacts, Timeline, current, fill_rate
from services.monitor.summary import Summary
from shared.regions import icb_name


class Format(StrEnum):
    """The formats every export comes in."""

    CSV = "csv"
    JSON = "json"


MEDIA_TYPES = {Format.CSV: "text/csv; charset=utf-8", Format.JSON: "application/json"}

SESSION_COLUMNS: tuple[str, ...] = (
    "session_id",
    "region",
    "region_name",
    "sector",
    "organisation",
    "site_name",
    "role",
    "starts_at",
    "ends_at",
    "hours",
    "status",
    "offered",
    "posted_at",
    "filled_at",
    "minutes_to_fill",
    "late_cancelled",
    "late_given_up",
)
MOVE_COLUMNS: tuple[str, ...] = (
    "move_id",
    "region",
    "region_name",
    "kind",
    "from_sector",
    "to_sector",
    "hours",
    "at",
    "reversed_at",
    "counts",
)
SUMMARY_COLUMNS: tuple[str, ...] = (
    "region",
    "region_name",
    "first_day",
    "last_day",
    "sector",
    "posted",
    "filled",
    "fill_rate",
    "cancelled",
    "unfilled",
    "late_cancelled",
    "late_given_up",
    "hours_filled",
    "fill_minutes_median",
    "fill_minutes_p90",
    "fill_times_counted",
)


def status(counts: SectorCounts) -> str:
    """Where a session stands now: cancelled, unfilled (started with nobody booked),
    filled, or open."""
    if counts.cancelled:
        return "cancelled"
    if counts.unfilled:
        return "unfilled"
    return "filled" if counts.filled else "open"


def session_row(
    session_id: uuid.UUID, facts: SessionFacts, counts: SectorCounts, line: Timeline
) -> dict[str, Any]:
    """One session as the export lists it."""
    said = current(facts)
    hours = None
    if line.starts_at is not None and line.ends_at is not None:
        hours = round((line.ends_at - line.starts_at).total_seconds() / 3600, 2)
    minutes = line.minutes_to_fill()
    return {
        "session_id": session_id,
        "region": counts.region,
        "region_name": icb_name(counts.region),
        "sector": counts.sector,
        "organisation": said.organisation if said else None,
        "site_name": said.site_name if said else None,
        "role": said.role if said else None,
        "starts_at": line.starts_at,
        "ends_at": line.ends_at,
        "hours": hours,
        "status": status(counts),
        "offered": bool(counts.offered),
        "posted_at": line.posted_at,
        "filled_at": line.filled_at,
        "minutes_to_fill": None if minutes is None else round(minutes, 1),
        "late_cancelled": bool(counts.late_cancelled),
        "late_given_up": counts.late_given_up,
    }


def move_row(move: Mapping[str, Any]) -> dict[str, Any]:
    """One move of matching's ledger (a row of ``drain_moves``) as the export lists it."""
    return {
        "move_id": move["move_id"],
        "region": move["region"],
        "region_name": icb_name(move["region"]),
        "kind": move["kind"],
        "from_sector": move["from_sector"],
        "to_sector": move["to_sector"],
        "hours": move["hours"],
        "at": move["at"],
        "reversed_at": move["reversed_at"],
        "counts": move["reversed_at"] is None,
    }


def summary_rows(summaries: Iterable[Summary]) -> list[dict[str, Any]]:
    """Each region's headline figures: a row for all its sectors (sector ``all``), then
    one per sector."""
    rows = []
    for s in summaries:
        for sector, figures, rate in (
            ("all", s.totals, s.fill_rate),
            *((x.sector, x, fill_rate(x.posted, x.filled, x.cancelled)) for x in s.sectors),
        ):
            rows.append(
                {
                    "region": s.region,
                    "region_name": icb_name(s.region),
                    "first_day": s.window.first,
                    "last_day": s.window.last,
                    "sector": sector,
                    "posted": figures.posted,
                    "filled": figures.filled,
                    "fill_rate": None if rate is None else round(rate, 4),
                    "cancelled": figures.cancelled,
                    "unfilled": figures.unfilled,
                    "late_cancelled": figures.late_cancelled,
                    "late_given_up": figures.late_given_up,
                    "hours_filled": figures.hours_filled,
                    "fill_minutes_median": figures.fill_times.median,
                    "fill_minutes_p90": figures.fill_times.p90,
                    "fill_times_counted": figures.fill_times.count,
                }
            )
    return rows


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


# A spreadsheet runs a cell that starts with one of these as a formula ("CSV
# injection"): a site's name is typed by its organisation, so text is defused with a
# leading apostrophe, as OWASP advises. Numbers are written by us and left alone.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    plain = _plain(value)
    if isinstance(plain, str) and plain.startswith(_FORMULA_START):
        return "'" + plain
    return str(plain)


def csv_lines(columns: Sequence[str], rows: Iterable[Mapping[str, Any]], *, header: bool) -> str:
    """Rows as CSV text (RFC 4180, CRLF line ends), with the header line if ``header``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if header:
        writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row[c]) for c in columns])
    return buffer.getvalue()


def json_items(rows: Iterable[Mapping[str, Any]], *, first: bool) -> str:
    """Rows as the items of a JSON array, comma-led unless ``first`` (an export is
    written a chunk at a time between "[" and "]")."""
    parts = [json.dumps({k: _plain(v) for k, v in row.items()}) for row in rows]
    if not parts:
        return ""
    return ("" if first else ",") + ",".join(parts)
