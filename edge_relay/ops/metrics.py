"""Prometheus text exposition of the relay's state and counters (``GET /metrics``).

Counters on the forwarding hot path are plain ints (``edge_relay.sfu.forwarder.STATS``), read only when
scraped; nothing here runs per packet.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from edge_relay.ops import estimates
from edge_relay.sfu.forwarder import STATS
from edge_relay.sfu.ice_guard import DROPPED, REASONS
from edge_relay.sfu.transport import CONNECTED, NEVER_CONNECTED

if TYPE_CHECKING:
    from edge_relay.cluster.coordinator import Coordinator
    from edge_relay.ops.clock import ClockCheck
    from edge_relay.rooms.directory import Rooms
    from edge_relay.sfu.seams import CodecCensus


class SessionCounters:
    def __init__(self) -> None:
        self.joins = 0
        self.connections = 0
        self.rejects: Counter[str] = Counter()  # error code -> count (bad tokens, bad messages ...)


COUNTERS = SessionCounters()


class LoopLag:
    """How late the event loop wakes up: the relay's own congestion signal."""

    def __init__(self, interval_s: float = 0.25) -> None:
        self.interval_s = interval_s
        self.last_s = 0.0
        self.max_s = 0.0

    async def run(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            lag = max(0.0, time.perf_counter() - started - self.interval_s)
            self.last_s = lag
            self.max_s = max(self.max_s, lag)


def render(
    rooms: Rooms,
    census: CodecCensus,
    lag: LoopLag,
    draining: bool,
    coordinator: Coordinator | None = None,
    clock: ClockCheck | None = None,
) -> str:
    lines: list[str] = []

    def metric(name: str, kind: str, help_: str, value: float, labels: str = "") -> None:
        if not any(line.startswith(f"# HELP {name} ") for line in lines):
            lines.append(f"# HELP {name} {help_}")
            lines.append(f"# TYPE {name} {kind}")
        lines.append(f"{name}{labels} {value}")

    tracks = sum(len(p.tracks) for r in rooms.rooms.values() for p in r.participants.values())
    metric("relay_rooms", "gauge", "Meetings with participants on this relay.", len(rooms.rooms))
    metric("relay_participants", "gauge", "Participants connected.", rooms.participant_count)
    metric("relay_tracks", "gauge", "Published tracks being forwarded.", tracks)
    metric("relay_draining", "gauge", "1 while draining after SIGTERM.", int(draining))
    if clock is not None:
        offset = clock.offset_s
        if offset is not None:
            help_ = "The API's and the other relays' clocks minus ours, estimated (positive: ours is behind)."
            metric("relay_clock_offset_seconds", "gauge", help_, round(offset, 3))
        metric(
            "relay_clock_skewed",
            "gauge",
            "1 while our clock is off by more than the bound.",
            int(clock.skewed),
        )
    s = STATS
    for name, help_, value in (
        ("relay_rtp_packets_in_total", "RTP packets received from publishers.", s.packets_in),
        ("relay_rtp_bytes_in_total", "RTP bytes received from publishers.", s.bytes_in),
        ("relay_rtp_packets_out_total", "RTP packets forwarded to subscribers.", s.packets_out),
        ("relay_rtp_bytes_out_total", "RTP bytes forwarded to subscribers.", s.bytes_out),
        ("relay_rtp_malformed_total", "Incoming packets dropped as malformed.", s.malformed),
        ("relay_rtp_unknown_total", "Incoming packets of no known track (dropped).", s.unknown_ssrc),
        (
            "relay_rtp_waiting_keyframe_total",
            "Packets held back from subscribers awaiting a keyframe.",
            s.waiting_for_keyframe,
        ),
        ("relay_send_errors_total", "Sends that failed (connection not up).", s.send_errors),
        ("relay_nacks_received_total", "NACKs received from subscribers.", s.nacks_received),
        ("relay_retransmissions_total", "Packets re-sent from the history.", s.retransmissions),
        ("relay_retransmit_misses_total", "NACKed packets no longer in the history.", s.retransmit_misses),
        ("relay_nacks_sent_total", "NACKs sent to publishers for upstream loss.", s.nacks_sent),
        (
            "relay_keyframe_requests_received_total",
            "PLI/FIR received from subscribers.",
            s.keyframe_requests_received,
        ),
        (
            "relay_keyframe_requests_sent_total",
            "Keyframe requests sent to publishers.",
            s.keyframe_requests_sent,
        ),
        ("relay_sender_reports_total", "Sender reports rewritten for subscribers.", s.sender_reports_sent),
        ("relay_rtp_blocked_total", "Packets of tracks a host muted (not forwarded).", s.packets_blocked),
        ("relay_layer_switches_total", "Simulcast layer switches made for subscribers.", s.layer_switches),
        ("relay_unknown_rid_total", "Simulcast packets of no negotiated layer (dropped).", s.unknown_rid),
        (
            "relay_malformed_vp8_total",
            "Simulcast packets with a broken VP8 descriptor (dropped).",
            s.malformed_vp8,
        ),
        ("relay_joins_total", "Participants admitted.", COUNTERS.joins),
        ("relay_connections_total", "WebSocket connections accepted.", COUNTERS.connections),
    ):
        metric(name, "counter", help_, value)
    for code, value in sorted(COUNTERS.rejects.items()):
        metric(
            "relay_rejects_total",
            "counter",
            "Refused joins and messages, by error code.",
            value,
            f'{{code="{code}"}}',
        )
    for peer in ("participant", "link"):
        for path in ("direct", "turn"):
            metric(
                "relay_media_connected_total",
                "counter",
                "Peer connections whose media came up, by peer and path (turn: through a TURN server).",
                CONNECTED[peer, path],
                f'{{peer="{peer}",path="{path}"}}',
            )
        metric(
            "relay_media_never_connected_total",
            "counter",
            "Negotiated peer connections that ended without media ever flowing (ICE failed), by peer.",
            NEVER_CONNECTED[peer],
            f'{{peer="{peer}"}}',
        )
    for reason in REASONS:
        metric(
            "relay_ice_datagrams_dropped_total",
            "counter",
            "Datagrams refused at the ICE sockets (edge_relay/sfu/ice_guard.py), by reason.",
            DROPPED[reason],
            f'{{reason="{reason}"}}',
        )
    metric(
        "relay_codec_instances_total",
        "counter",
        "Decoders/encoders aiortc created (0 when forwarding).",
        census.decoders,
        '{type="decoder"}',
    )
    metric("relay_codec_instances_total", "counter", "", census.encoders, '{type="encoder"}')
    metric(
        "relay_event_loop_lag_seconds", "gauge", "Event loop wake-up lag, last sample.", round(lag.last_s, 6)
    )
    metric(
        "relay_event_loop_lag_max_seconds",
        "gauge",
        "Event loop wake-up lag, worst so far.",
        round(lag.max_s, 6),
    )
    lines.extend(estimates.render())
    if coordinator is not None:
        _cluster(metric, rooms, coordinator)
    return "\n".join(lines) + "\n"


def _cluster(metric: Callable[..., None], rooms: Rooms, coordinator: Coordinator) -> None:
    """Members by state and per peer; links with the tracks each carries (each track crosses a relay
    pair once: the multi-region tests assert it from here)."""
    from edge_relay.cluster.members import State

    cluster = coordinator.cluster
    peers = cluster.swim.table.others(*State)  # every other relay known, in any state
    for state in State:
        count = sum(1 for m in peers if m.state == state)
        label = f'{{state="{state.name.lower()}"}}'
        metric("relay_cluster_members", "gauge", "Other relays known, by state.", count, label)
    for m in peers:
        label = f'{{peer="{m.id}"}}'
        metric(
            "relay_cluster_peer_state", "gauge", "0 alive, 1 suspect, 2 dead, 3 left.", int(m.state), label
        )
    live = sum(1 for m in peers if m.live)
    metric("relay_cluster_live_peers", "gauge", "Other relays alive or suspect.", live)
    metric("relay_cluster_rooms", "gauge", "Meetings in the replicated room state.", len(cluster.rooms))
    for name, value in coordinator.counters.items():
        metric(f"relay_cluster_{name}_total", "counter", f"Coordinator: {name.replace('_', ' ')}.", value)
    links = [(rid, link) for room in rooms.rooms.values() for rid, link in room.links.items()]
    metric(
        "relay_cascade_links", "gauge", "Links to other relays (one per meeting and relay pair).", len(links)
    )
    per_peer: dict[str, list[int]] = {}
    for rid, link in links:
        sent = link.forwarded()
        totals = per_peer.setdefault(rid, [0, 0, 0])
        totals[0] += len(link.tracks)
        totals[1] += len(sent)
        totals[2] += sum(sub.packets for sub in sent)
    for rid, (tracks_in, tracks_out, packets_out) in sorted(per_peer.items()):
        label = f'{{peer="{rid}"}}'
        metric(
            "relay_cascade_tracks_in", "gauge", "Tracks received over links, by peer relay.", tracks_in, label
        )
        metric(
            "relay_cascade_tracks_out",
            "gauge",
            "Our tracks sent over links, by peer relay.",
            tracks_out,
            label,
        )
        metric(
            "relay_cascade_packets_out", "gauge", "RTP packets sent on the current links.", packets_out, label
        )
