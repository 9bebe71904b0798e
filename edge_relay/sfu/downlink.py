"""One subscriber connection's video: its bandwidth estimate shared over the simulcast sources it gets.

Every tick the room asks each participant's connection to allocate: the connection's estimate
(transport-cc where the subscriber kept it, else its REMB: :mod:`.bwe`), less a reserve per audio
stream, goes to the allocator (:mod:`.allocation`, with trials: the relay has no prober yet), which picks
one layer per simulcast source within what the subscriber asked for (``video_quality``), or none: the
source is paused for this subscriber, audio keeps flowing. The choice is left on each subscription's
:class:`~.switching.LayerSwitch` as ``allotted``; the track's upkeep (:mod:`.layered`) applies it at the
next key frame of that layer. Without an estimate yet, ``allotted`` stays :data:`UNDECIDED` and the
switch falls back to its own per-track policy.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from edge_relay.sfu import allocation
from edge_relay.sfu.bwe import SubscriberBandwidth
from edge_relay.sfu.layers import Layer, quality_index, ranked
from edge_relay.sfu.switching import UNDECIDED

if TYPE_CHECKING:
    from edge_relay.sfu.forwarder import Subscription

log = logging.getLogger("edge_relay.sfu")

#: Set aside per audio stream the subscriber gets (Opus speech with RTP, SRTP, UDP and IP headers).
AUDIO_RESERVE_BPS = 50_000
ASSUMED_FPS = 30.0  # Chromium's simulcast layers all run at the camera's rate (temporal layers aside)


class Downlink:
    """The allocation of one subscriber connection (a participant's; cascade links keep the fallback)."""

    def __init__(self, bandwidth: SubscriberBandwidth) -> None:
        self.bandwidth = bandwidth
        self.allocator = allocation.Allocator(trials=True)

    def allocate(self, subscriptions: Sequence[Subscription], now: float) -> None:
        """Choose each simulcast subscription's layer (``switch.allotted``) from the current estimate."""
        layered = [s for s in subscriptions if s.switch is not None]
        if not layered:
            return
        estimate = self.bandwidth.estimate_bps
        if estimate is None:
            for sub in layered:
                sub.switch.allotted = UNDECIDED  # type: ignore[union-attr]
            return
        audio = sum(1 for s in subscriptions if s.track.kind == "audio")
        sources: list[allocation.Source] = []
        layers_of: dict[str, tuple[Subscription, list[Layer]]] = {}
        for sub in layered:
            layers = ranked(sub.track.layers(), now)
            if not layers:  # no key frame of any layer yet: nothing to choose from
                continue
            cap = quality_index(sub.switch.policy.quality, len(layers))  # type: ignore[union-attr]
            options = tuple(
                allocation.Layer(i, 0, layer.height, ASSUMED_FPS, max(layer.bitrate, 1.0))
                for i, layer in enumerate(layers)
            )
            sources.append(allocation.Source(sub.track.track_id, options, layers[cap].height))
            layers_of[sub.track.track_id] = (sub, layers)
        if not sources:
            return
        result = self.allocator.update(estimate - AUDIO_RESERVE_BPS * audio, sources, now)
        for track_id, (sub, layers) in layers_of.items():
            chosen = result.layer(track_id)
            allotted = None if chosen is None else layers[chosen.spatial]
            if allotted is not sub.switch.allotted:  # type: ignore[union-attr]
                log.info(
                    "layer allotted",
                    extra={
                        "track": track_id,
                        "subscriber_ssrc": sub.ssrc,
                        "layer": "paused" if allotted is None else f"{allotted.width}x{allotted.height}",
                        "estimate": round(estimate),
                        "source": self.bandwidth.source,
                    },
                )
            sub.switch.allotted = allotted  # type: ignore[union-attr]
