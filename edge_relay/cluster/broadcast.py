"""What to piggyback next: memberlist's transmit-limited queue.

Each update (a member record, a room delta) is sent on up to ``limit`` outgoing datagrams, least-sent
first, then dropped: epidemic dissemination reaches every member with high probability after
``retransmit_mult * log10(n)`` rounds (SWIM section 4.1), and push-pull catches whatever it missed.
A newer update for the same key (the same member, the same room) replaces the queued one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge_relay.cluster.wire import encoded_size


@dataclass
class _Item:
    channel: str
    wire: Any
    obj: Any
    size: int
    sent: int = 0


class Broadcasts:
    def __init__(self) -> None:
        self._items: dict[tuple[str, str], _Item] = {}

    def __len__(self) -> int:
        return len(self._items)

    def put(self, channel: str, key: str, wire: Any, obj: Any = None) -> None:
        self._items[(channel, key)] = _Item(channel, wire, obj, encoded_size(wire))

    def queued(self, channel: str, key: str) -> Any:
        item = self._items.get((channel, key))
        return None if item is None else item.obj

    def take(self, budget: int, limit: int) -> dict[str, list[Any]]:
        """Items for one datagram, within ``budget`` bytes (2 bytes of msgpack array header per item)."""
        out: dict[str, list[Any]] = {}
        for key, item in sorted(self._items.items(), key=lambda kv: kv[1].sent):
            cost = item.size + 2
            if cost > budget:
                continue
            budget -= cost
            out.setdefault(item.channel, []).append(item.wire)
            item.sent += 1
            if item.sent >= limit:
                del self._items[key]
        return out
