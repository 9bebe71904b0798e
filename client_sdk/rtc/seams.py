"""The SDK's two uses of aiortc/aioice internals (aiortc is pinned exactly, as for the relay).

* ``aioice.ice.get_host_addresses``: aioice never offers loopback host candidates, so a client of a relay
  on this machine (the local stack, the demo, tests) could not connect where loopback is the only
  interface; :func:`gather_on_loopback_only` makes it offer 127.0.0.1 alone. Process-wide (aioice has no
  per-connection setting), and only ever called for a relay URL on loopback.
* ``RTCRtpReceiver._handle_rtp_packet``: each parsed RTP packet of one receiver, for ``meet load-test``'s
  byte counts (aiortc's inbound-rtp stats carry none).

``tests/client_sdk/test_seams.py`` pins both, so an aiortc upgrade fails loudly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aioice.ice
from aiortc import RTCRtpReceiver


def gather_on_loopback_only() -> None:
    """Gather ICE host candidates on 127.0.0.1 only (for a relay on this machine)."""
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]  # type: ignore[assignment]


def on_receiver_rtp(receiver: RTCRtpReceiver, handler: Callable[[Any], None]) -> None:
    """See each RTP packet routed to this receiver (parsed, before aiortc's jitter buffer) with a plain
    function: counting only, the packet goes on to aiortc unchanged."""
    original = receiver._handle_rtp_packet

    async def handle(packet: Any, arrival_time_ms: int) -> None:  # aiortc passes arrival_time_ms by name
        handler(packet)
        await original(packet, arrival_time_ms=arrival_time_ms)

    receiver._handle_rtp_packet = handle  # type: ignore[method-assign]
