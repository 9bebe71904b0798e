"""Unit tests of edge_relay.sfu.forwarder: one published track fanned out to subscriptions at the RTP level.

Through the forwarder's own API (what the relay's bindings call): ``PublishedTrack.on_packet`` with the
relay's ``parse_header``, ``Subscription.on_nack`` / ``on_remb`` / ``sender_reports``, ``request_keyframe``
and ``upkeep``. Packets are real RTP (aiortc's ``RtpPacket``), and what the forwarder sends is parsed back
with aiortc. Fakes only at the boundary: the DTLS transport's send (``_send_rtp``, the aiortc seam) and the
publisher's feedback channel (``Upstream``).
"""

from __future__ import annotations

import time

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import (
    HeaderExtensionsMap,
    RtcpRrPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
)

from edge_relay.sfu import forwarder
from edge_relay.sfu.forwarder import STATS, PublishedTrack, Subscription
from edge_relay.sfu.rtp import EXT_AUDIO_LEVEL, EXT_MID, ExtensionMap, parse_header

VP8_KEY = (
    b"\x10" + b"\x00\x00\x00" + b"\x9d\x01\x2a" + b"\x40\x01\xf0\x00" + bytes(40)
)  # S=1, P=0, start code
VP8_DELTA = b"\x10" + b"\x01\x00\x00" + bytes(40)  # S=1, P=1: an inter frame
VP8_MIDDLE = b"\x00" + bytes(40)  # S=0: a continuation packet


