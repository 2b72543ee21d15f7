"""The AsyncAPI 3.0 catalogue of every Fairshare topic, built from the event registry.

Built by hand rather than with FastStream's generator. Tried with FastStream 0.7.8
(``AsyncAPI(KafkaBroker(...), schema_version="3.0.0")`` over unconnected publishers),
it documents one broker object, not the system: it makes one channel per publisher
rather than per topic, cannot show another service receiving without registering a
handler for it, names components ``Envelope[SessionPosted]`` and ``…:Message``
(brackets and colons, outside AsyncAPI's component-name pattern), reads the
correlation id from a header we don't use instead of the envelope, has no message-key
binding, and knows nothing of the dead-letter topic. Here every topic of all four
services comes from the one registry in ``shared/events``: one channel per producer's
stream, carrying one message per event type it publishes, and the dead-letter channel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from shared.catalogue import REGION_PATTERN
from shared.events.envelope import Envelope
from shared.events.registry import DEAD_LETTER, EVENTS, PRODUCERS, EventSpec, stream_for, types_on

# Which services consume each event type (producers are in the registry). Kept here,
# not read from the services' handler tables, so that writing the catalogue needs no
# service code; tests/unit/test_asyncapi.py checks it against those tables.
CONSUMERS: dict[str, tuple[str, ...]] = {
    "session.posted": ("matching", "monitor"),
    "availability.offered": ("matching",),
    "session.offered": ("bank", "vacancies", "monitor"),
    "offer.accepted": ("matching",),
    "session.filled": ("bank", "vacancies", "monitor"),
    "offer.refused": ("bank",),
    "session.amended": ("matching", "bank", "monitor"),
    "session.cancelled": ("matching", "bank", "monitor"),
    "session.unfilled": ("matching", "monitor"),
    "booking.cancelled": ("vacancies", "matching", "monitor"),
    "availability.withdrawn": ("matching",),
    "offer.declined": ("matching",),
    # Permanent moves: the matching engine's ledger counts them.
    "clinician.transferred": ("matching",),
    "session.unmatched": ("vacancies", "monitor"),
    # The ICB's audit trail: the monitor charts them (hours moved, alerts, caps).
    "move.recorded": ("monitor",),
    "move.reversed": ("monitor",),
    "sector.drain_alert": ("monitor",),
    "sector.drain_cleared": ("monitor",),
    "policy.changed": ("monitor",),
    # Timesheets: the practice's side lives in vacancies, the clinician's in the bank.
    "timesheet.submitted": ("vacancies",),
    "timesheet.approved": ("bank",),
    "timesheet.queried": ("bank",),
}
_SCHEMAS = "#/components/schemas/"
_DEAD_LETTER_MESSAGE = "DeadLetter"


def _region_key() -> dict[str, Any]:
    return {
        "type": "string",
        "pattern": REGION_PATTERN,
        "description": "ICB code of the region (e.g. QOP), the envelope's `region`: "
        "the message key, so one region's events stay in order.",
    }


def _envelope_model(spec: EventSpec) -> type[BaseModel]:
    # A concrete, plainly named subclass: component names can't hold brackets.
    doc = (
        f"The `{spec.type}` event, schema version {spec.version}: the common envelope "
        f"with {spec.model.__name__} as `data`. Published by {spec.producer}."
    )
    return type(
        f"{spec.model.__name__}Event",
        (Envelope[spec.model],),  # type: ignore[name-defined]
        {"__doc__": doc, "__module__": __name__},
    )


def _draft7(node: Any) -> Any:
    """Wrap each ``$ref`` that has siblings in ``allOf``.

    Pydantic writes ``{"$ref": ..., "description": ...}``; AsyncAPI 3.0 schemas follow
    JSON Schema draft 7, where the siblings of ``$ref`` are ignored and the field's
    description would be lost.
    """
    if isinstance(node, list):
        return [_draft7(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _draft7(value) for key, value in node.items()}
    if "$ref" in node and len(node) > 1:
        return {"allOf": [{"$ref": node.pop("$ref")}], **node}
    return node


def _add_schemas(spec: EventSpec, schemas: dict[str, Any]) -> str:
    """Put the envelope of ``spec`` and every model it uses into ``schemas``."""
    model = _envelope_model(spec)
    schema = model.model_json_schema(ref_template=_SCHEMAS + "{model}")
    for name, definition in schema.pop("$defs", {}).items():
        schemas[name] = _draft7(definition)
    # One stream carries several types: the envelope's `type` tells them apart, and
    # consumers dead-letter a version they do not support.
    schema["properties"]["type"]["const"] = spec.type
    schema["properties"]["schema_version"]["const"] = spec.version
    schemas[model.__name__] = _draft7(schema)
    return model.__name__


def _operation(
    service: str, action: str, channel: str, messages: list[str], summary: str
) -> dict[str, Any]:
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": summary,
        "tags": [{"name": service}],
        "messages": [{"$ref": f"#/channels/{channel}/messages/{m}"} for m in messages],
    }


def _dead_letter_message() -> dict[str, Any]:
    return {
        "name": DEAD_LETTER,
        "title": DEAD_LETTER,
        "summary": "A message a consumer could not use, byte for byte as it arrived.",
        "description": "Not JSON, a type that does not belong on the stream it arrived "
        "on, a schema version the consumer does not support, failing validation, or "
        "a handler that kept failing on it. The reason and origin travel in the headers.",
        "contentType": "application/octet-stream",
        "headers": {
            "type": "object",
            "properties": {
                "dlq-reason": {"type": "string", "description": "Why it was refused."},
                "dlq-source-topic": {"type": "string", "description": "Where it came from."},
                "dlq-consumer": {"type": "string", "description": "Consumer group refusing it."},
                "dlq-source-partition": {
                    "type": "string",
                    "description": "Partition it was read from, when known.",
                },
                "dlq-source-offset": {
                    "type": "string",
                    "description": "Its offset in that partition, when known.",
                },
            },
            "required": ["dlq-reason", "dlq-source-topic", "dlq-consumer"],
        },
        "payload": {"description": "The original message value, unchanged."},
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": "The original message's key."},
            },
        },
    }


def _event_message(spec: EventSpec, name: str) -> dict[str, Any]:
    return {
        "name": spec.type,
        "title": spec.type,
        "summary": spec.summary,
        "description": (spec.model.__doc__ or "").strip(),
        "contentType": "application/json",
        "payload": {"$ref": _SCHEMAS + name},
        "correlationId": {
            "description": "Shared by every event one outside request caused.",
            "location": "$message.payload#/correlation_id",
        },
        "bindings": {"kafka": {"key": _region_key()}},
        "x-schema-version": spec.version,
        "x-producer": spec.producer,
    }


def _stream_channel(producer: str, names: dict[str, str]) -> dict[str, Any]:
    """The channel of ``producer``'s stream; ``names`` maps its event types to messages."""
    types = ", ".join(f"`{t}`" for t in names)
    return {
        "address": stream_for(producer),
        "title": stream_for(producer),
        "summary": f"Every event {producer} publishes, keyed by region.",
        "description": f"The stream of {producer}: every event it publishes ({types}), "
        "one topic keyed by region, so everything "
        f"{producer} says about one region reaches each consumer in the order it was "
        "said. Each message is a JSON envelope whose `type` names its event. A consumer "
        "reads the streams of the producers whose events it handles, routes each "
        "message by `type`, and skips the types it does not handle; a type that does "
        f"not belong on this stream (not published by {producer}) or a schema version "
        "the consumer does not support is dead-lettered. Events on different streams are not "
        "ordered against each other: docs/ordering.md lists each cross-producer race "
        "and how the handlers deal with it.",
        "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in names.values()},
    }


