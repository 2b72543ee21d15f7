"""The AsyncAPI catalogue covers every topic, documents every field, and is consistent."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from fairshare.asyncapi import CONSUMERS, build_catalogue, write_catalogue
from services.bank import handlers as bank
from services.matching import handlers as matching
from services.monitor import handlers as monitor
from services.vacancies import handlers as vacancies
from shared.events.envelope import Envelope
from shared.events.registry import (
    DEAD_LETTER,
    EVENTS,
    PRODUCERS,
    all_topics,
    stream_for,
    topic_for,
    types_on,
)
from shared.messaging.consumer import EventConsumer, Handler
from shared.messaging.emitter import Emitter


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref} points outside the document"
    node: Any = doc
    for token in ref.removeprefix("#/").split("/"):
        part = token.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict), f"{ref}: {part} is not under an object"
        assert part in node, f"{ref}: no {part}"
        node = node[part]
    return node


def _deref(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow ``$ref`` (directly or through a one-item ``allOf``) to the schema itself."""
    while True:
        if "$ref" in node:
            node = _resolve(doc, node["$ref"])
        elif len(node.get("allOf", [])) == 1:
            node = node["allOf"][0]
        else:
            return node


def _channel_for(doc: dict[str, Any], topic: str) -> dict[str, Any]:
    [channel] = [c for c in doc["channels"].values() if c["address"] == topic]
    return channel  # type: ignore[no-any-return]


def _pinned_type(doc: dict[str, Any], message: dict[str, Any]) -> Any:
    """The event type a message's payload schema pins (its ``type`` const)."""
    payload = _deref(doc, _deref(doc, message)["payload"])
    return payload.get("properties", {}).get("type", {}).get("const")


def _types_carried(doc: dict[str, Any], topic: str) -> list[Any]:
    """The event types whose messages the channel of ``topic`` carries, in order."""
    messages = _channel_for(doc, topic)["messages"].values()
    return [_pinned_type(doc, m) for m in messages]


def _message(doc: dict[str, Any], event_type: str) -> dict[str, Any]:
    """The message of ``event_type`` within the channel of its producer's stream."""
    messages = _channel_for(doc, topic_for(event_type))["messages"].values()
    [message] = [m for m in messages if _pinned_type(doc, m) == event_type]
    return _deref(doc, message)


def _payload(doc: dict[str, Any], event_type: str) -> dict[str, Any]:
    return _deref(doc, _message(doc, event_type)["payload"])


def _descriptions(model: type[BaseModel]) -> dict[str, str | None]:
    return {name: field.description for name, field in model.model_fields.items()}


def _handler_tables() -> dict[str, dict[str, Handler]]:
    return {
        "bank": bank.handlers(),
        "matching": matching.handlers(Emitter(producer="matching", schema="matching")),
        "monitor": monitor.handlers(),
        "vacancies": vacancies.handlers(timedelta(hours=25)),
    }


def _operations(doc: dict[str, Any]) -> dict[tuple[str, str, str], set[Any]]:
    """(topic, action, service) -> the event types of that operation's messages.

    Checks on the way that each operation names one service and only messages of its
    own channel, as AsyncAPI 3.0 requires.
    """
    found: dict[tuple[str, str, str], set[Any]] = {}
    for op_id, operation in doc["operations"].items():
        channel_ref = operation["channel"]["$ref"]
        address = _resolve(doc, channel_ref)["address"]
        [tag] = operation["tags"]
        key = (address, operation["action"], tag["name"])
        assert key not in found, f"{op_id}: a second {key}"
        assert operation["messages"], f"{op_id} has no messages"
        for ref in (m["$ref"] for m in operation["messages"]):
            assert ref.startswith(f"{channel_ref}/messages/"), f"{op_id}: {ref} is elsewhere"
        messages = [_resolve(doc, m["$ref"]) for m in operation["messages"]]
        if address == DEAD_LETTER:
            found[key] = {DEAD_LETTER}
        else:
            types = [_pinned_type(doc, m) for m in messages]
            assert len(types) == len(set(types)), f"{op_id} lists a message twice"
            found[key] = set(types)
    return found


def test_every_topic_has_a_channel() -> None:
    """Each topic of all_topics() (streams and dead letters) has exactly one channel."""
    doc = build_catalogue()
    addresses = [c["address"] for c in doc["channels"].values()]
    assert sorted(addresses) == sorted(all_topics())


def test_each_stream_carries_exactly_its_producers_types() -> None:
    """A producer's stream channel has one message per type it publishes, and no other."""
    doc = build_catalogue()
    for producer in PRODUCERS:
        stream = stream_for(producer)
        assert _types_carried(doc, stream) == types_on(producer), stream
        for ref in _channel_for(doc, stream)["messages"].values():
            message = _deref(doc, ref)
            spec = EVENTS[message["name"]]
            assert _pinned_type(doc, message) == spec.type
            assert message["x-producer"] == spec.producer == producer
            assert message["x-schema-version"] == spec.version


