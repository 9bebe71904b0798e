"""Upstream reception statistics and NACK generation for one incoming RTP stream.

The relay's tap bypasses aiortc's ``RTCRtpReceiver`` entirely, so the relay itself must do what a
receiver does towards the publisher: notice lost packets and NACK them (and NACK again if the
retransmission is lost too), and send receiver reports (loss, jitter, LSR/DLSR for the publisher's
RTT). :class:`ReceiveStats` does this bookkeeping on plain ints, following RFC 3550 A.1 (extended
sequence numbers, probation on big jumps), A.3 (loss counts) and A.8 (jitter).

Cost per packet is a few int operations and one list store; a dict entry is created only for a
missing packet. Sequence numbers returned for NACKs are 16-bit, ready for :func:`.rtcp.build_nack`.
"""

from __future__ import annotations

from aiortc.rtp import RtcpReceiverInfo, clamp_packets_lost


class ReceiveStats:
    """Loss, jitter and NACK state of one incoming stream (one SSRC).

    - ``max_missing``: at most this many missing packets are tracked (oldest forgotten first);
      a gap larger than that only NACKs its newest ``max_missing`` packets.
    - ``window``: packets this many or more sequence numbers behind the highest one are "very
      old": they are neither counted nor NACKed any more (match the publisher's and the relay's
      history sizes; aiortc's sender keeps 128 packets, libwebrtc about 600).
    - ``max_dropout``: a forward jump bigger than this (or a backward one bigger than ``window``)
      is taken as a stream restart only when the next packet confirms it (RFC 3550 A.1).
    - ``max_nacks``: a missing packet is NACKed at most this many times, then given up on.
    """

    __slots__ = (
        "_bad_seq",
        "_base",
        "_expected_prior",
        "_jitter",
        "_last_ts",
        "_max",
        "_missing",
        "_received",
        "_received_prior",
        "_ring_mask",
        "_seen",
        "_sr_arrival",
        "_sr_lsr",
        "_transit",
        "max_dropout",
        "max_missing",
        "max_nacks",
        "ssrc",
        "window",
    )

    def __init__(
        self,
        ssrc: int = 0,
        *,
        max_missing: int = 128,
        window: int = 1024,
        max_dropout: int = 3000,
        max_nacks: int = 10,
    ) -> None:
        if not 0 < window <= 0x8000 or max_missing <= 0:
            raise ValueError("window must be in 1..32768 and max_missing positive")
        self.ssrc = ssrc
        self.max_missing = max_missing
        self.window = window
        self.max_dropout = max_dropout
        self.max_nacks = max_nacks
        self._ring_mask = (1 << (window - 1).bit_length()) - 1
        self._seen: list[int] = [-1] * (self._ring_mask + 1)  # extended seq stored at ext & mask
        # extended seq -> [times NACKed, last NACK time in ms]; insertion order = ascending seq
        self._missing: dict[int, list[float]] = {}
        self._max = -1  # extended highest sequence number; -1 = nothing received yet
        self._base = 0
        self._received = 0
        self._bad_seq = -1
        self._expected_prior = self._received_prior = 0
        self._jitter = 0.0
        self._transit: int | None = None
        self._last_ts = -1
        self._sr_lsr = 0
        self._sr_arrival: float | None = None

    def _restart(self, seq: int) -> None:
        self._base = self._max = seq
        self._received = 1
        self._expected_prior = self._received_prior = 0
        self._missing.clear()
        self._seen = [-1] * (self._ring_mask + 1)
        self._seen[seq & self._ring_mask] = seq
        self._bad_seq = -1

    def update(self, seq: int, timestamp: int, arrival_ms: float, clock_rate: int) -> list[int]:
        """Account for one received packet; return the 16-bit seqs that just went missing.

        The returned seqs should be NACKed now; they count as NACKed once at ``arrival_ms``
        (:meth:`nacks_due` re-NACKs them later). Duplicates, very old packets and the first packet
        of an unconfirmed jump are ignored. Jitter uses in-order packets that start a new RTP
        timestamp (as libwebrtc does: a frame's packets leave in one burst; late and retransmitted
        packets would only add their delay).
        """
        top = self._max
        if top < 0:
            self._restart(seq)
            self._update_jitter(timestamp, arrival_ms, clock_rate)
            return []
        delta = (seq - top) & 0xFFFF
        if delta == 0:
            return []
        if delta < 0x8000:
            if delta > self.max_dropout:
                return self._jump(seq)
            ext = top + delta
            newly: list[int] = []
            if delta > 1:
                missing = self._missing
                first = max(top + 1, ext - self.max_missing)
                for m in range(first, ext):
                    missing[m] = [1, arrival_ms]
                    newly.append(m & 0xFFFF)
                while len(missing) > self.max_missing:
                    del missing[next(iter(missing))]
            self._max = ext
            self._seen[ext & self._ring_mask] = ext
            self._received += 1
            if timestamp != self._last_ts:
                self._update_jitter(timestamp, arrival_ms, clock_rate)
            if self._missing:
                limit = ext - self.window
                missing = self._missing
                while missing:
                    oldest = next(iter(missing))
                    if oldest > limit:
                        break
                    del missing[oldest]
            return newly
        back = 0x10000 - delta
        if back >= self.window:
            return self._jump(seq)
        ext = top - back
        i = ext & self._ring_mask
        if ext < self._base or self._seen[i] == ext:
            return []
        self._seen[i] = ext
        self._received += 1
        self._missing.pop(ext, None)
        return []

    def _jump(self, seq: int) -> list[int]:
        """RFC 3550 A.1: accept a big jump only if the next packet follows it."""
        if seq == self._bad_seq:
            self._restart(seq)
        else:
            self._bad_seq = (seq + 1) & 0xFFFF
        return []

    def _update_jitter(self, timestamp: int, arrival_ms: float, clock_rate: int) -> None:
        transit = int(arrival_ms * clock_rate / 1000) - timestamp
        if self._transit is not None:
            d = (transit - self._transit) & 0xFFFFFFFF
            if d & 0x80000000:  # the difference is signed modulo 2**32 (timestamp wrap)
                d = 0x100000000 - d
            self._jitter += (d - self._jitter) / 16
        self._transit = transit
        self._last_ts = timestamp

    def nacks_due(self, now_ms: float, retry_ms: float = 100.0) -> list[int]:
        """Seqs still missing whose last NACK is at least ``retry_ms`` old (use ~the RTT).

        Each returned seq counts as NACKed again at ``now_ms``; one that has been NACKed
        ``max_nacks`` times is dropped instead (given up: it stays lost).
        """
        due: list[int] = []
        give_up: list[int] = []
        for ext, state in self._missing.items():
            if now_ms - state[1] >= retry_ms:
                if state[0] >= self.max_nacks:
                    give_up.append(ext)
                else:
                    state[0] += 1
                    state[1] = now_ms
                    due.append(ext & 0xFFFF)
        for ext in give_up:
            del self._missing[ext]
        return due

    @property
    def missing(self) -> list[int]:
        """16-bit seqs currently tracked as missing (oldest first)."""
        return [ext & 0xFFFF for ext in self._missing]

    @property
    def extended_highest_seq(self) -> int:
        """Highest sequence number received, extended with the wrap count (-1 before any)."""
        return self._max

    @property
    def received(self) -> int:
        """Distinct packets received (duplicates and very old packets excluded)."""
        return self._received

    @property
    def jitter(self) -> int:
        """Interarrival jitter in RTP timestamp units (RFC 3550 A.8)."""
        return int(self._jitter)

    def lost_packets(self) -> int:
        """Cumulative number of packets lost: expected minus received (RFC 3550 A.3)."""
        return 0 if self._max < 0 else self._max - self._base + 1 - self._received

    def fraction_lost_since_last_report(self) -> int:
        """Fraction lost since the previous call, in 1/256 (RFC 3550 A.3); starts a new interval."""
        expected = 0 if self._max < 0 else self._max - self._base + 1
        expected_interval = expected - self._expected_prior
        received_interval = self._received - self._received_prior
        self._expected_prior, self._received_prior = expected, self._received
        lost_interval = expected_interval - received_interval
        if expected_interval <= 0 or lost_interval <= 0:
            return 0
        return min(255, (lost_interval << 8) // expected_interval)

    def on_sender_report(self, ntp_timestamp: int, arrival_monotonic: float) -> None:
        """Record the publisher's SR (64-bit NTP time, local arrival time in seconds)."""
        self._sr_lsr = (ntp_timestamp >> 16) & 0xFFFFFFFF
        self._sr_arrival = arrival_monotonic

    def receiver_info(self, now_monotonic: float) -> RtcpReceiverInfo:
        """The report block for this stream in an RR; starts a new fraction-lost interval."""
        dlsr = 0
        if self._sr_arrival is not None:
            dlsr = min(0xFFFFFFFF, max(0, int((now_monotonic - self._sr_arrival) * 65536)))
        return RtcpReceiverInfo(
            ssrc=self.ssrc,
            fraction_lost=self.fraction_lost_since_last_report(),
            packets_lost=clamp_packets_lost(self.lost_packets()),
            highest_sequence=max(self._max, 0) & 0xFFFFFFFF,
            jitter=min(int(self._jitter), 0xFFFFFFFF),
            lsr=self._sr_lsr,
            dlsr=dlsr,
        )
