"""Forwarding a simulcast source: what :class:`~edge_relay.sfu.forwarder.PublishedTrack` does when its
publisher sends layers (edge_relay/sfu/simulcast.py) instead of one stream.

Per layer it keeps what a single stream keeps (history, receive statistics and NACKs upstream, the SR
mapping, key-frame requests); per subscription it forwards the packets of the layer that subscription
gets (edge_relay/sfu/switching.py) and, every upkeep, asks the subscription's policy
(edge_relay/sfu/layers.py) which layer it should get, requesting a key frame of that layer while the
subscription waits to switch.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from edge_relay.sfu.layers import Layer, ranked
from edge_relay.sfu.rtp import RtpHeader
from edge_relay.sfu.simulcast import SimulcastSource
from edge_relay.sfu.stats import STATS
from edge_relay.sfu.vp8 import MalformedDescriptor, keyframe_size, parse_descriptor

if TYPE_CHECKING:
    from edge_relay.sfu.forwarder import Subscription

log = logging.getLogger("edge_relay.sfu")

KEYFRAME_REQUEST_INTERVAL_S = 0.3  # at most this often upstream, per track (per layer for simulcast)
KEYFRAME_RETRY_S = 1.0  # ask again while a subscriber still waits (a request can be lost)


class LayeredForwarding:
    """The simulcast half of a published track (a mixin: the track supplies these attributes)."""

    track_id: str
    clock_rate: int
    ssrc: int
    upstream: Any
    subscriptions: list[Subscription]
    simulcast: SimulcastSource | None

    def layers(self) -> list[Layer]:
        return list(self.simulcast.layers.values()) if self.simulcast is not None else []

    async def _on_layer_packet(
        self, simulcast: SimulcastSource, data: bytes, header: RtpHeader, arrival_ms: int
    ) -> None:
        """The hot path of a simulcast source: per layer what ``on_packet`` does for one stream; each
        subscription takes the packets of its layer, and switches layer at a key frame."""
        stats = STATS
        stats.packets_in += 1
        stats.bytes_in += len(data)
        layer = simulcast.layer_of(data, header)
        if layer is None:
            if header.payload_end > header.header_len:  # (padding alone, e.g. a probe: nothing lost)
                stats.unknown_rid += 1
            return
        if not self.ssrc:
            self.ssrc = header.ssrc  # (reports go out once the track has a known SSRC)
        layer.history.put(header.seq, data)
        layer.count(len(data))
        missing = layer.receive_stats.update(header.seq, header.timestamp, arrival_ms, self.clock_rate)
        if missing:
            stats.nacks_sent += 1
            await self.upstream.nack(layer.ssrc, missing)
        if header.payload_end == header.header_len:  # padding only: keeps the sequence numbers going
            for sub in self.subscriptions:
                if sub.switch is not None and sub.ready and sub.switch.accept(layer, header, False, None):
                    await sub.send(data, header, None)
            return
        payload = memoryview(data)[header.header_len : header.payload_end]
        try:
            descriptor = parse_descriptor(payload)
        except MalformedDescriptor:
            stats.malformed_vp8 += 1
            return
        size = keyframe_size(payload, descriptor) if descriptor.start else None
        if size is not None:
            layer.width, layer.height = size
        for sub in self.subscriptions:
            switch = sub.switch
            if switch is None or not sub.ready:
                continue
            before = switch.layer
            if not switch.accept(layer, header, size is not None, descriptor):
                continue
            if switch.layer is not before and before is not None:
                stats.layer_switches += 1
            sub.started = True
            await sub.send(data, header, descriptor)

    async def request_layer_keyframes(self, force: bool = False) -> None:
        """A key frame of each layer a subscription gets or is heading to."""
        for layer in self.layers():
            if any(s.switch and layer in (s.switch.layer, s.switch.target) for s in self.subscriptions):
                await self.request_layer_keyframe(layer, force)

    async def request_layer_keyframe(self, layer: Layer, force: bool = False) -> None:
        """Ask for a key frame of one layer, at most every KEYFRAME_REQUEST_INTERVAL_S."""
        now = time.monotonic()
        if not layer.ssrc or (not force and now - layer.last_keyframe_request < KEYFRAME_REQUEST_INTERVAL_S):
            return
        layer.last_keyframe_request = now
        STATS.keyframe_requests_sent += 1
        await self.upstream.request_keyframe(layer.ssrc)

    async def layers_upkeep(self, now_ms: float) -> None:
        """Every ~200 ms: measure each layer, NACK again what is still missing, choose layers."""
        now = time.monotonic()
        for layer in self.layers():
            layer.measure(now)
            due = layer.receive_stats.nacks_due(now_ms)
            if due and layer.ssrc:
                STATS.nacks_sent += 1
                await self.upstream.nack(layer.ssrc, due)
        await self.select_layers(now)

    async def select_layers(self, now: float) -> None:
        """Give each subscription the layer its policy chooses; ask the target layer for a key frame
        while a subscription waits to switch to it (again after KEYFRAME_RETRY_S: one can be lost)."""
        layers = ranked(self.layers(), now)
        if not layers:  # no key frame seen yet (lost?): ask each layer for one, for its size
            if any(sub.ready for sub in self.subscriptions):
                for layer in self.layers():
                    if now - layer.last_keyframe_request > KEYFRAME_RETRY_S:
                        await self.request_layer_keyframe(layer, force=True)
            return
        rates = [layer.bitrate for layer in layers]
        for sub in self.subscriptions:
            switch = sub.switch
            if switch is None:
                continue
            # the policy's last choice is its state (the switch itself waits for a key frame)
            heading = switch.target if switch.target in layers else switch.layer
            current = layers.index(heading) if heading in layers else None
            target = layers[switch.policy.choose(rates, current, now)]
            if target is not switch.target:
                log.info(
                    "layer wanted",
                    extra={
                        "track": self.track_id,
                        "subscriber_ssrc": sub.ssrc,
                        "rid": target.rid,
                        "size": f"{target.width}x{target.height}",
                        "estimate": switch.policy.estimate,
                        "bitrate": round(target.bitrate),
                    },
                )
            switch.target = target
            if sub.ready and target is not switch.layer:
                retry = now - target.last_keyframe_request > KEYFRAME_RETRY_S
                await self.request_layer_keyframe(target, force=retry)
