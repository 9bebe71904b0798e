"""Counters of the forwarding hot path, for the whole relay process (read by /metrics)."""

from __future__ import annotations


class ForwardingStats:
    """Counters of the whole relay process, read by /metrics (plain ints: the hot path stays cheap)."""

    def __init__(self) -> None:
        self.packets_in = 0
        self.bytes_in = 0
        self.packets_out = 0
        self.bytes_out = 0
        self.malformed = 0
        self.unknown_ssrc = 0
        self.waiting_for_keyframe = 0
        self.send_errors = 0
        self.nacks_received = 0
        self.retransmissions = 0
        self.retransmit_misses = 0
        self.nacks_sent = 0
        self.keyframe_requests_received = 0
        self.keyframe_requests_sent = 0
        self.sender_reports_sent = 0
        self.unknown_rid = 0  # simulcast packets whose layer could not be told
        self.malformed_vp8 = 0  # simulcast packets with a broken VP8 descriptor (dropped)
        self.layer_switches = 0
        self.packets_blocked = 0  # of tracks a host muted (not forwarded)


STATS = ForwardingStats()
