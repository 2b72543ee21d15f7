"""The ``fairshare`` command (typer): run services, the whole system, and administer it."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import asyncpg
import httpx
import typer
from rich.console import Console
from rich.table import Table
from standardwebhooks import Webhook

from fairshare.services import SERVICES, migrate_all, run_service
from shared.catalogue import ODS_PATTERN, REGION_PATTERN, Profession, Sector, is_ods_code

app = typer.Typer(
    help="Fairshare: a shared regional staff bank for NHS primary care.",
    pretty_exceptions_enable=False,
)
org_app = typer.Typer(help="Organisations that post sessions (vacancies service).")
clinician_app = typer.Typer(help="Clinicians in the shared bank (bank service).")
sessions_app = typer.Typer(help="Posted sessions (vacancies service).")
webhook_app = typer.Typer(help="Send signed web hook deliveries, as a rota system would.")
app.add_typer(org_app, name="org")
app.add_typer(clinician_app, name="clinician")
app.add_typer(sessions_app, name="sessions")
app.add_typer(webhook_app, name="webhook")
console = Console()

DataDir = Annotated[
    Path,
    typer.Option(envvar="FAIRSHARE_DATA_DIR", help="Where `fairshare dev` keeps its data."),
]
DEFAULT_DATA_DIR = Path(".fairshare")


def database_url(data_dir: Path) -> str:
    """The database to administer: FAIRSHARE_DATABASE_URL, or the running dev system's."""
    if url := os.environ.get("FAIRSHARE_DATABASE_URL"):
        return url
    runtime = data_dir / "runtime.json"
    if runtime.exists():
        url = json.loads(runtime.read_text())["database_url"]
        return str(url)
    console.print(
        "[red]No database to talk to:[/] start the system with `make run` (or `fairshare dev`)"
        " or set FAIRSHARE_DATABASE_URL."
    )
    raise typer.Exit(2)


async def _connect(data_dir: Path, schema: str) -> asyncpg.Connection:
    from shared.db.pool import connect  # noqa: PLC0415 - keep `fairshare --help` fast

    return await connect(database_url(data_dir), schema)


@app.command()
def dev(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    kafka_port: Annotated[int, typer.Option(help="Port of the embedded broker.")] = 9092,
    base_port: Annotated[int, typer.Option(help="First of four service ports.")] = 8001,
) -> None:
    """Run the whole system on embedded PostgreSQL and Kafka until Ctrl-C."""
    from fairshare.dev import DevOptions, run_dev  # noqa: PLC0415

    options = DevOptions(data_dir=data_dir.resolve(), kafka_port=kafka_port, base_port=base_port)
    raise typer.Exit(asyncio.run(run_dev(options)))


@app.command()
def serve(service: Annotated[str, typer.Argument(help=f"One of: {', '.join(SERVICES)}.")]) -> None:
    """Run one service in the foreground (what `dev` and docker-compose start)."""
    if service not in SERVICES:
        console.print(f"[red]Unknown service {service!r}[/]; choose one of {', '.join(SERVICES)}.")
        raise typer.Exit(2)
    run_service(service)


