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
from standardwebhooks import Webhook

from fairshare.services import SERVICES, migrate_all, run_service
from shared.catalogue import (
    is_ods_code,
)

app = typer.Typer(
    help="Fairshare: a shared regional staff bank for NHS primary care.",
    pretty_exceptions_enable=False,
)
webhook_app = typer.Typer(help="Send signed web hook deliveries, as a rota system would.")
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
    from services.vacancies.secret_box import SecretKeyError  # noqa: PLC0415

    try:
        run_service(service)
    except SecretKeyError as exc:  # missing or malformed keys: a refusal to start, said plainly
        console.print(f"[red]The {service} service will not start:[/] {exc}")
        raise typer.Exit(2) from None


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


@app.command()
def check(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    wait: Annotated[
        float, typer.Option(min=0, help="Seconds to wait for events in flight to be handled.")
    ] = 60,
) -> None:
    """Check that the four services agree; print each problem (or "consistent")."""
    from fairshare.consistency import report, run_check  # noqa: PLC0415

    found, notes = asyncio.run(run_check(database_url(data_dir), wait_s=wait))
    print(report(found, notes))
    if found:
        raise typer.Exit(1)


def _register_admin() -> None:
    # Imported late: the admin commands need this module's helpers defined first.
    from fairshare import admin_cli  # noqa: PLC0415
    from fairshare.bench import bench_app  # noqa: PLC0415
    from fairshare.db_cli import db_app  # noqa: PLC0415
    from fairshare.icb_cli import icb_app  # noqa: PLC0415
    from fairshare.monitor_rebuild import monitor_app  # noqa: PLC0415
    from fairshare.policy_cli import policy_app  # noqa: PLC0415
    from fairshare.topics_cli import topics_app  # noqa: PLC0415

    app.add_typer(admin_cli.org_app, name="org")
    app.add_typer(admin_cli.clinician_app, name="clinician")
    app.add_typer(admin_cli.sessions_app, name="sessions")
    app.add_typer(admin_cli.callbacks_app, name="callbacks")
    app.add_typer(bench_app, name="bench")
    app.add_typer(policy_app, name="policy")
    app.add_typer(monitor_app, name="monitor")
    app.add_typer(icb_app, name="icb")
    app.add_typer(db_app, name="db")
    app.add_typer(topics_app, name="topics")


_register_admin()
