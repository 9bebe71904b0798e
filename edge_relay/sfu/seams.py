"""Every use of aiortc's private internals, in one place. aiortc is pinned (``aiortc==1.16.0``).

The relay forwards RTP without decoding, which aiortc's public API cannot do. These seams, checked on
1.16.0 (see tests/edge_relay/test_seams.py, which pins each one so an upgrade fails loudly):

* ``RTCDtlsTransport._handle_rtp_data(data, arrival_time_ms)``: decrypted RTP, before aiortc parses and
  routes it. Replacing it per transport taps every m-line of a BUNDLEd connection, and nothing reaches a
  receiver, so no jitter buffer or decoder ever runs.
* ``RTCDtlsTransport._handle_rtcp_data(data)``: decrypted compound RTCP, before aiortc parses it (which
  misreads transport-cc feedback, RTPFB FMT 15, as a NACK) and routes it by SSRC.
* ``RTCDtlsTransport._send_rtp(data)``: protects RTP or RTCP with the connection's SRTP session and sends
  it; accepts any SSRC and repeated sequence numbers (forwarded packets, retransmissions, our RTCP).
* ``RTCRtpSender._handle_rtcp_packet(packet)``: a subscriber's PLI/FIR/NACK/RR, routed by media SSRC.
* ``RTCRtpSender._send_rtcp(packets)``: the sender's periodic SR (all zero for a track that never yields:
  rewritten from the publisher's SR), SDES and BYE.
* ``RTCRtpReceiver._handle_rtcp_packet(packet)``: a publisher's SR (its NTP <-> RTP mapping).
* ``RTCRtpReceiver._send_rtcp_pli(media_ssrc)``: a keyframe request upstream.
* ``RTCDtlsTransport._rtp_router.ssrc_table``: which receiver gets the RTCP SRs of an SSRC (a simulcast
  layer's SSRC is learnt from its packets, not from the SDP).
* ``RTCRtpSender._ssrc``, ``RTCRtpTransceiver._codecs`` / ``._headerExtensions``: what was negotiated.
* ``aioice.ice.Connection._nominated``: the candidate pair ICE chose (whether the peer came through TURN).
* ``aioice.ice.get_host_addresses``: which local addresses ICE offers (loopback for the local stack).
* ``aioice.ice.server_reflexive_candidate(protocol, stun_server)``: the srflx candidate; replaced by one
  made from the public address the relay learnt once (no STUN query per connection).
* ``aioice.ice.StunProtocol.datagram_received(data, addr)``: every datagram at an ICE socket; aioice
  hands whatever is not STUN to DTLS, from any address. ``.receiver._check_list`` (pairs with
  ``.protocol``, ``.remote_addr``): the peer addresses a socket has candidate pairs with.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aioice.candidate
import aioice.ice
import aiortc
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

PINNED_AIORTC = "1.16.0"
RtpHandler = Callable[[bytes, int], Awaitable[None]]
RtcpHandler = Callable[[Any], Awaitable[None]]


def check_aiortc_version() -> None:
    if aiortc.__version__ != PINNED_AIORTC:
        raise RuntimeError(
            f"edge_relay relies on aiortc {PINNED_AIORTC} internals; found {aiortc.__version__}"
        )


def use_ice_host_addresses(addresses: Iterable[str]) -> None:
    """Gather ICE host candidates on exactly these addresses (aioice skips 127.0.0.1 by default)."""
    fixed = list(addresses)
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: list(fixed)  # type: ignore[assignment]


_QUERY_STUN = aioice.ice.server_reflexive_candidate


def announce_public_address(address: str | None) -> None:
    """Offer ``address`` as every IPv4 host candidate's server-reflexive twin, same port (a 1:1 NAT such
    as a Fargate task's public IP, which keeps ports), instead of asking a STUN server per connection.
    aioice still calls this only when a STUN server is configured. ``None``: ask STUN again."""
    if address is None:
        aioice.ice.server_reflexive_candidate = _QUERY_STUN  # type: ignore[assignment]
        return

    async def known(protocol: Any, stun_server: tuple[str, int]) -> tuple[aioice.candidate.Candidate, None]:
        local = protocol.local_candidate
        return aioice.candidate.Candidate(
            foundation=aioice.candidate.candidate_foundation("srflx", "udp", local.host),
            component=local.component,
            transport=local.transport,
            priority=aioice.candidate.candidate_priority(local.component, "srflx"),
            host=address,
            port=local.port,
            type="srflx",
            related_address=local.host,
            related_port=local.port,
        ), None

    aioice.ice.server_reflexive_candidate = known  # type: ignore[assignment]


def bundled_transport(pc: RTCPeerConnection) -> RTCDtlsTransport:
    """The one DTLS transport of a max-bundle connection (exists once a description is set)."""
    return pc.getTransceivers()[0].receiver.transport


def tap_rtp(transport: RTCDtlsTransport, handler: RtpHandler) -> None:
    """Route every decrypted RTP packet arriving on ``transport`` to ``handler(data, arrival_time_ms)``."""

    async def handle(data: bytes, arrival_time_ms: int) -> None:  # aiortc passes arrival_time_ms by name
        await handler(data, arrival_time_ms)

    transport._handle_rtp_data = handle  # type: ignore[method-assign]


def tap_rtcp(transport: RTCDtlsTransport, handler: Callable[[bytes], bytes]) -> None:
    """Pass every decrypted compound RTCP packet arriving on ``transport`` through ``handler`` first;
    aiortc handles what it returns (nothing when it returns b"")."""
    original = transport._handle_rtcp_data

    async def handle(data: bytes) -> None:
        rest = handler(data)
        if rest:
            await original(rest)

    transport._handle_rtcp_data = handle  # type: ignore[method-assign]


def remote_candidate_type(pc: RTCPeerConnection) -> str | None:
    """The type of the peer's candidate in the pair ICE nominated (``host``, ``srflx``, ``prflx``, or
    ``relay`` when the peer comes through a TURN server); None before ICE has nominated one."""
    connection = bundled_transport(pc).transport._connection
    pair = connection._nominated.get(1)
    return None if pair is None else str(pair.remote_candidate.type)


def send_rtp(transport: RTCDtlsTransport, data: bytes) -> Awaitable[None]:
    """Protect and send one RTP or RTCP packet. Raises ConnectionError until DTLS is up."""
    return transport._send_rtp(data)


def on_sender_rtcp(sender: RTCRtpSender, handler: RtcpHandler) -> RtcpHandler:
    """Receive the subscriber's feedback for this sender; returns aiortc's own handler (RR stats)."""
    original = sender._handle_rtcp_packet
    sender._handle_rtcp_packet = handler  # type: ignore[method-assign,assignment]
    return original


def rewrite_sender_reports(sender: RTCRtpSender, rewrite: Callable[[list[Any]], list[Any]]) -> None:
    """Pass the sender's periodic RTCP (SR, SDES, BYE) through ``rewrite`` before it is sent."""
    original = RTCRtpSender._send_rtcp.__get__(sender)

    async def send(packets: list[Any]) -> None:
        await original(rewrite(packets))

    sender._send_rtcp = send  # type: ignore[method-assign]


