"""One subscriber connection's downlink: a bandwidth estimate, RTT and loss, from its own feedback.

Per :class:`~edge_relay.sfu.transport.PeerTransport` (transport-cc numbers every packet of the
connection, whatever track it carries), :class:`SubscriberBandwidth`:

* stamps each packet the relay sends with the next transport-wide sequence number and remembers
  (number, send time, size) in a fixed ring of :data:`HISTORY` entries (the hook on the forwarder's send
  path, :attr:`Subscription.stamp`), once the peer's answer kept transport-cc;
* takes the connection's incoming RTCP before aiortc does (:meth:`on_rtcp`): transport feedback goes to
  the GCC estimator (:mod:`edge_relay.sfu.gcc`) and is removed (aiortc would parse it as a NACK); REMB
  (what aiortc receivers send instead) and receiver reports (RTT, fraction lost) are read and passed on;
* exposes one :attr:`estimate_bps`: from transport-cc while its feedback is fresh, else the sum of the
  peer's fresh REMBs (aiortc sends one per video stream, libwebrtc one covering all), else None.

Feedback is hostile input: malformed packets and feedback whose arrival times are absurd (more than
:data:`ABSURD_MS` away from the one-way offset seen so far) are dropped and counted; the work per packet
is bounded by the packet's length and by the ring, never by the counts the peer claims.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable
from typing import Any

from aiortc import clock
from aiortc.rtp import RtcpPacket, RtcpPsfbPacket, RtcpRrPacket, RtcpSrPacket, unpack_remb_fci

from edge_relay.sfu.gcc import GccEstimator, PacketResult
from edge_relay.sfu.twcc import (
    FMT_TRANSPORT_CC,
    REFERENCE_MODULO,
    REFERENCE_TICK_US,
    RTCP_RTPFB,
    MalformedFeedback,
    parse_feedback,
    split_compound,
    stamp,
)

log = logging.getLogger("edge_relay.bwe")

HISTORY = 1 << 13  # packets remembered per connection (~8 s at 1000 packets/s)
FRESH_S = 5.0  # an estimate older than this no longer counts
ABSURD_MS = 10_000.0
MAX_REMB_KEYS = 32
RTCP_PSFB = 206
FMT_REMB = 15
LOG_EVERY_S = 2.0


class BweStats:
    """Process-wide counters for /metrics."""

    def __init__(self) -> None:
        self.feedback = 0
        self.feedback_malformed = 0
        self.feedback_absurd = 0
        self.rtcp_malformed = 0


STATS = BweStats()
#: Live estimators (one per peer connection), read by /metrics; gone with their connection.
LIVE: weakref.WeakSet[SubscriberBandwidth] = weakref.WeakSet()


class SubscriberBandwidth:
    """Send-side history, feedback and estimate for one peer connection."""

    def __init__(self, label: str = "", now: Callable[[], float] = time.monotonic) -> None:
        self.label = label  # whom it measures (a participant id), for logs and /metrics
        self._now = now  # seconds (tests drive a fake clock)
        self.ext_id: int | None = None  # transport-cc extension id, once the peer's answer kept it
        self.gcc = GccEstimator()
        self.rtt_ms: float | None = None
        self.loss: float | None = None  # fraction lost in the peer's last receiver report
        self.feedback_at = -1e9
        self._next = 0  # unwrapped transport-wide sequence number of the next packet
        self._seqs: list[int] = []  # the ring, allocated by enable()
        self._sent_ms: list[float] = []
        self._sizes: list[int] = []
        self._reference: int | None = None  # last 24-bit reference time, and its unwrapped value
        self._reference_unwrapped = 0
        self._offset_ms: float | None = None  # arrival minus send time: one-way delay + clock offset
        self._absurd_in_row = 0
        self._remb: dict[tuple[int, ...], tuple[int, float]] = {}
        self._logged = (0, 0.0)
        LIVE.add(self)

    # --- sending -------------------------------------------------------------------------------------

    def enable(self, ext_id: int) -> None:
        """The peer's answer kept transport-cc as extension ``ext_id``: start numbering packets."""
        if not self._seqs:
            self._seqs, self._sent_ms, self._sizes = [-1] * HISTORY, [0.0] * HISTORY, [0] * HISTORY
        self.ext_id = ext_id

    def stamp(self, packet: bytes) -> bytes:
        """The send-path hook: number ``packet`` and remember it. Only installed once negotiated."""
        seq = self._next
        self._next = seq + 1
        out = stamp(packet, self.ext_id or 0, seq)
        i = seq & (HISTORY - 1)
        self._seqs[i] = seq
        self._sent_ms[i] = self._now() * 1000
        self._sizes[i] = len(out)
        return out

    # --- feedback ------------------------------------------------------------------------------------

    def on_rtcp(self, data: bytes) -> bytes:
        """Take a compound RTCP packet from the peer; return what aiortc should still see."""
        try:
            parts = list(split_compound(data))
        except MalformedFeedback:
            STATS.rtcp_malformed += 1
            return b""  # aiortc would refuse it too, and might misread a transport feedback in it
        rest: list[bytes] = []
        for pt, fmt, packet in parts:
            if pt == RTCP_RTPFB and fmt == FMT_TRANSPORT_CC:
                self._on_transport_feedback(packet)
                continue
            if pt in (200, 201) or (pt == RTCP_PSFB and fmt == FMT_REMB):
                self._observe(packet)
            rest.append(packet)
        return b"".join(rest)

    def _on_transport_feedback(self, packet: bytes) -> None:
        try:
            fb = parse_feedback(packet)
        except MalformedFeedback as exc:
            STATS.feedback_malformed += 1
            log.debug("transport feedback dropped", extra={"peer": self.label, "why": str(exc)})
            return
        if self._next == 0 or not self._seqs:
            return  # we never sent anything numbered: nothing to match
        back = (self._next - fb.base_seq) & 0xFFFF
        if back == 0:
            return  # the feedback is about numbers we have not sent
        base = self._next - back
        reference_ms = self._unwrap_reference(fb.reference) * REFERENCE_TICK_US / 1000
        results: list[PacketResult] = []
        for seq16, arrival_us in fb.received:
            seq = base + ((seq16 - fb.base_seq) & 0xFFFF)
            i = seq & (HISTORY - 1)
            if seq < self._next and self._seqs[i] == seq:
                results.append(
                    PacketResult(self._sent_ms[i], reference_ms + arrival_us / 1000, self._sizes[i])
                )
        if not self._plausible(results):
            return
        first = max(base, self._next - HISTORY, 0)
        span = max(0, min(base + fb.status_count, self._next) - first)
        STATS.feedback += 1
        now = self._now()
        self.feedback_at = now
        self.gcc.on_feedback(results, now * 1000, self.rtt_ms or 50.0, lost=max(0, span - len(results)))
        self._log(now)

    def _unwrap_reference(self, reference: int) -> int:
        if self._reference is not None:
            step = (reference - self._reference) % REFERENCE_MODULO
            if step >= REFERENCE_MODULO // 2:
                step -= REFERENCE_MODULO
            self._reference_unwrapped += step
        else:
            self._reference_unwrapped = reference
        self._reference = reference
        return self._reference_unwrapped

    def _plausible(self, results: list[PacketResult]) -> bool:
        """False (counted) when arrival times jump by more than ABSURD_MS against send times; after three
        such feedbacks in a row the peer's clock is taken as it now is."""
        if not results:
            return True
        offsets = [r.arrival_ms - r.send_ms for r in results if r.arrival_ms is not None]
        if self._offset_ms is None:
            self._offset_ms = min(offsets)
        if max(abs(o - self._offset_ms) for o in offsets) <= ABSURD_MS:
            self._absurd_in_row = 0
            self._offset_ms = min(self._offset_ms, min(offsets))
            return True
        STATS.feedback_absurd += 1
        self._absurd_in_row += 1
        if self._absurd_in_row >= 3:
            self._offset_ms, self._absurd_in_row = None, 0
            self.gcc = GccEstimator(self.gcc.estimate_bps)
        return False

    def _observe(self, packet: bytes) -> None:
        """RTT and loss from a receiver report block, or a REMB."""
        try:
            parsed: list[Any] = RtcpPacket.parse(packet)
        except ValueError:
            STATS.rtcp_malformed += 1
            return
        for p in parsed:
            if isinstance(p, RtcpPsfbPacket):
                try:
                    bitrate, ssrcs = unpack_remb_fci(p.fci)
                except ValueError:
                    continue
                self._remb.pop(tuple(ssrcs), None)
                self._remb[tuple(ssrcs)] = (bitrate, self._now())
                while len(self._remb) > MAX_REMB_KEYS:
                    del self._remb[next(iter(self._remb))]
            elif isinstance(p, (RtcpRrPacket, RtcpSrPacket)) and p.reports:
                self.loss = max(r.fraction_lost for r in p.reports) / 256
                now = (clock.current_ntp_time() >> 16) & 0xFFFFFFFF
                rtts = [((now - r.lsr - r.dlsr) & 0xFFFFFFFF) / 65.536 for r in p.reports if r.lsr]
                rtts = [r for r in rtts if r < 10_000]
                if rtts:
                    self.rtt_ms = min(rtts)

    # --- what others read ----------------------------------------------------------------------------

    @property
    def source(self) -> str | None:
        """``transport-cc``, ``remb`` or None: where :attr:`estimate_bps` comes from now."""
        now = self._now()
        if now - self.feedback_at < FRESH_S:
            return "transport-cc"
        if any(now - at < FRESH_S for _, at in self._remb.values()):
            return "remb"
        return None

    @property
    def estimate_bps(self) -> int | None:
        """The subscriber's downlink estimate in bit/s (None until it sent either kind of feedback)."""
        source = self.source
        if source == "transport-cc":
            return self.gcc.estimate_bps
        if source == "remb":
            now = self._now()
            return sum(bps for bps, at in self._remb.values() if now - at < FRESH_S)
        return None

    def _log(self, now: float) -> None:
        estimate = self.gcc.estimate_bps
        last, at = self._logged
        if now - at >= LOG_EVERY_S or abs(estimate - last) > 0.2 * max(last, 1):
            self._logged = (estimate, now)
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "subscriber estimate",
                    extra={
                        "peer": self.label,
                        "estimate_bps": estimate,
                        "acked_bps": self.gcc.acked.bps(),
                        "usage": self.gcc.detector.usage.value,
                        "loss": round(self.gcc.loss_fraction, 3),
                        "rtt_ms": self.rtt_ms,
                    },
                )
