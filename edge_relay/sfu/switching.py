"""One subscriber's view of a simulcast source: which layer it gets, and a seamless switch between them.

The subscriber sees one stream (one SSRC, one m-line) whatever layer it is sent. At a switch the
relay re-bases, at the first packet of a key frame of the new layer:

* the sequence number, so the key frame's first packet follows the last packet sent (no gap the
  receiver would NACK; NACKs for packets before the switch are answered with nothing, never with a
  packet of the other layer that happens to map to the same number);
* the timestamp, so it advances by the wall-clock time since the last packet sent (each layer has its
  own random timestamp base: libwebrtc's per-SSRC offset);
* the VP8 PictureID and TL0PICIDX (:mod:`.vp8`).

Switching up and down both wait for a key frame of the target layer (requested at once by the track's
upkeep), while the current layer keeps flowing: the subscriber's picture never stops in between.
Packets of the new layer older than its key frame (reordered) are dropped: they would take sequence
numbers already used by the old layer.
"""

from __future__ import annotations

import time

from edge_relay.sfu.layers import Layer, LayerPolicy
from edge_relay.sfu.rtp import RtpHeader
from edge_relay.sfu.vp8 import Vp8Descriptor, Vp8Munger


class LayerSwitch:
    """Per subscription: the layer forwarded now, the one wanted, and the rewriting offsets."""

    __slots__ = (
        "_in_seq",
        "_last_at",
        "_last_seq",
        "_last_ts",
        "_out_seq",
        "clock_rate",
        "layer",
        "policy",
        "seq_offset",
        "switches",
        "target",
        "ts_offset",
        "vp8",
    )

    def __init__(self, clock_rate: int, first_seq: int, first_ts: int) -> None:
        self.clock_rate = clock_rate
        self.layer: Layer | None = None  # forwarded now (None: nothing sent yet)
        self.target: Layer | None = None  # wanted (set by the track's upkeep from :attr:`policy`)
        self.policy = LayerPolicy()
        self.vp8 = Vp8Munger()
        self.seq_offset = 0
        self.ts_offset = 0
        self.switches = 0
        self._last_seq = (first_seq - 1) & 0xFFFF  # the next packet sent takes first_seq
        self._last_ts = first_ts
        self._last_at: float | None = None
        self._in_seq = 0  # the new layer's first forwarded seq (older ones are dropped)
        self._out_seq = 0  # the subscriber's seq of that packet (older NACKs are not answered)

    def accept(
        self, layer: Layer, header: RtpHeader, keyframe: bool, descriptor: Vp8Descriptor | None
    ) -> bool:
        """Whether to forward this packet of ``layer`` to the subscriber (switching if it is time)."""
        if layer is self.target and layer is not self.layer and keyframe:
            self._switch(layer, header, descriptor)
            return True
        if layer is not self.layer:
            return False
        return not (header.seq - self._in_seq) & 0x8000

    def _switch(self, layer: Layer, header: RtpHeader, descriptor: Vp8Descriptor | None) -> None:
        now = time.monotonic()
        elapsed = 0.0 if self._last_at is None else now - self._last_at
        step = max(1, round(elapsed * self.clock_rate))
        self.seq_offset = (self._last_seq + 1 - header.seq) & 0xFFFF
        self.ts_offset = (self._last_ts + step - header.timestamp) & 0xFFFFFFFF
        if descriptor is not None:
            self.vp8.rebase(descriptor)
        self._in_seq = header.seq
        self._out_seq = (header.seq + self.seq_offset) & 0xFFFF
        if self.layer is not None:
            self.switches += 1
        self.layer = layer

    def sent(self, seq_out: int, ts_out: int, at: float) -> None:
        """Note the last packet sent (its rewritten numbers, when it arrived), for the next switch."""
        if (seq_out - self._last_seq) & 0xFFFF < 0x8000:
            self._last_seq = seq_out
            self._last_ts = ts_out
            self._last_at = at

    def source_seq(self, seq_out: int) -> int | None:
        """The current layer's seq of the packet the subscriber knows as ``seq_out`` (for a NACK), or
        None if it was sent before the last switch (from another layer)."""
        if self.layer is None or (seq_out - self._out_seq) & 0x8000:
            return None
        return (seq_out - self.seq_offset) & 0xFFFF
