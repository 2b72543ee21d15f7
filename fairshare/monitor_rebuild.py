"""``fairshare monitor rebuild``: the monitor's projections afresh, from its topics."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fairshare.cli import DEFAULT_DATA_DIR, DataDir, console, database_url
from services.monitor import SCHEMA, SERVICE

monitor_app = typer.Typer(help="The ICB monitor's figures (monitor service).")


def kafka_bootstrap(data_dir: Path, given: str | None) -> str:
    """The broker to read: the option (or FAIRSHARE_KAFKA_BOOTSTRAP), or the running dev
    system's."""
    if given:
        return given
    runtime = data_dir / "runtime.json"
    if runtime.exists():
        return str(json.loads(runtime.read_text())["kafka_bootstrap"])
    console.print(
        "[red]No broker to read:[/] start the system with `make run` (or `fairshare dev`)"
        " or set FAIRSHARE_KAFKA_BOOTSTRAP."
    )
    raise typer.Exit(2)


@monitor_app.command("rebuild")
def rebuild(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    bootstrap: Annotated[
        str | None,
        typer.Option(envvar="FAIRSHARE_KAFKA_BOOTSTRAP", help="Kafka bootstrap servers."),
    ] = None,
    topic_prefix: Annotated[
        str, typer.Option(envvar="FAIRSHARE_TOPIC_PREFIX", help="Prefix of the topics.")
    ] = "",
    schema: Annotated[
        str, typer.Option(hidden=True, help="Schema of the projections (tests use their own).")
    ] = SCHEMA,
) -> None:
    """Empty the monitor's figures and replay its topics from their earliest offsets.

    The figures come back as they were built from the events the broker still keeps.
    The service may keep running meanwhile.
    """
    # Imported here: they bring the broker's client and the database's, which `--help`
    # does without.
    from fairshare.infra_settings import bare_settings  # noqa: PLC0415
    from fairshare.services import migrations_of  # noqa: PLC0415
    from services.monitor.replay import rebuild as replay  # noqa: PLC0415
    from shared.db.pool import create_pool  # noqa: PLC0415
    from shared.logging import configure_logging  # noqa: PLC0415
    from shared.messaging.security import broker_security, client_options  # noqa: PLC0415
    from shared.runtime import migrate  # noqa: PLC0415
    from shared.settings import ServiceSettings  # noqa: PLC0415

    # Only what goes wrong: a line per batch would tear the progress bar.
    configure_logging(SERVICE, "console", logging.WARNING)
    dsn, servers = database_url(data_dir), kafka_bootstrap(data_dir, bootstrap)

    async def go() -> None:
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        pool = None
        try:
            # The projections' tables must be those this code writes.
            await migrate(bare_settings(dsn), schema=schema, migrations_dir=migrations_of(SERVICE))
            pool = await create_pool(dsn, schema, max_size=2)
            with Progress(*columns, console=console) as progress:
                task = progress.add_task("Replaying events", total=None)

                def advance(read: int, total: int) -> None:
                    progress.update(task, completed=read, total=total)

                done = await replay(
                    pool,
                    bootstrap=servers,
                    topic_prefix=topic_prefix,
                    on_progress=advance,
                    # TLS and SASL as the services have them, from FAIRSHARE_KAFKA_*.
                    client_options=client_options(broker_security(ServiceSettings())),
                )
        except Exception as exc:
            # Perhaps emptied but not refilled: say so plainly, and how to finish.
            console.print(
                f"[red]The rebuild stopped:[/] {type(exc).__name__}: {exc}. Until it runs to"
                " the end the monitor's figures may be partial: run it again."
            )
            raise typer.Exit(1) from exc
        finally:
            if pool is not None:
                await pool.close()
        console.print(
            f"Rebuilt in {done.seconds:g} s: {done.read} messages read, {done.handled} events"
            f" handled, {done.passed_over} of other services' business passed over,"
            f" {done.duplicates} duplicates (delivered twice, or handled meanwhile by the"
            f" running service), {done.unreadable} unreadable (dead-lettered when first read)."
        )
        for where, first in sorted(done.trimmed.items()):
            console.print(
                f"[yellow]{where} no longer starts at offset 0[/] (first kept: {first}):"
                " figures of the events before it are gone with them."
            )
        for topic in done.missing_topics:
            console.print(f"[yellow]The broker has no topic {topic}[/]: nothing read from it.")

    asyncio.run(go())
