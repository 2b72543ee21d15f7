"""``fairshare topics create`` and ``check``: every topic as declared, made once.

Production runs ``create`` once per ``up`` (compose's one-shot ``topics`` service), before
any service starts; the services there (FAIRSHARE_TOPICS=require) only check that their
topics exist. Each topic's partitions, replication and settings come from the one
declaration in shared/messaging/topics.py (``declared_topics``).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer
from rich.table import Table

from fairshare.cli import console

topics_app = typer.Typer(help="Kafka topics: create them as declared, or check them.")

Bootstrap = Annotated[
    str | None,
    typer.Option(
        "--bootstrap",
        help="Kafka bootstrap servers (default: FAIRSHARE_KAFKA_BOOTSTRAP, else 127.0.0.1:9092).",
        show_default=False,
    ),
]
Prefix = Annotated[
    str | None,
    typer.Option(
        "--prefix", help="Topic name prefix (default: FAIRSHARE_TOPIC_PREFIX).", show_default=False
    ),
]
Replication = Annotated[
    int,
    typer.Option(
        "--replication-factor",
        envvar="FAIRSHARE_TOPIC_REPLICATION",
        min=1,
        help="Copies of each partition: 1 on one broker, 3 on a three-broker cluster.",
    ),
]
Timeout = Annotated[
    float,
    typer.Option(min=0, help="Seconds to keep trying to reach the broker before giving up."),
]


def _connection(bootstrap: str | None, prefix: str | None) -> tuple[str, str, dict[str, Any]]:
    """Bootstrap, prefix and the raw client's TLS/SASL options from FAIRSHARE_KAFKA_*."""
    from pydantic import ValidationError  # noqa: PLC0415 - keep `fairshare --help` fast

    from shared.messaging.security import broker_security, client_options  # noqa: PLC0415
    from shared.settings import ServiceSettings  # noqa: PLC0415

    try:
        settings = ServiceSettings()
    except ValidationError as exc:  # a SASL protocol without credentials, and the like
        problems = "; ".join(str(error["msg"]) for error in exc.errors())
        console.print(f"[red]The Kafka settings are not usable:[/] {problems}")
        raise typer.Exit(2) from None
    return (
        bootstrap or settings.kafka_bootstrap,
        settings.topic_prefix if prefix is None else prefix,
        client_options(broker_security(settings)),
    )


def _retention(config: dict[str, str] | None, key: str) -> str:
    if config is None or key not in config:
        return "?"
    value = config[key]
    if value == "-1":
        return "for ever"
    if key == "retention.ms" and value.isdigit() and int(value) % 86_400_000 == 0:
        return f"{int(value) // 86_400_000} days"
    return value


def _table(states: list[Any], created: list[str]) -> Table:
    table = Table(title="Kafka topics")
    for column in ("topic", "partitions", "replication", "retention", "cleanup", "status"):
        table.add_column(column)
    for state in states:
        spec = state.spec
        differences = state.differences()
        if not state.exists:
            status = "[red]missing[/]"
        elif differences:
            status = "[yellow]differs: " + "; ".join(differences) + "[/]"
        elif spec.name in created:
            status = "[green]created[/]"
        else:
            status = "[green]exists[/]"
        config = state.config if state.exists and state.config is not None else spec.config
        table.add_row(
            spec.name,
            str(state.partitions or spec.partitions),
            str(state.replication or spec.replication),
            _retention(config, "retention.ms"),
            config.get("cleanup.policy", "?"),
            status,
        )
    return table


def _failed(bootstrap: str, exc: Exception) -> typer.Exit:
    from aiokafka.errors import KafkaConnectionError  # noqa: PLC0415

    if isinstance(exc, KafkaConnectionError | OSError):
        console.print(
            f"[red]Kafka at {bootstrap} is unreachable[/] ({exc}): check"
            " FAIRSHARE_KAFKA_BOOTSTRAP (or --bootstrap) and the FAIRSHARE_KAFKA_* security"
            " settings."
        )
    else:
        console.print(f"[red]Kafka at {bootstrap} refused:[/] {type(exc).__name__}: {exc}")
    return typer.Exit(1)


@topics_app.command("create")
def create(
    bootstrap: Bootstrap = None,
    prefix: Prefix = None,
    replication_factor: Replication = 1,
    timeout: Timeout = 30,
) -> None:
    """Create every topic that does not exist yet, with its declared partitions,
    replication and retention. Safe to run again: existing topics are left as they are
    (a difference from the declaration is shown, never changed)."""
    from aiokafka.errors import KafkaError  # noqa: PLC0415

    from shared.messaging.topics import create_declared, declared_topics  # noqa: PLC0415

    bootstrap, prefix, options = _connection(bootstrap, prefix)
    specs = declared_topics(prefix, replication=replication_factor)
    try:
        created, refused, states = asyncio.run(
            create_declared(bootstrap, specs, timeout_s=timeout, client_options=options)
        )
    except (KafkaError, OSError) as exc:
        raise _failed(bootstrap, exc) from None
    console.print(_table(states, created))
    for name, reason in refused.items():
        console.print(f"[red]Kafka refused to create {name}:[/] {reason}")
    still = [state.spec.name for state in states if not state.exists]
    if still:
        console.print(f"[red]Not created:[/] {', '.join(still)}")
        raise typer.Exit(1)
    differing = [state.spec.name for state in states if state.differences()]
    console.print(
        f"{len(created)} created, {len(states) - len(created)} already there"
        + (
            f"; {len(differing)} differ from the declaration (deploy/README.md)"
            if differing
            else ""
        )
        + "."
    )


@topics_app.command("check")
def check(
    bootstrap: Bootstrap = None,
    prefix: Prefix = None,
    replication_factor: Replication = 1,
    timeout: Timeout = 30,
) -> None:
    """List topics that are missing or differ from their declaration; exit 1 if any."""
    from aiokafka.errors import KafkaError  # noqa: PLC0415

    from shared.messaging.topics import declared_topics, inspect_topics  # noqa: PLC0415

    bootstrap, prefix, options = _connection(bootstrap, prefix)
    specs = declared_topics(prefix, replication=replication_factor)
    try:
        states = asyncio.run(
            inspect_topics(bootstrap, specs, timeout_s=timeout, client_options=options)
        )
    except (KafkaError, OSError) as exc:
        raise _failed(bootstrap, exc) from None
    console.print(_table(states, []))
    missing = [state.spec.name for state in states if not state.exists]
    differing = [state.spec.name for state in states if state.exists and state.differences()]
    if missing:
        console.print(f"[red]Missing:[/] {', '.join(missing)}: run `fairshare topics create`.")
    if differing:
        console.print(f"[yellow]Differ from the declaration:[/] {', '.join(differing)}.")
    if missing or differing:
        raise typer.Exit(1)
    console.print("Every topic is there as declared.")
