"""Turns a state change's event data into an outbox row, envelope and all."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from shared.db import outbox
from shared.db.types import Conn
from shared.events.envelope import Envelope, new_envelope
from shared.events.registry import EVENTS, EventSpec, topic_for

_BY_MODEL: dict[type[BaseModel], EventSpec] = {spec.model: spec for spec in EVENTS.values()}


@dataclass(frozen=True)
class Emitter:
    """Writes events to the service's outbox, inside the caller's transaction."""

    producer: str
    schema: str
    topic_prefix: str = ""

    def envelope(
        self,
        data: BaseModel,
        *,
        region: str,
        cause: Envelope[Any] | None = None,
        correlation_id: uuid.UUID | None = None,
    ) -> tuple[str, Envelope[Any]]:
        """The topic and envelope ``data`` is published as."""
        spec = _BY_MODEL[type(data)]
        envelope = new_envelope(
            data,
            event_type=spec.type,
            schema_version=spec.version,
            region=region,
            producer=self.producer,
            correlation_id=cause.correlation_id if cause else correlation_id,
            causation_id=cause.event_id if cause else None,
        )
        return topic_for(spec.type, self.topic_prefix), envelope

    async def emit_many(
        self,
        conn: Conn,
        items: list[tuple[BaseModel, str]],
        *,
        cause: Envelope[Any] | None = None,
    ) -> None:
        """Record many (data, region) events in one statement."""
        await outbox.append_many(
            conn,
            [self.envelope(data, region=region, cause=cause) for data, region in items],
            schema=self.schema,
        )

    async def emit(
        self,
        conn: Conn,
        data: BaseModel,
        *,
        region: str,
        cause: Envelope[Any] | None = None,
        correlation_id: uuid.UUID | None = None,
    ) -> Envelope[Any]:
        """Record ``data`` as its catalogued event; a ``cause`` carries its correlation on."""
        topic, envelope = self.envelope(
            data, region=region, cause=cause, correlation_id=correlation_id
        )
        await outbox.append(conn, topic=topic, envelope=envelope, schema=self.schema)
        return envelope
