"""The relay registry record: one definition, written by the relay with boto3, read by the API."""

from __future__ import annotations

import pytest
from pynamodb.attributes import BooleanAttribute, NumberAttribute, TTLAttribute, UnicodeAttribute

from functions.models.relays import RelayModel
from meetup_protocol.registry import ATTRIBUTE_TYPES, RelayRecord

PYNAMODB_TYPES = {UnicodeAttribute: "S", NumberAttribute: "N", BooleanAttribute: "BOOL", TTLAttribute: "N"}


def record(**changes: object) -> RelayRecord:
    fields: dict[str, object] = dict(
        relay_id="eu-1",
        region="eu-west-1",
        url="wss://relay.example/ws",
        gossip="203.0.113.7:7946",
        participants=3,
        capacity=500,
        draining=False,
        heartbeat_at=1_760_000_000.25,
        expires_at=1_760_000_300,
    )
    fields.update(changes)
    return RelayRecord(**fields)  # type: ignore[arg-type]


def test_a_record_survives_the_round_trip() -> None:
    for r in (record(), record(gossip=None, draining=True)):
        item = r.to_item()
        assert RelayRecord.from_item(item) == r
        assert set(item) <= set(ATTRIBUTE_TYPES)
        assert all(next(iter(value)) == ATTRIBUTE_TYPES[name] for name, value in item.items())


def test_the_api_model_has_exactly_the_record_attributes() -> None:
    attributes = RelayModel.get_attributes()
    assert {name: PYNAMODB_TYPES[type(a)] for name, a in attributes.items()} == ATTRIBUTE_TYPES
    assert RelayModel._hash_key_attribute().attr_name == "relay_id"


@pytest.mark.parametrize(
    "item",
    [{}, {"relay_id": {"S": "x"}}, {**record().to_item(), "capacity": {"N": "lots"}}],
)
def test_an_entry_that_is_not_a_record_is_refused(item: dict) -> None:
    with pytest.raises((KeyError, ValueError)):
        RelayRecord.from_item(item)