@app.command()
def migrate(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Apply every service's database migrations."""
    applied = asyncio.run(migrate_all(database_url(data_dir)))
    console.print(f"Applied: {', '.join(applied) if applied else 'nothing (up to date)'}")


@app.command()
def asyncapi(
    out: Annotated[Path, typer.Option(help="Folder to write asyncapi.yaml into.")] = Path("docs"),
) -> None:
    """Write the AsyncAPI catalogue of every topic."""
    from fairshare.asyncapi import write_catalogue  # noqa: PLC0415

    console.print(f"Wrote {write_catalogue(out)}")


def _check(value: str, pattern: str, what: str) -> str:
    import re  # noqa: PLC0415

    if not re.match(pattern, value):
        console.print(f"[red]{what} {value!r} is not valid[/] (expected pattern {pattern}).")
        raise typer.Exit(2)
    return value


@org_app.command("add")
def org_add(
    ods: Annotated[str, typer.Option(help="ODS code, e.g. A81001 (practice), FVR79 (pharmacy).")],
    name: Annotated[str, typer.Option(help="Organisation name.")],
    sector: Annotated[Sector, typer.Option(help="Sector of the organisation.")],
    region: Annotated[str, typer.Option(help="ICB code of its region, e.g. QOP.")],
    lat: Annotated[float, typer.Option(min=-90, max=90, help="Latitude of the site.")],
    lon: Annotated[float, typer.Option(min=-180, max=180, help="Longitude of the site.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Register an organisation and print its web hook signing secret."""
    from services.vacancies import SCHEMA  # noqa: PLC0415
    from services.vacancies.admin import add_organisation  # noqa: PLC0415
    from services.vacancies.domain import Organisation  # noqa: PLC0415

    _check(ods, ODS_PATTERN, "ODS code")
    _check(region, REGION_PATTERN, "Region code")
    org = Organisation(ods, name, sector, region, lat, lon, active=True)

    async def _add() -> str:
        conn = await _connect(data_dir, SCHEMA)
        try:
            return await add_organisation(conn, org)
        except asyncpg.UniqueViolationError:
            console.print(f"[red]Organisation {ods} is already registered.[/]")
            raise typer.Exit(1) from None
        finally:
            await conn.close()

    secret = asyncio.run(_add())
    console.print(f"Registered {ods} ({name}). Web hook signing secret (keep it safe):")
    print(secret)


@clinician_app.command("add")
def clinician_add(
    name: Annotated[str, typer.Option(help="Name shown to the clinician (kept in the bank).")],
    profession: Annotated[Profession, typer.Option(help="Profession.")],
    home_sector: Annotated[Sector, typer.Option(help="Sector they normally work in.")],
    region: Annotated[str, typer.Option(help="ICB code of their region, e.g. QOP.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Register a clinician and print their id and sign-in token."""
    from services.bank import SCHEMA  # noqa: PLC0415
    from services.bank.admin import add_clinician  # noqa: PLC0415

    _check(region, REGION_PATTERN, "Region code")

    async def _add() -> tuple[str, str]:
        conn = await _connect(data_dir, SCHEMA)
        try:
            clinician, token = await add_clinician(
                conn,
                display_name=name,
                profession=profession,
                home_sector=home_sector,
                region=region,
            )
            return str(clinician.id), token
        finally:
            await conn.close()

    clinician_id, token = asyncio.run(_add())
    console.print(f"Registered clinician {clinician_id}. Sign-in token (shown once):")
    print(token)


@sessions_app.command("list")
def sessions_list(
    ods: Annotated[str | None, typer.Option(help="Only this organisation's.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """List posted sessions and their status."""
    from services.vacancies import SCHEMA  # noqa: PLC0415
    from services.vacancies.repository import list_sessions  # noqa: PLC0415

    async def _list() -> list[dict[str, str]]:
        conn = await _connect(data_dir, SCHEMA)
        try:
            rows = await list_sessions(conn, organisation=ods)
        finally:
            await conn.close()
        keys = ("id", "organisation", "external_id", "profession", "starts_at", "ends_at")
        return [{k: str(r[k]) for k in (*keys, "status", "clinician_id")} for r in rows]

    rows = asyncio.run(_list())
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("session", "org", "external id", "profession", "starts", "ends", "status")
    for r in rows:
        table.add_row(
            r["id"][:8],
            r["organisation"],
            r["external_id"],
            r["profession"],
            r["starts_at"],
            r["ends_at"],
            r["status"],
        )
    console.print(table)


@webhook_app.command("post")
def webhook_post(
    ods: Annotated[str, typer.Option(help="Your ODS code.")],
    secret: Annotated[str, typer.Option(envvar="FAIRSHARE_WEBHOOK_SECRET", help="whsec_...")],
    body: Annotated[Path, typer.Argument(help="JSON file of the delivery; - for stdin.")],
    url: Annotated[str, typer.Option(help="Base URL of the vacancies service.")] = (
        "http://127.0.0.1:8001"
    ),
) -> None:
    """Sign a delivery with Standard Webhooks and POST it; print the answer."""
    if not is_ods_code(ods):
        console.print(f"[red]ODS code {ods!r} is not valid.[/]")
        raise typer.Exit(2)
    payload = sys.stdin.read() if str(body) == "-" else body.read_text()
    msg_id = f"msg_{uuid.uuid4().hex}"
    now = datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, now, payload)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
    response = httpx.post(f"{url}/webhooks/{ods}", content=payload, headers=headers, timeout=10)
    print(response.status_code)
    print(response.text)
    if response.status_code >= 400:
        raise typer.Exit(1)
