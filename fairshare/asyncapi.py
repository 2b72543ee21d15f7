"""The AsyncAPI 3.0 catalogue of every Fairshare topic, built from the event registry.

Built by hand rather than with FastStream's generator: FastStream documents the
subscribers and publishers of one broker object, while this catalogue must describe
every topic of all four services (who sends, who receives) from the one registry
in ``shared/events``, including the dead-letter topic no service subscribes to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from shared.events.envelope import Envelope
from shared.events.registry import DEAD_LETTER, EVENTS

# Which services consume each event type; producers are in the registry.
CONSUMERS: dict[str, tuple[str, ...]] = {
    "session.posted": ("matching", "monitor"),
    "availability.offered": ("matching",),
    "session.offered": ("bank", "vacancies", "monitor"),
    "offer.accepted": ("matching",),
    "session.filled": ("bank", "vacancies", "monitor"),
}
_REF = "#/components/schemas/{model}"
_KEY = {"type": "string", "description": "ICB code of the region (e.g. QOP): the message key."}


def _envelope_model(model: type[BaseModel]) -> type[BaseModel]:
    # A concrete, plainly named subclass: AsyncAPI component names can't hold brackets.
    return type(f"{model.__name__}Event", (Envelope[model],), {})  # type: ignore[valid-type]


def _schemas_of(model: type[BaseModel], schemas: dict[str, Any]) -> str:
    schema = model.model_json_schema(ref_template=_REF)
    schemas.update(schema.pop("$defs", {}))
    schemas[model.__name__] = schema
    return model.__name__


def build_catalogue() -> dict[str, Any]:
    """The AsyncAPI document: one channel per topic, its message, senders and receivers."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for spec in EVENTS.values():
        name = _schemas_of(_envelope_model(spec.model), schemas)
        messages[name] = {
            "name": spec.type,
            "title": spec.type,
            "summary": spec.summary,
            "description": (spec.model.__doc__ or "").strip(),
            "contentType": "application/json",
            "payload": {"$ref": _REF.format(model=name)},
            "bindings": {"kafka": {"key": _KEY}},
            "x-schema-version": spec.version,
        }
        channel = spec.type
        channels[channel] = {
            "address": spec.type,
            "description": f"{spec.summary} Schema version {spec.version}.",
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        }
        operations[f"{spec.producer}.send.{spec.type}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel}"},
            "summary": f"{spec.producer} publishes {spec.type}.",
        }
        for consumer in CONSUMERS.get(spec.type, ()):
            operations[f"{consumer}.receive.{spec.type}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{channel}"},
                "summary": f"{consumer} consumes {spec.type}.",
            }
    messages["DeadLetter"] = {
        "name": DEAD_LETTER,
        "summary": "A message a consumer could not validate, byte for byte as it arrived.",
        "headers": {
            "type": "object",
            "properties": {
                "dlq-reason": {"type": "string", "description": "Why it was refused."},
                "dlq-source-topic": {"type": "string", "description": "Where it came from."},
                "dlq-consumer": {"type": "string", "description": "Consumer group refusing it."},
            },
        },
        "payload": {"description": "The original message value, unchanged."},
    }
    channels[DEAD_LETTER] = {
        "address": DEAD_LETTER,
        "description": "Messages that failed validation; for operators to inspect and replay.",
        "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}},
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Fairshare events",
            "version": "1.0.0",
            "description": "Every topic of Fairshare. Topic names take an optional prefix"
            " (FAIRSHARE_TOPIC_PREFIX); every message is keyed by region.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def write_catalogue(out_dir: Path) -> Path:
    """Write ``asyncapi.yaml`` into ``out_dir``; return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "asyncapi.yaml"
    path.write_text(yaml.safe_dump(build_catalogue(), sort_keys=False, allow_unicode=True))
    return path
