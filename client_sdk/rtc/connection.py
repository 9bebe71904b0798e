"""A participant's connection to a relay: signalling WebSocket plus one max-bundle peer connection.

The relay makes every offer. For an m-line the offer marks ``{"publish": source}``, this side attaches the
matching local track and sends; every other m-line brings a remote track, announced with its
participant and source. Events (participants, tracks, chat, reactions, the end) arrive on ``events``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import websockets
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamTrack

from client_sdk.errors import MeetupError
from client_sdk.rtc import seams
from client_sdk.rtc.paths import PathPlan
from client_sdk.rtc.watchdog import wait_for_silence
from meetup_protocol import signalling as p
from meetup_protocol.signalling import MAX_MESSAGE_BYTES, ProtocolError, TrackInfo

log = logging.getLogger("client_sdk.rtc")


class RelayError(MeetupError):
    """The relay refused something (``code`` says what: token_expired, meeting_full, ...)."""


@dataclass
class RemoteTrack:
    info: TrackInfo
    track: MediaStreamTrack


@dataclass
class Event:
    type: str
    data: dict[str, Any]
    track: RemoteTrack | None = None


def _is_loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


class RelayConnection:
    def __init__(
        self,
        url: str,
        token: str,
        publish: dict[str, MediaStreamTrack] | None = None,
        video_codec: str = "video/VP8",
        media_relay: MediaRelay | None = None,
        path: PathPlan | None = None,
    ) -> None:
        self.url = url
        #: How media goes (client_sdk/rtc/paths.py): direct, or through one TURN server.
        self.path = path or PathPlan("direct")
        self.token = token
        self.local_tracks: dict[str, MediaStreamTrack] = dict(publish or {})
        self.video_codec = video_codec
        self.participant_id = ""
        self.hand_raised_at: float | None = None  # our own hand (the relay's clock), None while down
        self.meeting_id = ""
        self.participants: dict[str, dict[str, Any]] = {}
        self.remote_tracks: dict[str, RemoteTrack] = {}  # track_id -> track
        self.publishing: dict[str, Any] = {}  # source -> the transceiver sending it
        # Shared across reconnections (Meeting passes its own): one reader per local track, ever.
        self._media = media_relay or MediaRelay()
        self._feeds: list[MediaStreamTrack] = []
        self.muted: set[str] = set()
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.closed = asyncio.Event()
        self.close_reason = ""
        self.pc = RTCPeerConnection(
            RTCConfiguration(
                iceServers=list(self.path.ice_servers),
                bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
                iceTransportPolicy=(
                    RTCIceTransportPolicy.RELAY if self.path.relay_only else RTCIceTransportPolicy.ALL
                ),
            )
        )
        self._ws: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._welcome: asyncio.Future[p.Welcome] = asyncio.get_running_loop().create_future()
        self._mid_info: dict[str, TrackInfo] = {}
        self._pending: list[MediaStreamTrack] = []  # announced by aiortc, not yet matched to an m-line
        self.connected_at: float | None = None  # monotonic time the media connection came up
        #: Whether the relay will offer media at once (we publish, or someone else does): then joining
        #: waits for the media connection too (:meth:`wait_media`).
        self.expects_media = False
        self._media_state: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.answered = asyncio.Event()  # the first answer went out: ICE runs from here
        #: Watches a connected path for silence (client_sdk/rtc/watchdog.py); when it fails, a
        #: ``media_lost`` event (``{"path", "reason"}``) goes on ``events``, the signalling stays up.
        self._watchdog: asyncio.Task[None] | None = None
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_connection_state)

    async def connect(self, timeout_s: float = 10.0) -> None:
        if _is_loopback(self.url):
            seams.gather_on_loopback_only()
        try:
            self._ws = await websockets.connect(
                self.url,
                max_size=MAX_MESSAGE_BYTES,
                open_timeout=timeout_s,
                # A relay cut off by the network (no FIN ever arrives) is given up within 15 s, not
                # websockets' default 40; the meeting then reconnects to the next relay.
                ping_interval=5,
                ping_timeout=10,
                close_timeout=2,
            )
        except (OSError, websockets.InvalidHandshake, TimeoutError) as exc:
            raise RelayError(
                f"cannot reach the relay at {self.url}: {exc!r}", code="relay_unreachable"
            ) from exc
        self._reader = asyncio.ensure_future(self._read())
        await self._send(
            p.Join(
                type="join",
                token=self.token,
                publish=sorted(self.local_tracks),  # type: ignore[arg-type]
                video_codec=self.video_codec,  # type: ignore[arg-type]
            )
        )
        welcome = await asyncio.wait_for(asyncio.shield(self._welcome), timeout_s)
        self.participant_id = welcome.participant_id
        self.meeting_id = welcome.meeting_id
        for participant in welcome.participants:
            self.participants[participant.participant_id] = participant.model_dump()
        self.expects_media = bool(self.local_tracks) or any(p.tracks for p in welcome.participants)

    @property
    def media_path(self) -> str | None:
        """The path media flows through ("direct", "turn/udp", "turn/tcp", "turn/tls") once connected."""
        return self.path.path if self.connected_at is not None else None

    async def wait_media(self, timeout_s: float) -> None:
        """Until the media connection is up; RelayError ``media_failed`` (ICE failed, the relay closed)
        or ``media_timeout`` (nothing within ``timeout_s``: e.g. UDP dropped on the way)."""
        closed = asyncio.ensure_future(self.closed.wait())
        try:
            done, _ = await asyncio.wait(
                {self._media_state, closed}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            closed.cancel()
        if self._media_state in done and self._media_state.result() == "connected":
            return
        where = f"{self.path.path} to {self.url}"
        if not done:
            raise RelayError(f"no media connection {where} within {timeout_s:g} s", code="media_timeout")
        why = self._media_state.result() if self._media_state.done() else self.close_reason or "closed"
        raise RelayError(f"media connection {where} failed ({why})", code="media_failed")

    async def _send(self, msg: p.Message) -> None:
        await self._ws.send(msg.model_dump_json())

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                try:
                    text = raw if isinstance(raw, str) else raw.decode()
                    msg = p.parse_relay_message(text)
                except ProtocolError as exc:  # a newer relay's message, or a broken one: dropped
                    log.warning("relay message dropped", extra={"code": exc.code, "error": exc.message})
                    continue
                except UnicodeDecodeError:
                    log.warning("relay message dropped", extra={"code": "malformed_json"})
                    continue
                await self._dispatch(msg, json.loads(text))
        except websockets.ConnectionClosed:
            pass
        finally:
            if not self._welcome.done():
                self._welcome.set_exception(
                    RelayError("the relay closed the connection", code=self.close_reason or "closed")
                )
            self.closed.set()
            await self.events.put(Event("closed", {"reason": self.close_reason}))

    async def _dispatch(self, msg: p.RelayMessage, data: dict[str, Any]) -> None:
        """Act on a parsed message; ``data`` (the message as sent) goes on to the events."""
        match msg:
            case p.Welcome():
                if not self._welcome.done():
                    self._welcome.set_result(msg)
                return
            case p.Offer():
                await self._answer(msg)
                return
            case p.Error(code=code, message=text):
                self.close_reason = code
                if not self._welcome.done():
                    self._welcome.set_exception(RelayError(text, code=code))
            case p.MeetingEnded(reason=reason) | p.Migrate(reason=reason) | p.Removed(reason=reason):
                self.close_reason = reason
            case p.ParticipantJoined(participant=participant):
                self.participants[participant.participant_id] = participant.model_dump()
            case p.ParticipantLeft(participant_id=participant_id):
                self.participants.pop(participant_id, None)
            case p.TrackUnpublished(track_id=track_id):
                self.remote_tracks.pop(track_id, None)
            case p.HandChanged(participant_id=participant_id, raised_at=raised_at):
                if participant_id == self.participant_id:
                    self.hand_raised_at = raised_at
                elif participant_id in self.participants:
                    self.participants[participant_id]["hand_raised_at"] = raised_at
        await self.events.put(Event(str(data["type"]), data))

    async def _answer(self, offer: p.Offer) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type="offer"))
        for mid, slot in offer.tracks.items():
            transceiver = next((t for t in self.pc.getTransceivers() if t.mid == mid), None)
            if transceiver is None:
                continue
            if isinstance(slot, p.PublishSlot):
                track = self.local_tracks.get(slot.publish)
                if track is not None and self.publishing.get(slot.publish) is not transceiver:
                    self.publishing[slot.publish] = transceiver
                    if slot.publish not in self.muted:
                        transceiver.sender.replaceTrack(self._feed(slot.publish))
                    transceiver.direction = "sendonly"
            elif isinstance(slot, TrackInfo):
                self._mid_info[mid] = slot
        self._bind_pending_tracks()
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self._send(
            p.Answer(type="answer", negotiation=offer.negotiation, sdp=self.pc.localDescription.sdp)
        )
        self.answered.set()

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected" and self.connected_at is None:
            self.connected_at = time.monotonic()
            self._watchdog = asyncio.ensure_future(self._watch_path())
        if state in ("connected", "failed", "closed") and not self._media_state.done():
            self._media_state.set_result(state)

    async def _watch_path(self) -> None:
        reason = await wait_for_silence(self.pc, lambda: bool(self.remote_tracks))
        if not self.closed.is_set():
            log.info("media path lost", extra={"path": self.path.path, "reason": reason})
            await self.events.put(Event("media_lost", {"path": self.path.path, "reason": reason}))

    async def signalling_alive(self, timeout_s: float = 2.0) -> bool:
        """Whether the relay still answers a WebSocket ping within ``timeout_s``: after the media path
        failed, it tells a broken path (try the paths to this relay again) from a lost relay."""
        if self._ws is None or self.closed.is_set():
            return False
        try:
            pong = await self._ws.ping()
            await asyncio.wait_for(pong, timeout_s)
        except (TimeoutError, websockets.ConnectionClosed, RuntimeError):
            return False
        return True

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._pending.append(track)

    def _bind_pending_tracks(self) -> None:
        """Tracks announced by aiortc during setRemoteDescription, matched to their m-line's info."""
        for track in self._pending:
            transceiver = next((t for t in self.pc.getTransceivers() if t.receiver.track is track), None)
            info = self._mid_info.get(transceiver.mid) if transceiver and transceiver.mid else None
            if info is None:
                continue
            remote = RemoteTrack(info, track)
            self.remote_tracks[info.track_id] = remote
            self.events.put_nowait(Event("track", info.model_dump(), remote))
        self._pending = []

    async def publish(self, source: str, track: MediaStreamTrack) -> None:
        self.local_tracks[source] = track
        await self._send(p.Publish(type="publish", source=source, video_codec=self.video_codec))  # type: ignore[arg-type]

    async def unpublish(self, source: str) -> None:
        self.local_tracks.pop(source, None)
        transceiver = self.publishing.pop(source, None)
        if transceiver is not None:
            feed = transceiver.sender.track
            transceiver.sender.replaceTrack(None)
            if feed is not None:
                feed.stop()
        await self._send(p.Unpublish(type="unpublish", source=source))  # type: ignore[arg-type]

    def _feed(self, source: str) -> MediaStreamTrack:
        """A per-connection copy of a local track. aiortc stops a sender's track when the sender ends
        (a relay that died, a connection closed): a copy ends, the caller's own track lives on for the
        next connection."""
        feed = self._media.subscribe(self.local_tracks[source], buffered=False)
        self._feeds.append(feed)
        return feed

    async def set_muted(self, source: str, muted: bool) -> None:
        """Stop sending ``source`` (nothing leaves this machine) or resume; the others are told."""
        transceiver = self.publishing.get(source)
        if muted:
            self.muted.add(source)
        else:
            self.muted.discard(source)
        if transceiver is not None:
            transceiver.sender.replaceTrack(None if muted else self._feed(source))
        await self._send(p.Mute(type="mute", source=source, muted=muted))  # type: ignore[arg-type]

    async def set_hand(self, raised: bool, participant_id: str | None = None) -> None:
        """Raise or lower our hand; a host or co-host lowers another's with ``participant_id``."""
        await self._send(p.Hand(type="hand", raised=raised, participant_id=participant_id))

    async def send_message(self, msg: p.Message) -> None:
        await self._send(msg)

    async def close(self, leave: bool = True) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._ws is not None:
            if leave:
                with contextlib.suppress(Exception):
                    await self._send(p.Leave(type="leave"))
            with contextlib.suppress(Exception):
                await self._ws.close()
        await self.pc.close()
        for feed in self._feeds:
            feed.stop()
        if self._reader is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._reader, 2)
