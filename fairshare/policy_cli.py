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
from shared.catalogue import REGION_PATTERN, Sector
from shared.db.pool import connect

policy_app = typer.Typer(help="The drain guard's policy per region (matching service).")
Region = Annotated[str, typer.Option(help="ICB code of the region, e.g. QOP.")]


def _check_region(region: str) -> None:
    if not re.match(REGION_PATTERN, region):
        console.print(f"[red]Region code {region!r} is not valid[/] (pattern {REGION_PATTERN}).")
        raise typer.Exit(2)


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
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Change the region's policy; the change is published as `policy.changed`."""
    from services.matching import SCHEMA  # noqa: PLC0415
    from services.matching.admin import set_policy  # noqa: PLC0415
    from services.matching.policy import parse_caps  # noqa: PLC0415
    from shared.messaging.emitter import Emitter  # noqa: PLC0415

    _check_region(region)
    try:
        caps = parse_caps(cap or [])
    except ValueError as exc:
        console.print(f"[red]--{exc}[/]")
        raise typer.Exit(2) from None
    if not caps and home_first is None and alert_share is None:
        console.print("[red]Nothing to change:[/] give --cap, --home-first or --alert-share.")
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
                )
        finally:
            await conn.close()

    asyncio.run(go())
    console.print(f"Policy of {region} changed and published; `fairshare policy show` to see it.")