class FakeTransport:
    """The subscriber's DTLS transport at aiortc's seam: records what would be protected and sent."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[bytes] = []
        self.fail = fail

    async def _send_rtp(self, data: bytes) -> None:
        if self.fail:
            raise ConnectionError("Cannot send encrypted RTP, not connected")
        self.sent.append(data)


class FakeUpstream:
    def __init__(self) -> None:
        self.keyframe_requests: list[int] = []
        self.nacks: list[tuple[int, list[int]]] = []

    async def request_keyframe(self, media_ssrc: int) -> None:
        self.keyframe_requests.append(media_ssrc)

    async def nack(self, media_ssrc: int, lost: list[int]) -> None:
        self.nacks.append((media_ssrc, list(lost)))

    async def report(self, track: PublishedTrack) -> None:
        pass


@pytest.fixture
def stats():
    """Deltas of the process-wide forwarding counters during one test."""
    before = dict(vars(STATS))

    def delta() -> dict[str, int]:
        return {k: v - before[k] for k, v in vars(STATS).items() if v != before[k]}

    return delta


PUB_SSRC = 0xA1A1A1A1


def make_track(mime: str = "audio/opus", clock_rate: int = 48000, extensions: dict | None = None):
    upstream = FakeUpstream()
    kind = mime.split("/")[0]
    track = PublishedTrack("p1/cam", kind, mime, clock_rate, {}, PUB_SSRC, upstream, extensions)
    return track, upstream


def subscribe(
    track: PublishedTrack,
    *,
    pt: int = 111,
    ssrc: int = 0xB2B2B2B2,
    ready: bool = True,
    fail: bool = False,
    extensions: ExtensionMap | None = None,
) -> tuple[Subscription, FakeTransport]:
    transport = FakeTransport(fail)
    sub = Subscription(track, transport, pt, ssrc, extensions or ExtensionMap(track.extensions, {}))  # type: ignore[arg-type]
    sub.ready = ready
    track.subscriptions.append(sub)
    return sub, transport


def rtp(
    seq: int, ts: int, payload: bytes = b"\xfc" + bytes(30), *, pt: int = 96, marker: bool = False
) -> bytes:
    packet = RtpPacket(
        payload_type=pt,
        sequence_number=seq & 0xFFFF,
        timestamp=ts & 0xFFFFFFFF,
        ssrc=PUB_SSRC,
        payload=payload,
    )
    packet.marker = int(marker)
    return packet.serialize()


async def feed(track: PublishedTrack, data: bytes, arrival_ms: int = 0) -> None:
    await track.on_packet(data, parse_header(data), arrival_ms)


def parsed(sent: list[bytes], extensions: HeaderExtensionsMap | None = None) -> list[RtpPacket]:
    return [RtpPacket.parse(d, extensions) for d in sent]


# ------------------------------------------------------------------------------------- forwarding


async def test_audio_is_forwarded_at_once_rewritten_for_the_subscriber(stats) -> None:
    track, _ = make_track()
    sub, transport = subscribe(track, pt=109, ssrc=0xB2B2B2B2)
    sent_in = [rtp(500 + i, 9000 + 960 * i, bytes([i]) * 50, pt=96, marker=i == 0) for i in range(5)]
    for data in sent_in:
        await feed(track, data)

    out = parsed(transport.sent)
    assert len(out) == 5
    assert {p.payload_type for p in out} == {109} and {p.ssrc for p in out} == {0xB2B2B2B2}
    assert [p.payload for p in out] == [bytes([i]) * 50 for i in range(5)]  # payload untouched
    assert [p.marker for p in out] == [1, 0, 0, 0, 0]
    first = out[0]
    assert [p.sequence_number for p in out] == [(first.sequence_number + i) & 0xFFFF for i in range(5)]
    assert [p.timestamp for p in out] == [(first.timestamp + 960 * i) & 0xFFFFFFFF for i in range(5)]
    assert sub.started and sub.packets == 5 and sub.octets == 250
    d = stats()
    assert d["packets_in"] == 5 and d["packets_out"] == 5
    assert d["bytes_in"] == sum(map(len, sent_in)) and d["bytes_out"] == sum(map(len, transport.sent))


async def test_each_subscriber_gets_its_own_ssrc_payload_type_and_random_start() -> None:
    track, _ = make_track()
    subs = [subscribe(track, pt=100 + i, ssrc=0x100 + i) for i in range(3)]
    for i in range(3):
        await feed(track, rtp(10 + i, 480 * i))
    starts = set()
    for i, (_, transport) in enumerate(subs):
        out = parsed(transport.sent)
        assert [(p.payload_type, p.ssrc) for p in out] == [(100 + i, 0x100 + i)] * 3
        starts.add((out[0].sequence_number, out[0].timestamp))
    assert len(starts) == 3  # RFC 3550: random initial sequence number and timestamp per stream


async def test_a_subscriber_that_is_not_ready_gets_nothing_until_it_is() -> None:
    track, _ = make_track()
    sub, transport = subscribe(track, ready=False)
    await feed(track, rtp(1, 0))
    assert transport.sent == [] and not sub.started
    sub.ready = True
    await feed(track, rtp(2, 960))
    assert len(transport.sent) == 1 and sub.started


async def test_video_starts_each_subscriber_on_a_keyframe(stats) -> None:
    track, _ = make_track("video/VP8", 90000)
    early, early_tx = subscribe(track, ssrc=1)
    await feed(track, rtp(100, 3000, VP8_KEY))
    await feed(track, rtp(101, 3000, VP8_MIDDLE))
    late, late_tx = subscribe(track, ssrc=2)
    await feed(track, rtp(102, 6000, VP8_DELTA))  # the late subscriber cannot start here
    await feed(track, rtp(103, 6000, VP8_MIDDLE))
    assert not late.started and late_tx.sent == []
    assert stats()["waiting_for_keyframe"] == 2
    await feed(track, rtp(104, 9000, VP8_KEY))
    await feed(track, rtp(105, 9000, VP8_MIDDLE))

    assert len(early_tx.sent) == 6
    late_out = parsed(late_tx.sent)
    assert [p.payload for p in late_out] == [VP8_KEY, VP8_MIDDLE]  # starts exactly at the keyframe
    assert late_out[1].sequence_number == (late_out[0].sequence_number + 1) & 0xFFFF
    early_out = parsed(early_tx.sent)
    assert [p.sequence_number for p in early_out] == [
        (early_out[0].sequence_number + i) & 0xFFFF for i in range(6)
    ]


async def test_hostile_video_payloads_never_start_a_subscriber_and_never_raise() -> None:
    track, _ = make_track("video/H264", 90000)
    sub, transport = subscribe(track)
    hostile = [
        b"",  # header only
        b"\x80",  # forbidden bit
        b"\x18\x00",  # STAP-A cut inside its length field
        b"\x18\x00\x09\x67",  # STAP-A whose NAL runs past the end
        b"\x1c",  # FU-A without its header
        b"\x1c\x87",  # FU-A start of an SPS with no data byte
        b"\xff" * 30,
    ]
    for i, payload in enumerate(hostile):
        await feed(track, rtp(i, 0, payload))
    # padded packet: the padding is not payload, so a trailing SPS byte in it must not count
    padded = bytearray(rtp(50, 0, b"\x01\x00\x67\x00\x03"))
    padded[0] |= 0x20
    await feed(track, bytes(padded))
    assert not sub.started and transport.sent == []
    await feed(track, rtp(60, 0, b"\x67\x42\x00\x1f"))  # a real SPS opens the gate
    assert sub.started and len(transport.sent) == 1


async def test_sequence_numbers_and_timestamps_wrap_without_a_gap() -> None:
    track, upstream = make_track()
    sub, transport = subscribe(track)
    seqs = [65533, 65534, 65535, 0, 1, 2]
    for i, seq in enumerate(seqs):
        await feed(track, rtp(seq, 0xFFFFFC00 + 960 * i))
    out = parsed(transport.sent)
    first = out[0]
    assert [p.sequence_number for p in out] == [(first.sequence_number + i) & 0xFFFF for i in range(6)]
    assert [p.timestamp for p in out] == [(first.timestamp + 960 * i) & 0xFFFFFFFF for i in range(6)]
    assert upstream.nacks == []  # a wrap is not a loss


async def test_publisher_loss_is_nacked_upstream_and_the_gap_is_kept_downstream(stats) -> None:
    track, upstream = make_track()
    _, transport = subscribe(track)
    for seq in (65534, 65535, 2, 3):  # 0 and 1 lost across the wrap
        await feed(track, rtp(seq, seq * 960))
    assert upstream.nacks == [(PUB_SSRC, [0, 1])]
    assert stats()["nacks_sent"] == 1
    out = parsed(transport.sent)
    base = out[0].sequence_number
    assert [(p.sequence_number - base) & 0xFFFF for p in out] == [0, 1, 4, 5]
    # the retransmission arrives: it goes out in the place it was missing from
    await feed(track, rtp(0, 0))
    assert (RtpPacket.parse(transport.sent[-1]).sequence_number - base) & 0xFFFF == 2


async def test_a_failing_subscriber_send_is_counted_and_others_still_get_the_packet(stats) -> None:
    track, _ = make_track()
    broken, broken_tx = subscribe(track, ssrc=1, fail=True)
    ok, ok_tx = subscribe(track, ssrc=2)
    await feed(track, rtp(1, 0))
    await feed(track, rtp(2, 960))
    assert len(ok_tx.sent) == 2 and ok.packets == 2
    assert broken.packets == 0 and broken.octets == 0
    d = stats()
    assert d["send_errors"] == 2 and d["packets_out"] == 2


async def test_header_extensions_are_translated_per_subscriber() -> None:
    incoming = {
        1: EXT_AUDIO_LEVEL,
        3: "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
    }
    track, _ = make_track(extensions=incoming)
    ext_map = ExtensionMap(track.extensions, {EXT_AUDIO_LEVEL: 7, EXT_MID: 9}, b"a1")
    _, transport = subscribe(track, extensions=ext_map)
    pub_ids = HeaderExtensionsMap()
    pub_ids.configure(
        RTCRtpParameters(headerExtensions=[RTCRtpHeaderExtensionParameters(id=1, uri=EXT_AUDIO_LEVEL)])
    )
    packet = RtpPacket(payload_type=96, sequence_number=7, timestamp=0, ssrc=PUB_SSRC, payload=b"\xfc\x00")
    packet.extensions.audio_level = (True, 42)
    packet.extensions.transport_sequence_number = 99  # not configured here: never serialized
    await feed(track, packet.serialize(pub_ids))

    sub_ids = HeaderExtensionsMap()
    sub_ids.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=7, uri=EXT_AUDIO_LEVEL),
                RTCRtpHeaderExtensionParameters(id=9, uri=EXT_MID),
            ]
        )
    )
    (out,) = parsed(transport.sent, sub_ids)
    assert out.extensions.audio_level == (True, 42)
    assert out.extensions.mid == "a1"
    assert out.payload == b"\xfc\x00"


# ------------------------------------------------------------------------------------------- NACKs


async def test_a_subscriber_nack_is_answered_with_the_packet_as_first_sent(stats) -> None:
    track, _ = make_track()
    sub, transport = subscribe(track)
    for seq in (65534, 65535, 0, 1):
        await feed(track, rtp(seq, seq))
    first_sent = list(transport.sent)
    out_seqs = [RtpPacket.parse(d).sequence_number for d in first_sent]
    await sub.on_nack([out_seqs[1], out_seqs[2]])
    assert transport.sent[4:] == first_sent[1:3]  # byte for byte, across the wrap
    d = stats()
    assert d["nacks_received"] == 1 and d["retransmissions"] == 2


async def test_a_nack_for_packets_not_in_the_history_is_counted_as_a_miss(stats) -> None:
    track, _ = make_track()
    sub, transport = subscribe(track)
    await feed(track, rtp(10, 0))
    sent = RtpPacket.parse(transport.sent[0]).sequence_number
    # never sent, far in the future, and hostile values (a NACK's FCI is 16-bit, but be lenient)
    await sub.on_nack([(sent + 1) & 0xFFFF, (sent + 30000) & 0xFFFF, -5, 1 << 20])
    assert len(transport.sent) == 1
    d = stats()
    assert d["retransmit_misses"] == 4 and "retransmissions" not in d


async def test_a_nack_for_a_packet_overwritten_in_the_history_is_a_miss(stats) -> None:
    track, _ = make_track()
    sub, transport = subscribe(track)
    size = track.history.size
    for seq in range(size + 1):
        await feed(track, rtp(seq, seq))
    oldest = RtpPacket.parse(transport.sent[0]).sequence_number
    newest = RtpPacket.parse(transport.sent[-1]).sequence_number
    await sub.on_nack([oldest, newest])
    assert transport.sent[-1] == transport.sent[-2]  # only the newest was resent
    assert stats()["retransmit_misses"] == 1


async def test_a_nack_before_the_subscriber_started_sends_nothing() -> None:
    """A subscriber still waiting for its keyframe was sent nothing: there is nothing to resend, and a
    retransmission must not slip it a packet the keyframe gate held back."""
    track, _ = make_track("video/VP8", 90000)
    await feed(track, rtp(100, 0, VP8_DELTA))
    sub, transport = subscribe(track)
    await feed(track, rtp(101, 0, VP8_DELTA))
    assert not sub.started
    await sub.on_nack([100, 101])
    assert transport.sent == []


async def test_a_failing_retransmission_does_not_raise() -> None:
    track, _ = make_track()
    sub, transport = subscribe(track)
    await feed(track, rtp(1, 0))
    transport.fail = True
    await sub.on_nack([RtpPacket.parse(transport.sent[0]).sequence_number])
    assert len(transport.sent) == 1


# -------------------------------------------------------------------------------- keyframe requests


async def test_keyframe_requests_are_throttled_unless_forced(stats) -> None:
    track, upstream = make_track("video/VP8", 90000)
    await track.request_keyframe()
    await track.request_keyframe()  # within KEYFRAME_REQUEST_INTERVAL_S: dropped
    assert upstream.keyframe_requests == [PUB_SSRC]
    await track.request_keyframe(force=True)
    assert upstream.keyframe_requests == [PUB_SSRC, PUB_SSRC]
    assert stats()["keyframe_requests_sent"] == 2


async def test_audio_never_asks_for_keyframes() -> None:
    track, upstream = make_track()
    await track.request_keyframe(force=True)
    subscribe(track)
    track._last_keyframe_request = -1e9
    await track.upkeep(0)
    assert upstream.keyframe_requests == []


async def test_upkeep_asks_again_while_a_subscriber_waits_and_renacks_what_is_missing(monkeypatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(forwarder, "time", type("Clock", (), {"monotonic": staticmethod(lambda: now[0])}))
    track, upstream = make_track("video/VP8", 90000)
    sub, _ = subscribe(track)
    await feed(track, rtp(1, 0, VP8_DELTA), arrival_ms=0)
    await feed(track, rtp(3, 0, VP8_DELTA), arrival_ms=0)  # 2 lost
    assert upstream.nacks == [(PUB_SSRC, [2])]

    await track.upkeep(now_ms=500)
    assert upstream.keyframe_requests == [PUB_SSRC]  # never asked yet: asks
    assert upstream.nacks[-1] == (PUB_SSRC, [2])  # the NACK is due again
    now[0] += forwarder.KEYFRAME_RETRY_S / 2
    await track.upkeep(now_ms=550)
    assert upstream.keyframe_requests == [PUB_SSRC]  # too soon to ask again
    assert len(upstream.nacks) == 2  # and too soon to NACK again
    now[0] += forwarder.KEYFRAME_RETRY_S
    await track.upkeep(now_ms=700)
    assert upstream.keyframe_requests == [PUB_SSRC] * 2
    await feed(track, rtp(4, 3000, VP8_KEY))
    assert sub.started
    now[0] += 10 * forwarder.KEYFRAME_RETRY_S
    await track.upkeep(now_ms=800)
    assert upstream.keyframe_requests == [PUB_SSRC] * 2  # nobody waits any more


# ------------------------------------------------------------------------------------ REMB and SRs


def test_remb_sets_the_subscriber_estimate_and_the_target_is_the_lowest_fresh_one() -> None:
    track, _ = make_track("video/VP8", 90000)
    assert track.target_bitrate() == forwarder.DEFAULT_BITRATE
    a, _ = subscribe(track, ssrc=1)
    b, _ = subscribe(track, ssrc=2)
    a.on_remb(pack_remb_fci(900_000, [1]))
    b.on_remb(pack_remb_fci(700_000, [2, 99]))
    assert (a.remb_bps, b.remb_bps) == (900_000, 700_000)
    assert track.target_bitrate() == 700_000
    b.remb_at = time.monotonic() - forwarder.REMB_MAX_AGE_S - 1  # stale: no longer counts
    assert track.target_bitrate() == 900_000


def test_remb_for_another_stream_or_malformed_is_ignored() -> None:
    track, _ = make_track("video/VP8", 90000)
    sub, _ = subscribe(track, ssrc=1)
    sub.on_remb(pack_remb_fci(500_000, [2]))
    sub.on_remb(b"REMB\x01")  # truncated
    sub.on_remb(b"XXXX" + bytes(8))  # not a REMB
    sub.on_remb(b"")
    assert sub.remb_bps == 0


@pytest.mark.parametrize(
    "estimate, target", [(10_000, forwarder.MIN_BITRATE), (10**9, forwarder.MAX_BITRATE)]
)
def test_the_target_bitrate_is_bounded(estimate: int, target: int) -> None:
    track, _ = make_track("video/VP8", 90000)
    sub, _ = subscribe(track, ssrc=1)
    sub.on_remb(pack_remb_fci(estimate, [1]))
    assert track.target_bitrate() == target


def sr(ssrc: int) -> RtcpSrPacket:
    return RtcpSrPacket(ssrc=ssrc, sender_info=RtcpSenderInfo(0, 0, 0, 0))


async def test_sender_reports_are_an_empty_rr_until_the_publisher_mapping_and_the_start() -> None:
    track, _ = make_track()
    sub, _ = subscribe(track, ssrc=0x55)
    sdes = RtcpSdesPacket()
    (rr, same) = sub.sender_reports([sr(0x55), sdes])
    assert isinstance(rr, RtcpRrPacket) and rr.ssrc == 0x55 and rr.reports == []
    assert same is sdes
    track.on_sender_report(ntp_timestamp=1 << 40, rtp_timestamp=1000)
    (rr,) = sub.sender_reports([sr(0x55)])
    assert isinstance(rr, RtcpRrPacket)  # mapping known, but nothing forwarded yet


async def test_sender_reports_carry_real_counts_and_a_mapped_timestamp(stats) -> None:
    track, _ = make_track()
    sub, transport = subscribe(track, ssrc=0x55)
    await feed(track, rtp(1, 5000, bytes(100)))
    await feed(track, rtp(2, 5960, bytes(60)))
    track.on_sender_report(ntp_timestamp=forwarder.clock.current_ntp_time(), rtp_timestamp=5960)
    (report,) = sub.sender_reports([sr(0x55)])
    assert isinstance(report, RtcpSrPacket)
    info = report.sender_info
    assert (info.packet_count, info.octet_count) == (2, 160)
    last_ts = RtpPacket.parse(transport.sent[-1]).timestamp
    # the SR's RTP time is the publisher's, in this subscriber's timestamp space (a few ms later at most)
    assert 0 <= (info.rtp_timestamp - last_ts) & 0xFFFFFFFF < 48000 // 10
    assert stats()["sender_reports_sent"] == 1