def build_catalogue() -> dict[str, Any]:
    """The AsyncAPI document: one channel per topic, its messages, senders and receivers."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for producer in PRODUCERS:
        stream = stream_for(producer)
        names: dict[str, str] = {}
        for event_type in types_on(producer):
            spec = EVENTS[event_type]
            names[event_type] = _add_schemas(spec, schemas)
            messages[names[event_type]] = _event_message(spec, names[event_type])
        channels[stream] = _stream_channel(producer, names)
        operations[f"{producer}.send.{stream}"] = _operation(
            producer,
            "send",
            stream,
            list(names.values()),
            f"{producer} publishes every event of its stream.",
        )
        consumers = dict.fromkeys(c for t in names for c in CONSUMERS.get(t, ()))
        for consumer in consumers:
            consumed = [t for t in names if consumer in CONSUMERS.get(t, ())]
            operations[f"{consumer}.receive.{stream}"] = _operation(
                consumer,
                "receive",
                stream,
                [names[t] for t in consumed],
                f"{consumer} consumes {', '.join(consumed)} from {stream}, "
                "skipping the other types.",
            )
    messages[_DEAD_LETTER_MESSAGE] = _dead_letter_message()
    channels[DEAD_LETTER] = {
        "address": DEAD_LETTER,
        "title": DEAD_LETTER,
        "summary": "Messages consumers could not use.",
        "description": "Every consuming service parks here what it cannot use, and "
        "carries on. No service reads it: operators inspect and replay.",
        "messages": {
            _DEAD_LETTER_MESSAGE: {"$ref": f"#/components/messages/{_DEAD_LETTER_MESSAGE}"}
        },
    }
    for consumer in sorted({c for names in CONSUMERS.values() for c in names}):
        operations[f"{consumer}.send.{DEAD_LETTER}"] = _operation(
            consumer,
            "send",
            DEAD_LETTER,
            [_DEAD_LETTER_MESSAGE],
            f"{consumer} dead-letters a message it cannot use.",
        )
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Fairshare events",
            "version": "1.0.0",
            "description": "Every topic of Fairshare: one stream per producing service "
            f"({', '.join(stream_for(p) for p in PRODUCERS)}) carrying every event it "
            "publishes, plus dead letters. Each event is a JSON envelope keyed by its "
            "region's ICB code, so one producer's events about one region stay in order. "
            "Consumers read the streams of the producers whose events they handle, route "
            "by the envelope's `type`, and skip the types they don't handle. Events of "
            "different producers can race; docs/ordering.md lists each race and what the "
            "handlers do about it. Topic names take an optional prefix "
            "(FAIRSHARE_TOPIC_PREFIX).",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


class _Dumper(yaml.SafeDumper):
    """Writes repeated objects out in full: no YAML anchors or aliases."""

    def ignore_aliases(self, data: Any) -> bool:  # noqa: ARG002 - the answer is always yes
        return True


def write_catalogue(out_dir: Path) -> Path:
    """Write ``asyncapi.yaml`` into ``out_dir``; return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "asyncapi.yaml"
    text = yaml.dump(
        build_catalogue(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100
    )
    path.write_text(text, encoding="utf-8")
    return path