def test_every_event_type_is_on_its_topic() -> None:
    """Every registered type has its message on topic_for(type), and on no other channel."""
    doc = build_catalogue()
    for spec in EVENTS.values():
        carriers = [
            c["address"]
            for c in doc["channels"].values()
            if spec.type in _types_carried(doc, c["address"])
        ]
        assert carriers == [topic_for(spec.type)], spec.type


def test_every_ref_resolves() -> None:
    """Every $ref anywhere in the document points at something inside the document."""
    doc = build_catalogue()
    refs = _refs(doc)
    assert len(refs) > len(all_topics())
    for ref in refs:
        assert _resolve(doc, ref) is not None


def test_messages_carry_key_correlation_and_version() -> None:
    """Each event message is keyed by region, finds its correlation id, names its version."""
    doc = build_catalogue()
    for spec in EVENTS.values():
        message = _message(doc, spec.type)
        assert message["name"] == spec.type
        assert message["bindings"]["kafka"]["key"]["type"] == "string"
        assert "region" in message["bindings"]["kafka"]["key"]["description"]
        assert message["correlationId"]["location"] == "$message.payload#/correlation_id"
        assert message["x-schema-version"] == spec.version
        assert message["x-producer"] == spec.producer


def test_payloads_carry_field_descriptions() -> None:
    """Each type's payload is the envelope, with the data model's field descriptions."""
    doc = build_catalogue()
    envelope_fields = _descriptions(Envelope)
    for spec in EVENTS.values():
        payload = _payload(doc, spec.type)
        props = payload["properties"]
        assert {n: p.get("description") for n, p in props.items()} == envelope_fields
        data = _deref(doc, props["data"])
        assert {n: p.get("description") for n, p in data["properties"].items()} == (
            _descriptions(spec.model)
        ), spec.type


def test_payloads_pin_type_and_schema_version() -> None:
    """Each payload schema states its event type and schema version, as consumers require."""
    doc = build_catalogue()
    for spec in EVENTS.values():
        props = _payload(doc, spec.type)["properties"]
        assert props["type"]["const"] == spec.type
        assert props["schema_version"]["const"] == spec.version


def test_senders_and_receivers_match_the_registry() -> None:
    """Each producer sends its types on its stream; each consumer receives there exactly
    the types CONSUMERS gives it; consuming services send dead letters, nobody reads them.
    """
    doc = build_catalogue()
    expected: dict[tuple[str, str, str], set[Any]] = {}
    for producer in PRODUCERS:
        stream = stream_for(producer)
        expected[(stream, "send", producer)] = set(types_on(producer))
        for event_type in types_on(producer):
            for consumer in CONSUMERS.get(event_type, ()):
                expected.setdefault((stream, "receive", consumer), set()).add(event_type)
    for consumer in {c for names in CONSUMERS.values() for c in names}:
        expected[(DEAD_LETTER, "send", consumer)] = {DEAD_LETTER}
    assert _operations(doc) == expected


def test_consumers_table_matches_the_services_handlers() -> None:
    """CONSUMERS names, for every event type, exactly the services that handle it."""
    handled = _handler_tables()
    actual = {
        event_type: {service for service, table in handled.items() if event_type in table}
        for event_type in EVENTS
    }
    assert {t: set(CONSUMERS.get(t, ())) for t in EVENTS} == actual


def test_receivers_match_the_services_subscriptions() -> None:
    """Each service receives, on each stream it subscribes to, the types it has handlers for."""
    received: dict[str, dict[str, set[Any]]] = {}
    for (topic, action, service), types in _operations(build_catalogue()).items():
        if action == "receive":
            received.setdefault(service, {})[topic] = types
    for service, table in _handler_tables().items():
        unused: Any = None  # topics() needs neither a pool nor a publisher
        consumer = EventConsumer(service=service, pool=unused, dead_letters=unused, handlers=table)
        assert sorted(received[service]) == sorted(consumer.topics()), service
        for topic, types in received[service].items():
            assert types == {t for t in table if topic_for(t) == topic}, (service, topic)


def test_no_schema_keeps_siblings_beside_a_ref() -> None:
    """Descriptions next to a $ref would be ignored under JSON Schema draft 7."""
    doc = build_catalogue()

    def check(node: Any) -> None:
        if isinstance(node, dict):
            assert "$ref" not in node or len(node) == 1, node
            for value in node.values():
                check(value)
        elif isinstance(node, list):
            for value in node:
                check(value)

    check(doc)


def test_written_file_is_yaml_of_the_same_document(tmp_path: Path) -> None:
    """write_catalogue writes what build_catalogue returns, without YAML aliases."""
    path = write_catalogue(tmp_path)
    text = path.read_text(encoding="utf-8")
    assert path == tmp_path / "asyncapi.yaml"
    assert "*id0" not in text
    assert yaml.safe_load(text) == build_catalogue()


def test_committed_catalogue_is_current() -> None:
    """docs/asyncapi.yaml matches the code; run `fairshare asyncapi` after changing events."""
    committed = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"
    assert yaml.safe_load(committed.read_text(encoding="utf-8")) == build_catalogue()
