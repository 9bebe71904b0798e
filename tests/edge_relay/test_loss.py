"""Packet loss on either leg is repaired by NACK and retransmission, and the counters show it.

The loss is made in the test's own peers (this process): the publisher drops a share of the RTP it
sends, or the subscriber drops a share of the RTP it receives, right at their DTLS transports. From the
relay's side that is indistinguishable from loss on the wire (no netem on these machines).
"""

from __future__ import annotations

import random

from client_sdk.media.sources import PatternVideoTrack
from edge_relay.sfu import seams
from tests.conftest import Api
from tests.edge_relay.media import join, wait_until
from tests.edge_relay.test_media_e2e import relay_metrics

LOSS = 0.05


def drop_outgoing_rtp(pc, share: float, rng: random.Random) -> dict[str, int]:
    transport = seams.bundled_transport(pc)
    send, counts = transport._send_rtp, {"dropped": 0}

    async def lossy(data: bytes) -> None:
        if 128 <= data[0] < 192 and not 192 <= data[1] <= 223 and rng.random() < share:  # RTP, not RTCP
            counts["dropped"] += 1
            return
        await send(data)

    transport._send_rtp = lossy
    return counts


def drop_incoming_rtp(pc, share: float, rng: random.Random) -> dict[str, int]:
    transport = seams.bundled_transport(pc)
    handle, counts = transport._handle_rtp_data, {"dropped": 0}

    async def lossy(data: bytes, arrival_time_ms: int) -> None:
        if rng.random() < share:
            counts["dropped"] += 1
            return
        await handle(data, arrival_time_ms=arrival_time_ms)

    transport._handle_rtp_data = lossy
    return counts


async def test_loss_on_both_legs_is_repaired(api: Api, stack) -> None:
    meeting, host, (guest,) = api.joined_meeting(1)
    publisher = await join(stack, host, meeting, {"camera": PatternVideoTrack(640, 480)})
    subscriber = await join(stack, guest, meeting, {})
    rng = random.Random(7)
    track_id = f"{publisher.conn.participant_id}/camera"
    try:
        assert await wait_until(lambda: subscriber.frames(track_id) >= 10, 15)
        before = relay_metrics(stack)
        up = drop_outgoing_rtp(publisher.conn.pc, LOSS, rng)
        down = drop_incoming_rtp(subscriber.conn.pc, LOSS, rng)
        start = subscriber.frames(track_id)
        assert await wait_until(lambda: subscriber.frames(track_id) >= start + 90, 20)  # ~3 s at 30 fps
        after = relay_metrics(stack)
        assert up["dropped"] > 10 and down["dropped"] > 10
        assert after["relay_nacks_sent_total"] > before["relay_nacks_sent_total"]  # upstream loss asked for
        assert after["relay_nacks_received_total"] > before["relay_nacks_received_total"]
        assert after["relay_retransmissions_total"] > before["relay_retransmissions_total"]
    finally:
        await publisher.close()
        await subscriber.close()
