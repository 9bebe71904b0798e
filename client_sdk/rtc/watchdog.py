"""Notice that a connected media path stopped carrying anything, long before ICE itself would say so.

aioice declares a nominated pair dead only after six failed consent checks five seconds apart (~30 s,
``aioice.ice.CONSENT_FAILURES`` x ``CONSENT_INTERVAL``), and a TURN server that vanishes behind a firewall
(TCP segments dropped, no reset) leaves the TCP connection to it "established" all that time. Media,
though, is never quiet on a working path: the relay answers every publisher with RTCP receiver reports
and sends sender reports for every track it forwards, each every 0.5-1.5 s (aiortc's RTCP interval). So
the transport's received-packet counter (``pc.getStats()``, public) is the heartbeat: when it stands still
for :data:`MEDIA_SILENCE_S` although something should arrive, the path has failed.

"Something should arrive" is judged honestly, so that a quiet meeting is not mistaken for a dead path:
either this side kept sending media during the silence (the relay's reports would come back), or remote
tracks are still on that were arriving before. A viewer whose only publisher muted keeps receiving the
relay's sender reports; one whose publisher left has no remote track left to expect anything of.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiortc import RTCPeerConnection

#: Nothing received for this long, although something should have been: the media path has failed.
#: Three of aiortc's longest RTCP intervals (1.5 s) would be 4.5 s; two and a bit leave room for a
#: loaded machine without waiting on a dead path much longer than the reports' own gaps.
MEDIA_SILENCE_S = 3.5
#: "Kept sending" during a silence: at least this many packets (media at tens a second, or this side's
#: own RTCP every 0.5-1.5 s), not the last packet of a handshake.
KEPT_SENDING = 3
#: How often the counters are read (each read is one ``getStats``: a few microseconds per transceiver).
POLL_S = 0.25


async def transport_counts(pc: RTCPeerConnection) -> tuple[int, int]:
    """(packets received, packets sent) over the peer connection's transports (one with max-bundle)."""
    received = sent = 0
    for stats in (await pc.getStats()).values():
        if getattr(stats, "type", "") == "transport":
            received += int(getattr(stats, "packetsReceived", 0) or 0)
            sent += int(getattr(stats, "packetsSent", 0) or 0)
    return received, sent


async def wait_for_silence(
    pc: RTCPeerConnection,
    has_remote_tracks: Callable[[], bool],
    silence_s: float = MEDIA_SILENCE_S,
    poll_s: float = POLL_S,
) -> str:
    """Return (why) once the media path has failed: the peer connection failed or closed, or nothing
    arrived for ``silence_s`` although this side was sending, or remote tracks that had been arriving
    went quiet. Runs until then: cancel it when the connection ends for another reason."""
    received, sent = await transport_counts(pc)
    last_received = time.monotonic()
    sent_then = sent  # packets sent when the last one arrived
    arrived_before = False  # something arrived since the watch began
    while True:
        await asyncio.sleep(poll_s)
        if pc.connectionState in ("failed", "closed"):
            return f"the peer connection {pc.connectionState}"
        now_received, sent = await transport_counts(pc)
        now = time.monotonic()
        if now_received != received:
            received, last_received, sent_then, arrived_before = now_received, now, sent, True
        quiet = now - last_received
        if quiet < silence_s:
            continue
        if sent - sent_then >= KEPT_SENDING:
            return f"nothing received for {quiet:.1f} s while sending"
        if arrived_before and has_remote_tracks():
            return f"remote media stopped for {quiet:.1f} s"
