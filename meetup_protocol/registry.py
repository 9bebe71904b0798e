"""The relay registry record: what a relay heartbeats into DynamoDB and the API reads back.

The relay writes it with boto3 (``edge_relay/cluster/registry.py``), the API reads it with PynamoDB
(``functions/models/relays.py``); both follow this one definition of the table's attributes, and
``tests/meetup_protocol/test_registry.py`` checks that the API's model agrees with it.

An entry is live while ``heartbeat_at`` is fresh; ``expires_at`` (DynamoDB TTL, epoch seconds) removes
the entries of relays that died without deregistering.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: The table's name without its deployment prefix (``MEETUP_TABLE_PREFIX``).
TABLE = "relays"
#: The table's hash key.
KEY = "relay_id"
#: How long an entry outlives its last heartbeat before DynamoDB's TTL removes it.
ENTRY_TTL_S = 300


def table_name(prefix: str) -> str:
    return f"{prefix}{TABLE}"


@dataclass(frozen=True)
class RelayRecord:
    relay_id: str
    region: str
    #: What clients connect to (``ws://`` or ``wss://``).
    url: str
    #: ``host:port`` of its cluster gossip: a seed for other relays (None without a cluster).
    gossip: str | None
    participants: int
    capacity: int
    draining: bool
    #: Epoch seconds of the heartbeat.
    heartbeat_at: float
    #: Epoch seconds after which DynamoDB may delete the entry.
    expires_at: int

    def to_item(self) -> dict[str, dict[str, Any]]:
        """The DynamoDB item (low-level attribute values), as ``put_item`` takes it."""
        item: dict[str, dict[str, Any]] = {
            "relay_id": {"S": self.relay_id},
            "region": {"S": self.region},
            "url": {"S": self.url},
            "participants": {"N": str(int(self.participants))},
            "capacity": {"N": str(int(self.capacity))},
            "draining": {"BOOL": bool(self.draining)},
            "heartbeat_at": {"N": repr(float(self.heartbeat_at))},
            "expires_at": {"N": str(int(self.expires_at))},
        }
        if self.gossip:
            item["gossip"] = {"S": self.gossip}
        return item

    @classmethod
    def from_item(cls, item: dict[str, dict[str, Any]]) -> RelayRecord:
        """Read an item back; raises ``KeyError`` / ``ValueError`` for one that is not a relay entry."""
        gossip = item.get("gossip", {}).get("S")
        return cls(
            relay_id=item["relay_id"]["S"],
            region=item["region"]["S"],
            url=item["url"]["S"],
            gossip=gossip or None,
            participants=int(float(item.get("participants", {"N": "0"})["N"])),
            capacity=int(float(item["capacity"]["N"])),
            draining=bool(item.get("draining", {"BOOL": False})["BOOL"]),
            heartbeat_at=float(item["heartbeat_at"]["N"]),
            expires_at=int(float(item["expires_at"]["N"])),
        )


#: Attribute name -> DynamoDB type, for the check against the API's model.
ATTRIBUTE_TYPES: dict[str, str] = {
    "relay_id": "S",
    "region": "S",
    "url": "S",
    "gossip": "S",
    "participants": "N",
    "capacity": "N",
    "draining": "BOOL",
    "heartbeat_at": "N",
    "expires_at": "N",
}