def on_receiver_rtcp(receiver: RTCRtpReceiver, handler: RtcpHandler) -> None:
    """See the publisher's RTCP for this receiver (its SRs) before aiortc handles it."""
    original = receiver._handle_rtcp_packet

    async def handle(packet: Any) -> None:
        await handler(packet)
        await original(packet)

    receiver._handle_rtcp_packet = handle  # type: ignore[method-assign]


def route_sender_reports(pc: RTCPeerConnection, ssrc: int, receiver: RTCRtpReceiver) -> None:
    """Hand the publisher's RTCP SRs for ``ssrc`` to ``receiver`` (aiortc's RTCP router finds receivers
    by the SSRCs of the remote SDP; a simulcast layer's SSRC is in no SDP)."""
    bundled_transport(pc)._rtp_router.ssrc_table[ssrc] = receiver


async def request_keyframe(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """Send a PLI for ``media_ssrc`` to the publisher (dropped silently before DTLS is up)."""
    await receiver._send_rtcp_pli(media_ssrc)


def sender_ssrc(sender: RTCRtpSender) -> int:
    """The SSRC this sender announced in its ``a=ssrc`` line."""
    return int(sender._ssrc)


def negotiated_codecs(transceiver: RTCRtpTransceiver) -> list[RTCRtpCodecParameters]:
    return list(transceiver._codecs)


def negotiated_extensions(transceiver: RTCRtpTransceiver) -> dict[str, int]:
    """Header extension URI -> id, as negotiated on this m-line."""
    return {ext.uri: ext.id for ext in transceiver._headerExtensions}


class SilentTrack(MediaStreamTrack):
    """A track that never yields a frame.

    Put on the relay's per-subscriber senders: the m-line is ``sendonly`` with a real ``a=ssrc``, and
    aiortc's send loop parks in ``recv()`` forever, so it never creates an encoder (the relay sends the
    forwarded packets itself).
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    async def recv(self) -> Any:
        await asyncio.get_running_loop().create_future()  # never resolves


class CodecCensus:
    """Counts the decoders and encoders aiortc creates in this process: a forwarding relay creates none."""

    def __init__(self) -> None:
        self.decoders = 0
        self.encoders = 0

    def install(self) -> None:
        import aiortc.rtcrtpreceiver as receiver_module
        import aiortc.rtcrtpsender as sender_module

        get_decoder, get_encoder = receiver_module.get_decoder, sender_module.get_encoder

        def counting_decoder(codec: RTCRtpCodecParameters) -> Any:
            self.decoders += 1
            return get_decoder(codec)

        def counting_encoder(codec: RTCRtpCodecParameters) -> Any:
            self.encoders += 1
            return get_encoder(codec)

        receiver_module.get_decoder = counting_decoder  # type: ignore[assignment]
        sender_module.get_encoder = counting_encoder  # type: ignore[assignment]


DatagramFilter = Callable[[Any, bytes, tuple[Any, ...]], bool]


def filter_ice_datagrams(accept: DatagramFilter) -> Callable[[], None]:
    """Pass every datagram that reaches one of this process's ICE sockets through ``accept(protocol,
    data, addr)`` first; it is dropped where that says False. Process-wide, installed once at start;
    returns what undoes it (for tests that share a process with other ICE users)."""
    original = aioice.ice.StunProtocol.datagram_received

    def undo() -> None:
        aioice.ice.StunProtocol.datagram_received = original  # type: ignore[method-assign]

    def datagram_received(self: aioice.ice.StunProtocol, data: bytes | str, addr: tuple[Any, ...]) -> None:
        if accept(self, data, addr):  # type: ignore[arg-type]
            original(self, data, addr)

    aioice.ice.StunProtocol.datagram_received = datagram_received  # type: ignore[method-assign]
    return undo


def ice_peer_addresses(protocol: Any) -> set[tuple[str, int]]:
    """The remote addresses ``protocol`` (an ICE socket) has candidate pairs with."""
    pairs = protocol.receiver._check_list
    return {(str(p.remote_addr[0]), int(p.remote_addr[1])) for p in pairs if p.protocol is protocol}
