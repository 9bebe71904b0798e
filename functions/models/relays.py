"""The relay registry: every relay process heartbeats its entry; dead ones stop heartbeating and expire.

The record's attributes are defined once, in ``meetup_protocol.registry`` (the relays write it with
boto3); this is the API's PynamoDB view of the same table. An entry is live while ``heartbeat_at`` is
fresh (a few heartbeat intervals, as LiveKit's 5 s); the TTL removes entries of relays that died without
deregistering.
"""

from __future__ import annotations

from pynamodb.attributes import BooleanAttribute, NumberAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.models import Model

from functions.models.base import table_meta
from meetup_protocol import registry


class RelayModel(Model):
    Meta = table_meta(registry.TABLE)

    relay_id = UnicodeAttribute(hash_key=True)
    region = UnicodeAttribute()
    url = UnicodeAttribute()  # what clients connect to (ws:// or wss://)
    gossip = UnicodeAttribute(null=True)  # "host:port" of its cluster gossip: a seed for other relays
    participants = NumberAttribute(default=0)
    capacity = NumberAttribute()
    draining = BooleanAttribute(default=False)
    heartbeat_at = NumberAttribute()  # epoch seconds
    expires_at = TTLAttribute()
