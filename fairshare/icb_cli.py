"""``fairshare icb``: who may sign in to the ICB monitor, and which regions they see."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, TypeVar

import typer
from rich.table import Table

from fairshare.admin_cli import run_in_schema
from fairshare.cli import DEFAULT_DATA_DIR, DataDir, console
from services.monitor import SCHEMA
from services.monitor.access import INVITE_TTL, MAX_INVITE_TTL
from shared.catalogue import REGION_PATTERN
from shared.db.types import Conn

icb_app = typer.Typer(help="ICB viewers of the monitor: invite, list, revoke (monitor service).")
T = TypeVar("T")


def _run(data_dir: DataDir, work: Callable[[Conn], Awaitable[T]]) -> T:
    """Run ``work`` in one transaction on the monitor's schema; refusals exit with why."""
    from services.monitor.viewers import ViewerError  # noqa: PLC0415

    return run_in_schema(data_dir, SCHEMA, work, refusals=(ViewerError,))


@icb_app.command("invite")
def invite(
    region: Annotated[
        str | None,
        typer.Option(help="ICB code of the region they see, e.g. QOP (a national viewer's home)."),
    ] = None,
    national: Annotated[bool, typer.Option("--national", help="They see every region.")] = False,
    name: Annotated[str | None, typer.Option(help="Who they are, e.g. a name or team.")] = None,
    viewer: Annotated[
        str | None,
        typer.Option(help="Invite an existing viewer again (by id), e.g. after signing out."),
    ] = None,
    days: Annotated[
        float,
        typer.Option(
            min=0.01,
            max=MAX_INVITE_TTL.days,
            help="Days the code stays valid if unused.",
        ),
    ] = INVITE_TTL.days,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Print a one-time sign-in code for the monitor (shown once; only its hash is kept)."""
    from services.monitor import viewers  # noqa: PLC0415

    if viewer is not None:
        if region or national or name:
            console.print("[red]--viewer invites someone already set up; give nothing else.[/]")
            raise typer.Exit(2)
        try:
            viewer_id = uuid.UUID(viewer)
        except ValueError:
            console.print(f"[red]Viewer id {viewer!r} is not valid.[/]")
            raise typer.Exit(2) from None
    elif region is None and not national:
        console.print("[red]Give --region (the region they see), or --national.[/]")
        raise typer.Exit(2)
    if region is not None and not re.match(REGION_PATTERN, region):
        console.print(f"[red]Region code {region!r} is not valid[/] (pattern {REGION_PATTERN}).")
        raise typer.Exit(2)
    label = name or (f"National viewer{f' ({region})' if region else ''}" if national else region)

    async def work(conn: Conn) -> tuple[uuid.UUID, str]:
        now = datetime.now(UTC)
        if viewer is not None:
            who = viewer_id
        else:
            who = (
                await viewers.add_viewer(conn, name=str(label), region=region, national=national)
            ).id
        return who, await viewers.invite(conn, who, now=now, ttl=timedelta(days=days))

    who, code = _run(data_dir, work)
    sees = "" if viewer else f" (sees {'every region' if national else f'region {region}'})"
    console.print(f"Viewer {who}{sees}. One-time code, valid {days:g} days, shown once:")
    print(f"invite code: {code}")
    console.print("They sign in at the monitor's /signin page.")


@icb_app.command("revoke")
def revoke(
    who: Annotated[str, typer.Argument(help="The viewer's id, or their name if unique.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Sign a viewer out everywhere and stop their unused codes, for good."""
    from services.monitor import viewers  # noqa: PLC0415

    gone = _run(data_dir, lambda conn: viewers.revoke(conn, who, now=datetime.now(UTC)))
    console.print(f"Revoked viewer {gone.id} ({gone.name}): their sessions have ended.")


@icb_app.command("list")
def list_viewers(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Every viewer: what they see, live sessions, unused codes, and whether revoked."""
    from services.monitor import viewers  # noqa: PLC0415

    rows = _run(data_dir, lambda conn: viewers.listing(conn, now=datetime.now(UTC)))
    out = [
        {
            "viewer_id": str(r.viewer.id),
            "name": r.viewer.name,
            "sees": "all regions" if r.viewer.national else r.viewer.region,
            "home_region": r.viewer.region,
            "sessions": r.sessions,
            "open_invites": r.open_invites,
            "created_at": r.created_at.isoformat(),
            "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None,
        }
        for r in rows
    ]
    if as_json:
        print(json.dumps(out, indent=2))
        return
    table = Table("id", "name", "sees", "sessions", "unused codes", "revoked")
    for r in out:
        table.add_row(
            str(r["viewer_id"]),
            str(r["name"]),
            str(r["sees"]),
            str(r["sessions"]),
            str(r["open_invites"]),
            str(r["revoked_at"] or ""),
        )
    console.print(table)
