"""edge_relay.sfu.simulcast: simulcast asked for in aiortc's offer, read from the answer, layers told apart.

The offer is a real aiortc offer (the relay's own kind: a recvonly VP8 m-line per publish source); the
answer is shaped like Chromium 156's (the lines MACHINE.md records). Hostile answers (a rid never
declared, a broken extmap, garbage) read as "no simulcast": the track is then one stream, as before.
"""

from __future__ import annotations

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from edge_relay.sfu.bindings import capabilities
from edge_relay.sfu.rtp import parse_header
from edge_relay.sfu.simulcast import (
    EXT_RID,
    RID_EXTENSION_ID,
    SimulcastSource,
    answered_simulcast,
    offer_simulcast,
)

CHROMIUM_ANSWER = """v=0\r
o=- 1 2 IN IP4 127.0.0.1\r
s=-\r
t=0 0\r
a=group:BUNDLE 0 1\r
m=audio 9 UDP/TLS/RTP/SAVPF 111\r
a=mid:0\r
a=sendonly\r
m=video 9 UDP/TLS/RTP/SAVPF 96\r
a=mid:1\r
a=sendonly\r
a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r
a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r
a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id\r
a=rtpmap:96 VP8/90000\r
a=rid:h send\r
a=rid:m send\r
a=rid:l send\r
a=simulcast:send h;m;l\r
"""


async def test_the_offer_asks_for_simulcast_on_the_chosen_m_line_only() -> None:
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("audio", direction="recvonly")
        video = pc.addTransceiver("video", direction="recvonly")
        video.setCodecPreferences(capabilities("video", "video/VP8"))
        await pc.setLocalDescription(await pc.createOffer())
        sdp = offer_simulcast(pc.localDescription.sdp, {str(video.mid)})
        audio_part, video_part = sdp.split("m=video")
        assert "a=rid" not in audio_part and "simulcast" not in audio_part
        for line in (
            f"a=extmap:{RID_EXTENSION_ID} {EXT_RID}",
            "a=rid:h recv",
            "a=rid:m recv",
            "a=rid:l recv",
            "a=simulcast:recv h;m;l",
        ):
            assert line in video_part.splitlines(), line
        # still an offer aiortc itself can read back, the same m-lines
        other = RTCPeerConnection()
        await other.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        assert [t.kind for t in other.getTransceivers()] == ["audio", "video"]
        await other.close()
    finally:
        await pc.close()


def test_the_answer_says_which_layers_come() -> None:
    assert answered_simulcast(CHROMIUM_ANSWER, "1") == (["h", "m", "l"], 10)
    assert answered_simulcast(CHROMIUM_ANSWER, "0") == ([], None)  # no simulcast on the audio
    assert answered_simulcast(CHROMIUM_ANSWER, "7") == ([], None)  # no such m-line


def test_hostile_answers_read_as_one_stream_or_as_what_was_declared() -> None:
    undeclared = CHROMIUM_ANSWER.replace("a=simulcast:send h;m;l", "a=simulcast:send h;m;l;x")
    assert answered_simulcast(undeclared, "1") == (["h", "m", "l"], 10)  # x was never declared
    paused = CHROMIUM_ANSWER.replace("a=simulcast:send h;m;l", "a=simulcast:send h,~m;l")
    assert answered_simulcast(paused, "1") == (["h", "m", "l"], 10)
    cases = {
        "a=extmap:x ": CHROMIUM_ANSWER.replace("a=extmap:10 ", "a=extmap:x "),
        "a=extmap:300 ": CHROMIUM_ANSWER.replace("a=extmap:10 ", "a=extmap:300 "),
        "recv rids": CHROMIUM_ANSWER.replace("a=rid:m send\r\na=rid:l send", "a=rid:m recv\r\na=rid:l"),
        "simulcast recv": CHROMIUM_ANSWER.replace("a=simulcast:send h;m;l", "a=simulcast:recv h;m;l"),
        "empty simulcast": CHROMIUM_ANSWER.replace("a=simulcast:send h;m;l", "a=simulcast:"),
        "long rid": CHROMIUM_ANSWER.replace("a=rid:h send\r\na=rid:m send", "a=rid:" + "h" * 300 + " send"),
        "garbage": "garbage",
        "empty": "",
    }
    for name, broken in cases.items():
        assert answered_simulcast(broken, "1") == ([], None), name


def packet(ssrc: int, rid: bytes | None, seq: int = 1) -> bytes:
    extensions = HeaderExtensionsMap()
    params = RTCRtpParameters(
        headerExtensions=[RTCRtpHeaderExtensionParameters(id=RID_EXTENSION_ID, uri=EXT_RID)]
    )
    extensions.configure(params)
    p = RtpPacket(payload_type=96, sequence_number=seq, timestamp=0, ssrc=ssrc, payload=b"\x10\x00")
    if rid is not None:
        p.extensions.rtp_stream_id = rid.decode()
    return p.serialize(extensions)


def test_layers_are_told_by_rid_then_by_ssrc() -> None:
    source = SimulcastSource(["h", "m", "l"], RID_EXTENSION_ID, 90000)
    learnt: list[int] = []
    source.on_ssrc = learnt.append
    data = packet(111, b"m")
    assert source.layer_of(data, parse_header(data)) is source.layers["m"]
    later = packet(111, None, 2)  # the rid is no longer sent: the SSRC says it
    assert source.layer_of(later, parse_header(later)) is source.layers["m"]
    assert source.layers["m"].ssrc == 111 and learnt == [111]
    not_text = packet(444, b"zz").replace(b"zz", b"\xff\xfe")
    for bad in (packet(222, b"x"), packet(333, None), not_text):
        assert source.layer_of(bad, parse_header(bad)) is None
    assert source.unknown_rid == 3
    moved = packet(555, b"m")  # the encoder restarted on a new SSRC
    assert source.layer_of(moved, parse_header(moved)) is source.layers["m"]
    assert source.by_ssrc(111) is None and source.by_ssrc(555) is source.layers["m"]
