"""Pins every aiortc/aioice internal the relay depends on (edge_relay/sfu/seams.py).

aiortc is pinned exactly; these tests make an upgrade fail here, loudly and by name, rather than as
frozen video somewhere else.
"""

from __future__ import annotations

import inspect

import aioice.ice
import aiortc
import aiortc.rtcicetransport
import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import pytest
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.rtcdtlstransport import RTCDtlsTransport

from edge_relay.sfu import seams


def params(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_pinned_version() -> None:
    assert aiortc.__version__ == seams.PINNED_AIORTC
    seams.check_aiortc_version()


def test_dtls_transport_seams() -> None:
    assert params(RTCDtlsTransport._handle_rtp_data) == ["self", "data", "arrival_time_ms"]
    # The tap must accept the keyword: aiortc passes it by name.
    assert "self._handle_rtp_data(data, arrival_time_ms=arrival_time_ms)" in inspect.getsource(
        RTCDtlsTransport._recv_next
    )
    assert params(RTCDtlsTransport._send_rtp) == ["self", "data"]
    assert inspect.iscoroutinefunction(RTCDtlsTransport._send_rtp)
    # seams.tap_rtcp: decrypted compound RTCP goes through this method, looked up on the instance.
    assert params(RTCDtlsTransport._handle_rtcp_data) == ["self", "data"]
    assert "await self._handle_rtcp_data(data)" in inspect.getsource(RTCDtlsTransport._recv_next)


def test_the_nominated_pair_is_where_the_relay_reads_the_media_path() -> None:
    # seams.remote_candidate_type: RTCIceTransport._connection (aioice) -> _nominated[1].remote_candidate
    assert "self._connection = " in inspect.getsource(aiortc.rtcicetransport.RTCIceGatherer.__init__)
    assert "self._connection = gatherer._connection" in inspect.getsource(
        aiortc.rtcicetransport.RTCIceTransport.__init__
    )
    assert "self._nominated: dict[int, CandidatePair] = {}" in inspect.getsource(
        aioice.ice.Connection.__init__
    )
    assert "self.remote_candidate = remote_candidate" in inspect.getsource(aioice.ice.CandidatePair.__init__)


def test_sender_and_receiver_seams() -> None:
    assert params(RTCRtpSender._handle_rtcp_packet) == ["self", "packet"]
    assert params(RTCRtpSender._send_rtcp) == ["self", "packets"]
    assert params(RTCRtpReceiver._handle_rtcp_packet) == ["self", "packet"]
    assert params(RTCRtpReceiver._send_rtcp_pli) == ["self", "media_ssrc"]
    # RTCP reaches these through ``self.``/``recipient.``, so per-instance overrides are honoured.
    assert "await recipient._handle_rtcp_packet(packet)" in inspect.getsource(
        RTCDtlsTransport._handle_rtcp_data
    )
    assert "self._send_rtcp(" in inspect.getsource(RTCRtpSender._run_rtcp)


async def test_negotiated_state_is_where_the_relay_reads_it() -> None:
    pc = RTCPeerConnection()
    try:
        transceiver = pc.addTransceiver(seams.SilentTrack("video"), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        assert isinstance(transceiver.sender._ssrc, int)
        assert f"a=ssrc:{seams.sender_ssrc(transceiver.sender)} " in pc.localDescription.sdp
        assert {c.mimeType for c in seams.negotiated_codecs(transceiver)} >= {"video/VP8", "video/H264"}
        assert "urn:ietf:params:rtp-hdrext:sdes:mid" in seams.negotiated_extensions(transceiver)
        assert seams.bundled_transport(pc) is transceiver.sender.transport
    finally:
        await pc.close()


async def test_a_simulcast_layers_sender_reports_reach_the_receiver() -> None:
    """seams.route_sender_reports: aiortc's RTCP router hands an SR to the receiver of its SSRC."""
    from aiortc.rtp import RtcpSenderInfo, RtcpSrPacket

    pc = RTCPeerConnection()
    try:
        transceiver = pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        seams.route_sender_reports(pc, 0xC0FFEE, transceiver.receiver)
        info = RtcpSenderInfo(ntp_timestamp=1, rtp_timestamp=2, packet_count=3, octet_count=4)
        router = seams.bundled_transport(pc)._rtp_router
        assert router.route_rtcp(RtcpSrPacket(ssrc=0xC0FFEE, sender_info=info)) == {transceiver.receiver}
    finally:
        await pc.close()


def test_codec_factories_are_module_level_names() -> None:
    """CodecCensus counts decoders/encoders by wrapping these names."""
    assert callable(aiortc.rtcrtpreceiver.get_decoder)
    assert callable(aiortc.rtcrtpsender.get_encoder)
    assert "get_decoder(codec)" in inspect.getsource(aiortc.rtcrtpreceiver.decoder_worker)


def test_ice_host_addresses_can_be_chosen() -> None:
    assert params(aioice.ice.get_host_addresses) == ["use_ipv4", "use_ipv6"]
    original = aioice.ice.get_host_addresses
    try:
        seams.use_ice_host_addresses(["127.0.0.1"])
        assert aioice.ice.get_host_addresses(True, False) == ["127.0.0.1"]
    finally:
        aioice.ice.get_host_addresses = original


def test_a_wrong_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiortc, "__version__", "9.9.9")
    with pytest.raises(RuntimeError, match=r"1\.16\.0"):
        seams.check_aiortc_version()


def test_ice_datagrams_pass_through_stun_protocol_and_pairs_name_their_socket() -> None:
    assert params(aioice.ice.StunProtocol.datagram_received) == ["self", "data", "addr"]
    assert {"protocol", "remote_candidate"} <= set(params(aioice.ice.CandidatePair.__init__))
    assert isinstance(inspect.getattr_static(aioice.ice.CandidatePair, "remote_addr"), property)
    assert "_check_list" in inspect.getsource(aioice.ice.Connection.__init__)
    undo = seams.filter_ice_datagrams(lambda protocol, data, addr: False)
    try:
        assert aioice.ice.StunProtocol.datagram_received.__name__ == "datagram_received"
        assert aioice.ice.StunProtocol.datagram_received.__module__ == seams.__name__
    finally:
        undo()
    assert aioice.ice.StunProtocol.datagram_received.__module__ == "aioice.ice"
