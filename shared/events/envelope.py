"""The envelope every event travels in, whatever its type."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Generic, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.catalogue import RegionCode

DataT = TypeVar("DataT", bound=BaseModel)


class Envelope(BaseModel, Generic[DataT]):
    """Metadata common to every Fairshare event, with the event's own data inside.

    The Kafka key is always ``region`` so that one region's events stay in order.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: uuid.UUID = Field(description="Unique id of this event; consumers deduplicate on it.")
    type: str = Field(description="Event type, e.g. `session.posted`; also names the topic.")
    schema_version: int = Field(ge=1, description="Version of the `data` schema for this type.")
    occurred_at: AwareDatetime = Field(description="When the change happened (UTC).")
    region: RegionCode = Field(description="ICB code of the region; the Kafka message key.")
    correlation_id: uuid.UUID = Field(
        description="Id shared by every event caused, directly or not, by one outside request."
    )
    causation_id: uuid.UUID | None = Field(
        default=None, description="Id of the event that directly caused this one, if any."
    )
    producer: str = Field(description="Service that published the event.")
    data: DataT = Field(description="The event's own fields, per its type and schema version.")


def new_envelope(
    data: DataT,
    *,
    event_type: str,
    schema_version: int,
    region: str,
    producer: str,
    correlation_id: uuid.UUID | None = None,
    causation_id: uuid.UUID | None = None,
) -> Envelope[DataT]:
    """Wrap ``data`` in a fresh envelope; no correlation id given starts a new story."""
    return Envelope[DataT](
        event_id=uuid.uuid4(),
        type=event_type,
        schema_version=schema_version,
        occurred_at=datetime.now(UTC),
        region=region,
        correlation_id=correlation_id or uuid.uuid4(),
        causation_id=causation_id,
        producer=producer,
        data=data,
    )
