"""``fairshare policy``: the ICB's drain-guard policy per region (matching service)."""

from __future__ import annotations

import asyncio
import getpass
import os
import re
from typing import Annotated

import typer
from rich.table import Table

from fairshare.cli import DEFAULT_DATA_DIR, DataDir, console, database_url
from services.matching.policy import (
    RECOMMENDED_CROSS_SECTOR_WITHIN_H,
    RECOMMENDED_HOLD_BEYOND_H,
    ROUND_HOUR,
)
from shared.catalogue import REGION_PATTERN, Sector
from shared.db.pool import connect

policy_app = typer.Typer(help="The drain guard's policy per region (matching service).")
Region = Annotated[str, typer.Option(help="ICB code of the region, e.g. QOP.")]


def _check_region(region: str) -> None:
    if not re.match(REGION_PATTERN, region):
        console.print(f"[red]Region code {region!r} is not valid[/] (pattern {REGION_PATTERN}).")
        raise typer.Exit(2)


# The longest hold or cross-sector limit: four weeks, in hours.
MAX_LIMIT_H = 672.0
OFF = "off"


def parse_limit(option: str, value: str) -> float | None:
    """``"72"`` → 72.0, ``"off"`` → None (no limit); ValueError names ``option``."""
    if value.strip().lower() == OFF:
        return None
    try:
        hours = float(value)
    except ValueError:
        msg = f"{option} {value!r}: give a number of hours, e.g. 48, or off for no limit"
        raise ValueError(msg) from None
    if not 0 < hours <= MAX_LIMIT_H:  # also rejects nan
        msg = f"{option} {value!r}: the hours must be more than 0 and at most {MAX_LIMIT_H:g}"
        raise ValueError(msg)
    return hours


def _timing_words(hold_beyond_h: float | None, cross_sector_within_h: float | None) -> str:
    """When the region's offers are made, as ``policy show`` says it."""
    hold = (
        "no hold (sessions offered as soon as posted)"
        if hold_beyond_h is None
        else f"hold beyond {hold_beyond_h:g} h (sessions further ahead wait, planned at the"
        f" daily round, {ROUND_HOUR}:00 UK time, once within)"
    )
    cross = (
        "moves across sectors for sessions at any time ahead"
        if cross_sector_within_h is None
        else f"moves across sectors only for sessions within {cross_sector_within_h:g} h"
    )
    return f"Offers: {hold}; {cross}."


@policy_app.command("show")
def show(region: Region, data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """The region's policy and each sector's standing against its cap."""
    from datetime import UTC, datetime  # noqa: PLC0415

    from services.matching import SCHEMA, repository  # noqa: PLC0415
    from services.matching.policy import cap_hours  # noqa: PLC0415

    _check_region(region)

    async def go() -> None:
        conn = await connect(database_url(data_dir), SCHEMA)
        try:
            policy = await repository.policy(conn, region)
            balances = await repository.balances(
                conn, region, datetime.now(UTC), policy.window_days
            )
        finally:
            await conn.close()
        console.print(
            f"Region {region}: home first {'on' if policy.home_first else 'off'};"
            f" alert at {policy.alert_share:.0%} of a cap;"
            f" rolling {policy.window_days} days."
        )
        console.print(_timing_words(policy.hold_beyond_h, policy.cross_sector_within_h))
        table = Table("sector", "cap %", "offered h", "net out h", "used of cap")
        for sector in Sector:
            b = balances[sector]
            cap = cap_hours(policy, sector, b)
            used = f"{100 * b.net_out_hours / cap:.0f}%" if cap > 0 else "-"
            table.add_row(
                sector.value,
                f"{policy.cap_for(sector):g}",
                f"{b.offered_hours:.0f}",
                f"{b.net_out_hours:.1f}",
                used,
            )
        console.print(table)

    asyncio.run(go())


@policy_app.command("set")
def set_(
    region: Region,
    cap: Annotated[
        list[str] | None,
        typer.Option(help="SECTOR=PERCENT, e.g. community_pharmacy=8; repeat for several."),
    ] = None,
    home_first: Annotated[
        bool | None, typer.Option("--home-first/--no-home-first", help="Home sector first.")
    ] = None,
    alert_share: Annotated[
        float | None,
        typer.Option(min=0.01, max=1.0, help="Share of a cap that raises a drain alert."),
    ] = None,
    hold_beyond_h: Annotated[
        str | None,
        typer.Option(
            metavar="HOURS|off",
            help="Offer sessions only once they start within this many hours (those further"
            f" ahead wait for the daily round, {ROUND_HOUR}:00 UK time, once within them);"
            f" 'off' for no hold. Recommended: {RECOMMENDED_HOLD_BEYOND_H:g}.",
        ),
    ] = None,
    cross_sector_within_h: Annotated[
        str | None,
        typer.Option(
            metavar="HOURS|off",
            help="Offer moves across sectors only for sessions starting within this many"
            " hours; 'off' for no limit."
            f" Recommended: {RECOMMENDED_CROSS_SECTOR_WITHIN_H:g}.",
        ),
    ] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Change the region's policy; the change is published as `policy.changed`."""
    from services.matching import SCHEMA  # noqa: PLC0415
    from services.matching.admin import Keep, set_policy  # noqa: PLC0415
    from services.matching.policy import parse_caps  # noqa: PLC0415
    from shared.messaging.emitter import Emitter  # noqa: PLC0415

    _check_region(region)
    try:
        caps = parse_caps(cap or [])
    except ValueError as exc:
        console.print(f"[red]--{exc}[/]")
        raise typer.Exit(2) from None
    limits: dict[str, float | Keep | None] = {}
    for option, value in (
        ("--hold-beyond-h", hold_beyond_h),
        ("--cross-sector-within-h", cross_sector_within_h),
    ):
        try:
            limits[option] = Keep.KEEP if value is None else parse_limit(option, value)
        except ValueError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(2) from None
    if (
        not caps
        and home_first is None
        and alert_share is None
        and hold_beyond_h is None
        and cross_sector_within_h is None
    ):
        console.print(
            "[red]Nothing to change:[/] give --cap, --home-first, --alert-share,"
            " --hold-beyond-h or --cross-sector-within-h."
        )
        raise typer.Exit(2)
    emitter = Emitter(
        producer="matching",
        schema=SCHEMA,
        topic_prefix=os.environ.get("FAIRSHARE_TOPIC_PREFIX", ""),
    )

    async def go() -> None:
        conn = await connect(database_url(data_dir), SCHEMA)
        try:
            async with conn.transaction():
                await set_policy(
                    conn,
                    region,
                    emitter=emitter,
                    changed_by=getpass.getuser(),
                    caps=caps,
                    home_first=home_first,
                    alert_share=alert_share,
                    hold_beyond_h=limits["--hold-beyond-h"],
                    cross_sector_within_h=limits["--cross-sector-within-h"],
                )
        finally:
            await conn.close()

    asyncio.run(go())
    console.print(f"Policy of {region} changed and published; `fairshare policy show` to see it.")
