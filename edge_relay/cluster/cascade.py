"""Relay-to-relay links (cascades): this relay joins a meeting on a peer relay, once per meeting and pair.

The relay with the smaller id dials (so a pair never opens two links); the peer accepts it as a
:class:`~edge_relay.rooms.cascade_peer.CascadePeer` and makes the offers. Over the one max-bundle
connection, each of our participants' tracks goes to the peer once (the peer fans it out to its own
subscribers) and each of the peer's tracks comes to us once; keyframe requests and NACKs flow back
upstream like a subscriber's. Media is forwarded as RTP, never decoded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import websockets
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.sdp import SessionDescription

from edge_relay.cluster import link_tls
from edge_relay.cluster.credentials import LinkClaims, issue_link_token
from edge_relay.sfu import bindings, seams
from edge_relay.sfu.demux import Demuxer
from edge_relay.sfu.forwarder import PublishedTrack, Subscription
from meetup_protocol.signalling import (
    MAX_MESSAGE_BYTES,
    LinkState,
    ProtocolError,
    TrackInfo,
    load_json,
)

if TYPE_CHECKING:
    from edge_relay.rooms.room import Room

log = logging.getLogger("edge_relay.cascade")


@dataclass
class _Incoming:
    transceiver: RTCRtpTransceiver
    info: TrackInfo
    track: PublishedTrack | None = None


class CascadeLink:
    """Our side of a link we opened to ``peer_url`` for ``room``'s meeting."""

    is_link = True

    def __init__(
        self,
        room: Room,
        peer_relay_id: str,
        peer_url: str,
        secret: str,
        stun: list[str],
        pin: str | None = None,
    ) -> None:
        self.room = room
        self.relay_id = peer_relay_id
        self.peer_url = peer_url
        self.secret = secret
        self.pin = pin  # the peer's gossiped certificate fingerprint (its own TLS link endpoint)
        self.state = LinkState(relay_id=peer_relay_id)
        ice = [RTCIceServer(urls=url) for url in stun]
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=ice, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.demux: Demuxer[PublishedTrack] = Demuxer()
        self.incoming: dict[str, _Incoming] = {}  # mid -> a track of the peer's participants
        self.outgoing: dict[str, tuple[RTCRtpTransceiver, Subscription | None]] = {}  # our track id ->
        self.connected = False
        self.closed = asyncio.Event()
        self._ws: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._tapped = False
        self.pc.on("connectionstatechange", self._on_connection_state)

    @property
    def tracks(self) -> list[tuple[PublishedTrack, TrackInfo]]:
        return [(slot.track, slot.info) for slot in self.incoming.values() if slot.track is not None]

    async def start(self, max_participants: int, meeting_ends_at: int) -> None:
        claims = LinkClaims(self.room.relay_id, self.room.meeting_id, max_participants, meeting_ends_at)
        tls: dict[str, Any] = {"ssl": link_tls.client_context()} if self.pin else {}
        self._ws = await websockets.connect(
            self.peer_url,
            # Pinned to the gossiped certificate; a public wss:// URL is verified as usual.
            **tls,
            max_size=MAX_MESSAGE_BYTES,
            open_timeout=5,
            # A link across a partition must not hold its room for websockets' 20 + 20 s defaults; the
            # cluster declares the peer dead sooner anyway, and then the link is closed outright.
            ping_interval=2,
            ping_timeout=5,
            close_timeout=1,
        )
        if self.pin:  # before the token leaves: only the relay we mean may see it
            try:
                link_tls.check_pin(self._ws, self.pin)
            except link_tls.PinMismatch:
                await self._ws.close()
                raise
        join = {"type": "cascade_join", "token": issue_link_token(self.secret, claims)}
        await self._ws.send(json.dumps({**join, "state": self.room.local_state().model_dump()}))
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                try:
                    msg = load_json(raw if isinstance(raw, str) else raw.decode())
                except (ProtocolError, UnicodeDecodeError):
                    log.warning("peer relay sent a malformed frame", extra={"peer": self.relay_id})
                    continue
                if not isinstance(msg, dict):
                    continue
                kind = msg.get("type")
                if kind == "offer":
                    await self._answer(msg)
                elif kind == "cascade_update":
                    old, self.state = self.state, LinkState.model_validate(msg["state"])
                    await self.room.on_link_state(self, old, self.state)  # type: ignore[arg-type]
                elif kind == "relayed":
                    await self.room.on_relayed(self, msg["event"])  # type: ignore[arg-type]
                elif kind == "error":
                    log.warning("peer relay refused", extra={"peer": self.relay_id, "code": msg.get("code")})
        except (websockets.ConnectionClosed, OSError):
            pass
        except Exception:
            log.exception("cascade link failed", extra={"peer": self.relay_id})
        finally:
            self.closed.set()
            await self.room.remove_link(self)  # type: ignore[arg-type]

    async def _answer(self, offer: dict[str, Any]) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        if not self._tapped:
            seams.tap_rtp(seams.bundled_transport(self.pc), bindings.rtp_tap(self.demux))
            self._tapped = True
        local = {track.track_id: track for track, _ in self.room.local_tracks()}
        parsed = {m.rtp.muxId: m for m in SessionDescription.parse(offer["sdp"]).media}
        published, unpublished = [], []
        for mid, slot in offer["tracks"].items():
            transceiver = next((t for t in self.pc.getTransceivers() if t.mid == mid), None)
            if transceiver is None:
                continue
            media = parsed.get(mid)
            if "publish_track" in slot:  # one of our tracks, wanted by the peer
                track = local.get(slot["publish_track"])
                if track is not None and slot["publish_track"] not in self.outgoing:
                    transceiver.sender.replaceTrack(seams.SilentTrack(track.kind))
                    transceiver.direction = "sendonly"
                    self.outgoing[track.track_id] = (transceiver, None)
                continue
            current = self.incoming.get(mid)
            if media is not None and media.direction == "inactive":
                if current is not None and current.track is not None:
                    self.demux.remove(current.track)
                    unpublished.append(current.info)
                self.incoming.pop(mid, None)
                continue
            if current is None and media is not None:
                info = TrackInfo(**slot)
                ssrc = media.ssrc[0].ssrc if media.ssrc else None
                track = bindings.published_track(self.pc, transceiver, info.track_id, info.kind, ssrc)
                bindings.watch_mid_extension(self.demux, transceiver)
                self.demux.add(track, mid, ssrc)
                self.incoming[mid] = _Incoming(transceiver, info, track)
                published.append(info)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        for track_id, (transceiver, sub) in list(self.outgoing.items()):
            if track_id not in local:  # our participant stopped publishing it, or left
                del self.outgoing[track_id]
            elif sub is None:
                sub = bindings.subscription(self.pc, transceiver, local[track_id], self.connected)
                self.outgoing[track_id] = (transceiver, sub)
        answer = {"type": "answer", "negotiation": offer["negotiation"], "sdp": self.pc.localDescription.sdp}
        await self._ws.send(json.dumps(answer))
        if published or unpublished:
            await self.room.on_tracks_changed(self, published=published, unpublished=unpublished)  # type: ignore[arg-type]

    def forwarded(self) -> list[Subscription]:
        """Our tracks going over this link (each once, whatever the subscribers behind it)."""
        return [sub for _, sub in self.outgoing.values() if sub is not None]

    async def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected" and not self.connected:
            self.connected = True
            for _, sub in self.outgoing.values():
                if sub is not None:
                    sub.ready = True
                    await sub.track.request_keyframe(force=True)
        elif state in ("failed", "closed"):
            await self.room.remove_link(self)  # type: ignore[arg-type]

    async def negotiate(self) -> None:
        """The peer makes the offers; it learns our new tracks from ``send_state``."""

    async def send_state(self, state: LinkState) -> None:
        """Our participants or tracks changed. A track we forwarded that is gone, or that is another
        object now under the same id (its participant reconnected), stops here: the peer re-offers what
        it still wants, and a new m-line is bound to the current track, never the stale one."""
        local = {track.track_id: track for track, _ in self.room.local_tracks()}
        for track_id, (_, sub) in list(self.outgoing.items()):
            current = local.get(track_id)
            if current is None or (sub is not None and sub.track is not current):
                del self.outgoing[track_id]
                if sub is not None and sub in sub.track.subscriptions:
                    sub.track.subscriptions.remove(sub)
        await self._send({"type": "cascade_update", "state": state.model_dump()})

    async def send_relayed(self, event: dict[str, Any]) -> None:
        await self._send({"type": "relayed", "event": event})

    async def _send(self, body: dict[str, Any]) -> None:
        if self._ws is not None and not self.closed.is_set():
            with contextlib.suppress(websockets.ConnectionClosed):
                await self._ws.send(json.dumps(body))

    async def close(self) -> None:
        self.closed.set()
        for _, sub in self.outgoing.values():
            if sub is not None and sub in sub.track.subscriptions:
                sub.track.subscriptions.remove(sub)
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        await self.pc.close()
