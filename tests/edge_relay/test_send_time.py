"""abs-send-time restamped by the relay (``ExtensionMap(stamp_send_time=True)``: every subscription).

A subscriber's receive-side estimator (the REMB it sends) takes abs-send-time as the send time of one
sender: forwarded as the publishers wrote them, the times of several publishers (and several simulcast
layers' pacing) meet in one connection and the estimate collapses (seen: Chromium subscribers estimating
7-50 kbps on loopback). So the relay writes its own send time there; everything else stays as before.
"""

from __future__ import annotations

import time

from edge_relay.sfu.rtp import ExtensionMap, abs_send_time_now, parse_header
from tests.edge_relay.test_rtp import PUB_IDS, SUB_IDS, elements, ext_block, packet


def seconds(value: bytes) -> float:
    return int.from_bytes(value, "big") / (1 << 18)


def test_the_relays_send_time_replaces_the_publishers() -> None:
    m = ExtensionMap(PUB_IDS, SUB_IDS, b"7", stamp_send_time=True)
    ext = ext_block([(1, b"\x85"), (2, b"\x12\x34\x56"), (4, b"pub-mid-0")])
    data = packet(ext=ext)
    for _ in range(3):  # the first walk, then the cached layout
        before = seconds(abs_send_time_now())
        (level, sent, mid) = elements(m.rewrite(data, parse_header(data)))
        after = seconds(abs_send_time_now())
        assert level == (10, b"\x85") and mid == (9, b"7") and sent[0] == 3
        assert before <= seconds(sent[1]) <= after or after < before  # (the 64 s wrap)
        time.sleep(0.01)
    # without the flag, the publisher's value is kept as it was
    plain = ExtensionMap(PUB_IDS, SUB_IDS, b"7")
    assert elements(plain.rewrite(data, parse_header(data)))[1] == (3, b"\x12\x34\x56")


def test_a_packet_without_abs_send_time_is_left_without() -> None:
    m = ExtensionMap(PUB_IDS, SUB_IDS, b"7", stamp_send_time=True)
    data = packet(ext=ext_block([(1, b"\x85")]))
    assert elements(m.rewrite(data, parse_header(data))) == [(10, b"\x85"), (9, b"7")]
    two_byte = packet(ext=ext_block([(2, b"\x12\x34\x56"), (1, b"\x85")], two_byte=True))
    assert [e for e, _ in elements(m.rewrite(two_byte, parse_header(two_byte)))] == [3, 10, 9]
