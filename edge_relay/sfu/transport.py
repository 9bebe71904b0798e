"""One peer connection bound to the forwarder: what participants and both ends of a cascade link share.

Like a mediasoup transport, it knows media and nothing of signalling: it makes or applies SDP when told,
turns negotiated m-lines into :class:`PublishedTrack` (media coming in, routed by the connection's
:class:`Demuxer`) and :class:`Subscription` (a track going out), and reports a lost connection. Who
offers, which m-lines exist and what they mean are its owner's business (edge_relay/rooms/).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.sdp import MediaDescription, SessionDescription

from edge_relay.sfu import bindings, bwe, seams, simulcast, twcc
from edge_relay.sfu.bwe import SubscriberBandwidth
from edge_relay.sfu.demux import Demuxer
from edge_relay.sfu.forwarder import PublishedTrack, Subscription

log = logging.getLogger("edge_relay.transport")
Peer = Literal["participant", "link"]
#: Connections whose media came up, by kind of peer and path (``direct``, or ``turn``: the peer's side of
#: the nominated pair is a TURN relay candidate), and negotiated ones that ended without media ever
#: flowing (ICE failed, or the peer gave up first: a firewall, no usable candidate): for /metrics
#: (edge_relay/ops/metrics.py).
CONNECTED: Counter[tuple[str, str]] = Counter()
NEVER_CONNECTED: Counter[str] = Counter()


class PeerTransport:
    """A max-bundle peer connection, its RTP demux and its bindings to the forwarder."""

    def __init__(self, stun_servers: list[str] | None = None, peer: Peer = "participant") -> None:
        ice = [RTCIceServer(urls=url) for url in stun_servers or []]
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=ice, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.demux: Demuxer[PublishedTrack] = Demuxer()
        self.peer = peer
        self.connected = False
        #: How the media comes: ``direct`` or ``turn`` (set once connected).
        self.path: str | None = None
        self.closed = False
        #: Called once the connection failed or closed by itself (not by :meth:`close`).
        self.on_lost: Callable[[], Awaitable[None]] | None = None
        self._subscriptions: list[Subscription] = []
        #: The peer's downlink (transport-cc where its answer kept it, else its REMB), RTT and loss.
        self.bandwidth = SubscriberBandwidth()
        self._twcc_id: int | None = None  # the id our offers give transport-cc (fixed once chosen)
        self._tapped = False
        self._counted = False
        self.pc.on("connectionstatechange", self._on_connection_state)

    # --- negotiation -----------------------------------------------------------------------------------

    async def create_offer(self) -> str | None:
        """An offer of the current m-lines (applied locally), or None while there are none."""
        if not self.pc.getTransceivers():
            return None
        await self.pc.setLocalDescription(await self.pc.createOffer())
        sdp = str(self.pc.localDescription.sdp)
        if self._twcc_id is None:
            self._twcc_id = twcc.free_extension_id(sdp)
        return sdp if self._twcc_id is None else twcc.offer_transport_cc(sdp, self._twcc_id)

    async def apply_answer(self, sdp: str) -> SessionDescription:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        self._tap()
        ext_id = twcc.answered_transport_cc(sdp)
        if (
            ext_id is not None and ext_id == self._twcc_id and self.bandwidth.ext_id is None
        ):  # the id we offered
            self.bandwidth.enable(ext_id)
            for sub in self._subscriptions:
                sub.stamp = self.bandwidth.stamp
        return SessionDescription.parse(sdp)

    async def apply_offer(self, sdp: str) -> SessionDescription:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        self._tap()
        return SessionDescription.parse(sdp)

    async def create_answer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)

    def transceiver(self, mid: str) -> RTCRtpTransceiver | None:
        return next((t for t in self.pc.getTransceivers() if t.mid == mid), None)

    def _tap(self) -> None:
        """Take the connection's decrypted RTP before aiortc's router (once its transport exists)."""
        if not self._tapped:
            seams.tap_rtp(seams.bundled_transport(self.pc), bindings.rtp_tap(self.demux))
            seams.tap_rtcp(seams.bundled_transport(self.pc), self.bandwidth.on_rtcp)
            self._tapped = True

    # --- media coming in -------------------------------------------------------------------------------

    def add_ingress(self, kind: str, codecs: list[Any]) -> RTCRtpTransceiver:
        """A ``recvonly`` m-line offering exactly ``codecs``."""
        transceiver = self.pc.addTransceiver(kind, direction="recvonly")
        transceiver.setCodecPreferences(codecs)
        return transceiver

    def receive(
        self, transceiver: RTCRtpTransceiver, track_id: str, kind: str, media: MediaDescription
    ) -> PublishedTrack:
        """The track the peer sends on a negotiated m-line (``media``: its side's description of it),
        routed here by its SSRC (when announced) or its MID."""
        ssrc = media.ssrc[0].ssrc if media.ssrc else None
        track = bindings.published_track(self.pc, transceiver, track_id, kind, ssrc)
        bindings.watch_mid_extension(self.demux, transceiver)
        self.demux.add(track, str(transceiver.mid), ssrc)
        return track

    def receive_layers(self, transceiver: RTCRtpTransceiver, track: PublishedTrack, answer: str) -> bool:
        """Receive ``track`` as simulcast layers if the peer's answer sends them on its m-line (VP8 only:
        the relay munges VP8 descriptors at layer switches); False if it sends one stream."""
        rids, rid_extension_id = simulcast.answered_simulcast(answer, str(transceiver.mid))
        if not rids or rid_extension_id is None or track.mime_type.lower() != "video/vp8":
            return False
        source = simulcast.SimulcastSource(rids, rid_extension_id, track.clock_rate)
        bindings.receive_simulcast(self.pc, transceiver, track, source)
        log.info("simulcast", extra={"track": track.track_id, "rids": rids})
        return True

    def stop_receiving(self, track: PublishedTrack) -> None:
        self.demux.remove(track)

    # --- media going out -------------------------------------------------------------------------------

    def add_egress(self, track: PublishedTrack) -> RTCRtpTransceiver:
        """A ``sendonly`` m-line for ``track``, offering exactly its codec (never transcoded)."""
        transceiver = self.pc.addTransceiver(seams.SilentTrack(track.kind), direction="sendonly")
        transceiver.setCodecPreferences(
            bindings.capabilities(track.kind, track.mime_type, track.codec_parameters)
        )
        return transceiver

    def accept_egress(self, transceiver: RTCRtpTransceiver, track: PublishedTrack) -> None:
        """Send ``track`` on an m-line the peer offered to receive it on (answering side)."""
        transceiver.sender.replaceTrack(seams.SilentTrack(track.kind))
        transceiver.direction = "sendonly"

    def send(self, transceiver: RTCRtpTransceiver, track: PublishedTrack) -> Subscription | None:
        """Forward ``track`` on a negotiated m-line; None when the peer refused its codec."""
        sub = bindings.subscription(self.pc, transceiver, track, self.connected)
        if sub is not None:
            self._subscriptions.append(sub)
            if self.bandwidth.ext_id is not None:
                sub.stamp = self.bandwidth.stamp
        return sub

    def stop_sending(self, sub: Subscription | None) -> None:
        if sub is None:
            return
        if sub in sub.track.subscriptions:
            sub.track.subscriptions.remove(sub)
        if sub in self._subscriptions:
            self._subscriptions.remove(sub)

    # --- the connection --------------------------------------------------------------------------------

    async def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected" and not self.connected:
            self.connected = True
            self.path = "turn" if seams.remote_candidate_type(self.pc) == "relay" else "direct"
            CONNECTED[self.peer, self.path] += 1
            for sub in list(self._subscriptions):  # media may flow now: start each with a keyframe
                sub.ready = True
                await sub.track.request_keyframe(force=True)
        elif state in ("failed", "closed") and not self.closed:
            self._count_if_never_connected(state)
            if self.on_lost is not None:
                await self.on_lost()

    def _count_if_never_connected(self, how: str) -> None:
        if self._tapped and not self.connected and not self._counted:  # negotiated, never connected
            self._counted = True
            NEVER_CONNECTED[self.peer] += 1
            log.warning("media never connected", extra={"peer": self.peer, "ended": how})

    async def close(self) -> None:
        self._count_if_never_connected("closed")
        self.closed = True
        bwe.LIVE.discard(self.bandwidth)  # out of /metrics now, not when it is collected
        for sub in list(self._subscriptions):
            self.stop_sending(sub)
        await self.pc.close()
