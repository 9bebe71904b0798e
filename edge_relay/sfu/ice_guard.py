"""Refuse what is not WebRTC at the relay's ICE sockets, count it, and log it without flooding the log.

An ICE socket is open to the whole internet, and aioice passes any datagram that does not parse as STUN
on to the DTLS transport, whoever sent it. The guard sorts each datagram by its first byte, as RFC 7983
demultiplexes (0-3 STUN, 20-63 DTLS, 128-191 RTP/RTCP), before aioice sees it:

* STUN that does not parse: ``malformed_stun`` (aioice would have handed it to DTLS as data);
* DTLS or RTP/RTCP from an address this socket has no candidate pair with: ``unknown_source`` (a peer
  sends media only on a pair its checks found; data from elsewhere is someone else's);
* any other first byte: ``not_webrtc``.

Dropped datagrams are counted in ``DROPPED`` (``relay_ice_datagrams_dropped_total{reason}`` in
/metrics) and logged at the 1st, 2nd, 4th, 8th ... of each reason, so a flood costs a few log lines.
Per media packet the cost is a byte test and one tuple comparison (the socket's last good peer),
once per packet received (not per copy forwarded).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from aioice import stun

from edge_relay.sfu import seams

log = logging.getLogger("edge_relay.ice")

REASONS = ("malformed_stun", "unknown_source", "not_webrtc")
DROPPED: Counter[str] = Counter()


def verdict(protocol: Any, data: bytes, addr: tuple[Any, ...]) -> str | None:
    """None to let the datagram through, else why it is dropped (one of REASONS)."""
    if not data:
        return "not_webrtc"
    first = data[0]
    if first <= 3:
        try:
            stun.parse_message(data)
        except ValueError:
            return "malformed_stun"
        return None  # aioice checks the rest (credentials, integrity) and answers
    if 20 <= first <= 63 or 128 <= first <= 191:
        if getattr(protocol, "_meetup_peer", None) == addr:
            return None
        if (str(addr[0]), int(addr[1])) in seams.ice_peer_addresses(protocol):
            protocol._meetup_peer = addr  # as asyncio gives it: the next packet compares at once
            return None
        return "unknown_source"
    return "not_webrtc"


def accept(protocol: Any, data: bytes, addr: tuple[Any, ...]) -> bool:
    # The fast path, for media from the peer already seen (every packet but a few), inline.
    if data and 128 <= data[0] <= 191 and getattr(protocol, "_meetup_peer", None) == addr:
        return True
    reason = verdict(protocol, data, addr)
    if reason is None:
        return True
    DROPPED[reason] += 1
    count = DROPPED[reason]
    if count & (count - 1) == 0:  # 1, 2, 4, 8, ...
        log.warning(
            "ice datagram dropped",
            extra={"reason": reason, "source": f"{addr[0]}:{addr[1]}", "bytes": len(data), "count": count},
        )
    return False


def install() -> Callable[[], None]:
    """Guard every ICE socket of this process; returns what removes the guard."""
    return seams.filter_ice_datagrams(accept)
