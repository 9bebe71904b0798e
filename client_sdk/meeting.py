"""A joined meeting: media through the nearest relay, chat and reactions, events, reconnection.

``await Meeting.join(client, meeting_id, passcode, publish={...})`` asks the API for a join token, probes
the relays it offers, connects to the fastest and publishes. Everything that happens arrives as
:class:`MeetingEvent` on ``meeting.events()`` (an async iterator) or through ``meeting.on(type, fn)``.
If the relay connection drops (or the relay drains), the meeting reconnects by itself, to the same relay
or the next nearest, and publishes again; a chat sent meanwhile waits in the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamTrack

from client_sdk.client import Client
from client_sdk.errors import (  # MediaPathFailed, NoRelayReachable, TurnRefused: also importable from here
    MediaPathFailed,
    MeetingEnded,
    MeetupError,
    NoRelayReachable,
    NotAllowed,
    TurnRefused,
)
from client_sdk.host_controls import HostControls
from client_sdk.outbox import Outbox, OutboxItem
from client_sdk.relay_select import rank_relays
from client_sdk.rtc.connection import Event, RelayConnection, RelayError, RemoteTrack
from client_sdk.rtc.path_walk import PathWalk
from client_sdk.rtc.paths import (
    DIRECT_TIMEOUT_S,
    PROBE_TIMEOUT_S,
    TURN_TIMEOUT_S,
    PathPlan,
    force_path,
    plan_paths,
)
from client_sdk.rtc.watchdog import MEDIA_SILENCE_S
from meetup_protocol import signalling as p
from meetup_protocol.schemas.chat import ChatMessagePosted, ReactionPosted
from meetup_protocol.schemas.meetings import IceServer
from meetup_protocol.turn import PATH_ORDER

__all__ = [
    "PATH_SWITCH_BOUND_S",
    "MediaPathFailed",
    "Meeting",
    "MeetingEvent",
    "NoRelayReachable",
    "TurnRefused",
    "apply_background_setting",
]

log = logging.getLogger("client_sdk.meeting")

#: After a media path went quiet: how long the relay has to answer a WebSocket ping for the SDK to
#: keep it (and walk the paths to it again) rather than move to the next relay.
SIGNALLING_CHECK_S = 2.0
#: How long a reconnection waits for the old connection to close before it goes ahead anyway.
CLOSE_WAIT_S = 1.0
#: The SDK's bound from a media path failing (a TURN server dying, a firewall closing its port) to media
#: flowing again through another path to the same relay, when one works: the silence that tells it, the
#: ping, direct tried again (it may work now), then a TURN path (its allocation checks run meanwhile),
#: plus the join through the API and the relay's RTT probe (2 s at most).
PATH_SWITCH_BOUND_S = MEDIA_SILENCE_S + SIGNALLING_CHECK_S + DIRECT_TIMEOUT_S + TURN_TIMEOUT_S + 2.0


async def apply_background_setting(client: Client, camera: MediaStreamTrack) -> MediaStreamTrack:
    """The camera with the user's background effect, or unchanged when the setting is ``none``."""
    settings = await client.settings()
    if settings.background.mode == "none":
        return camera
    from client_sdk.media.background import BackgroundProcessor, BackgroundTrack  # numpy, mediapipe

    image = None
    if settings.background.mode == "image" and settings.background_image_url:
        image = await client.fetch(settings.background_image_url)
    return BackgroundTrack(camera, BackgroundProcessor(settings.background.mode, image))  # type: ignore[arg-type]


@dataclass
class MeetingEvent:
    """``type``: participant_joined, participant_left, track_added, track_removed, track_muted, chat,
    reaction, chat_failed, reconnecting (``{"relay", "reason"}``), reconnected, media_path_changed
    (``{"path", "previous", "relay"}``), ended."""

    type: str
    data: dict[str, Any] = field(default_factory=dict)
    track: RemoteTrack | None = None


class Meeting:
    def __init__(
        self,
        client: Client,
        meeting_id: str,
        publish: dict[str, MediaStreamTrack],
        region: str | None,
        video_codec: str,
        pin_region: bool = False,
    ) -> None:
        self.client = client
        self.meeting_id = meeting_id
        self.local_tracks = dict(publish)
        self.region = region
        #: Only ever use relays of ``region`` (data residency, or a bot that must sit in one region),
        #: also when reconnecting; the other participants' media reaches it by the relays' cascade.
        self.pin_region = pin_region and region is not None
        self.video_codec = video_codec
        self.connection: RelayConnection | None = None
        self.relay_url = ""
        self.role = "guest"
        self.participant_id = ""
        self.ended = asyncio.Event()
        self.end_reason = ""
        self.chat: dict[str, dict[str, Any]] = {}  # message id -> message, deduplicated
        #: Our stored messages the relay has not acknowledged yet: announced again after a reconnect
        #: (the API's notice stays valid for minutes), so a message confirmed by the API reaches the
        #: others live even if the connection it was first announced on died.
        self._unacked: dict[str, p.Chat] = {}
        self._queue: asyncio.Queue[MeetingEvent] = asyncio.Queue()
        self._callbacks: dict[str, list[Callable[[MeetingEvent], Any]]] = {}
        self._leaving = False
        self._pump: asyncio.Task[None] | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self.outbox = Outbox(client, meeting_id, self._announce)
        self._media = MediaRelay()  # copies of remote tracks for several consumers
        self._feeds = MediaRelay()  # copies of local tracks, one per relay connection
        #: TURN servers to use instead of the API's (None: the join's own).
        self.ice_servers: list[IceServer] | None = None
        #: The only media path to try ("direct", "turn/udp", "turn/tcp", "turn/tls"; None: each in turn).
        self.forced_path: str | None = None
        #: Seconds from asking the API to join until media flowed, for the last (re)connection.
        self.connect_time_s: float | None = None
        #: Each path tried by the last (re)connection and why it failed, in order.
        self.path_errors: dict[str, str] = {}
        self._probes: set[asyncio.Task[str | None]] = set()
        self._closing: set[asyncio.Task[None]] = set()  # old connections still closing
        self._watch: asyncio.Task[None] | None = None
        #: Who speaks now, loudest first (participant id -> level 0..1), and who holds the stage (the
        #: dominant speaker, kept through pauses), as the relay detects them from the audio levels.
        self.speakers: dict[str, float] = {}
        self.dominant_speaker: str | None = None
        #: Whether a host's mute also stops this client sending (the relay drops it either way).
        self.stop_sending_when_muted = True
        #: Sources a host muted -> whether we may unmute them ourselves.
        self.host_muted: dict[str, bool] = {}
        #: Why the next reconnection happens, when it is not the signalling dropping.
        self._reconnect_reason = ""
        #: The media path last reported (``media_path_changed`` says when it moves).
        self._reported_path: str | None = None

    # --- joining and reconnecting ----------------------------------------------------------------------

    @classmethod
    async def join(
        cls,
        client: Client,
        meeting_id: str,
        passcode: str | None = None,
        *,
        publish: dict[str, MediaStreamTrack] | None = None,
        region: str | None = None,
        video_codec: str = "video/VP8",
        background: bool = True,
        pin_region: bool = False,
        ice_servers: list[IceServer] | None = None,
        admission_wait_s: float = 300,
        path: str | None = None,
    ) -> Meeting:
        """Join and publish. With ``background`` the user's background setting (blur, or an image) is
        applied to the camera before it leaves this machine. ``region`` ranks the relays (the nearest by
        measured round trip wins); with ``pin_region`` only that region's relays are used.

        Media goes direct to the relay when it can, else through the TURN servers the API hands out
        (``ice_servers`` replaces them): TURN over UDP, then TCP, then TLS, each attempt bounded
        (client_sdk/rtc/paths.py). ``media_path`` says which one carries it; :class:`TurnRefused` or
        :class:`MediaPathFailed` say why none did. In a meeting with a waiting room this waits up to
        ``admission_wait_s`` for a host to admit us (WaitingForHost, DeniedByHost otherwise).
        ``path`` forces one path, also when reconnecting
        (ValueError for a name that is no path; MediaPathFailed ``path_not_offered`` when the join
        offers no TURN server for it)."""
        if path is not None and path not in PATH_ORDER:  # before the API admits us
            raise ValueError(f"no such media path: {path!r} (choose from {', '.join(PATH_ORDER)})")
        publish = dict(publish or {})
        if background and "camera" in publish:
            publish["camera"] = await apply_background_setting(client, publish["camera"])
        meeting = cls(client, meeting_id, publish, region, video_codec, pin_region)
        meeting.ice_servers = ice_servers
        meeting.forced_path = path
        await meeting._connect(passcode, wait_s=admission_wait_s)
        meeting._reported_path = meeting.media_path
        return meeting

    async def _connect(
        self, passcode: str | None = None, avoid: str | None = None, wait_s: float = 0
    ) -> None:
        started = time.monotonic()
        admission = await self.client.join_meeting(
            self.meeting_id, passcode, region=self.region, wait_s=wait_s
        )
        self.role = admission.role
        self.participant_id = admission.participant_id
        offered = [(r.url, r.region) for r in admission.relays]
        if self.pin_region:
            offered = [(url, region) for url, region in offered if region == self.region]
            if not offered:
                raise NoRelayReachable(f"no relay in region {self.region}", code="no_relay_in_region")
        candidates = await rank_relays(offered)
        urls = [c.url for c in candidates if c.url != avoid] + [c.url for c in candidates if c.url == avoid]
        plans = plan_paths(self.ice_servers if self.ice_servers is not None else admission.ice_servers)
        if self.forced_path is not None:
            try:
                plans = force_path(plans, self.forced_path)
            except ValueError as exc:
                raise MediaPathFailed(
                    str(exc), code="path_not_offered", attempts={self.forced_path: str(exc)}
                ) from exc

        def open_connection(url: str, plan: PathPlan) -> RelayConnection:
            token, codec = admission.join_token, self.video_codec
            return RelayConnection(url, token, self.local_tracks, codec, media_relay=self._feeds, path=plan)

        self.path_errors = {}
        walk = PathWalk(plans, open_connection, self.path_errors, self._probes)
        connection, url = await walk.connect(urls)
        self.connection, self.relay_url = connection, url
        self.connect_time_s = time.monotonic() - started if connection.expects_media else None
        self._pump = asyncio.ensure_future(self._pump_events(connection))
        if not connection.expects_media:
            self._watch = asyncio.ensure_future(self._watch_first_media(connection))

    async def _watch_first_media(self, connection: RelayConnection) -> None:
        """Joined before there was media to connect (nobody published): the path was not tried then.
        Once the first offer is answered, hold it to the path's bound; if it fails, drop the connection,
        and the reconnection (now with media to wait for) walks the paths again."""
        closed = asyncio.ensure_future(connection.closed.wait())
        answered = asyncio.ensure_future(connection.answered.wait())
        try:
            await asyncio.wait({closed, answered}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            answered.cancel()
        if connection.closed.is_set():
            return
        try:
            await connection.wait_media(connection.path.timeout_s)
        except RelayError as exc:
            if connection is self.connection and not self._leaving and not self.ended.is_set():
                log.info("media path failed after joining", extra={"error": str(exc)})
                self.path_errors = {connection.path.path: str(exc)}
                await connection.close(leave=False)  # the pump sees it closed: reconnect

    async def _reconnect(self, avoid: str | None) -> None:
        reason, self._reconnect_reason = self._reconnect_reason or "signalling closed", ""
        await self._emit(MeetingEvent("reconnecting", {"relay": self.relay_url, "reason": reason}))
        delay = 0.2
        while not self._leaving and not self.ended.is_set():
            try:
                await self._connect(avoid=avoid)  # admitted already: no passcode needed
            except MeetingEnded as exc:
                await self._finish(exc.code)
                return
            except MeetupError as exc:
                log.info("reconnect failed", extra={"error": str(exc)})
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)
                continue
            await self._emit(MeetingEvent("reconnected", {"relay": self.relay_url}))
            await self._report_path()
            await self._announce_unacked()
            await self._catch_up_chat()
            return

    async def _report_path(self) -> None:
        """``media_path_changed`` (``{"path", "previous", "relay"}``) when media now flows through
        another path than it last did: after a path failed and the SDK moved to the next one."""
        path = self.media_path
        if path is not None and path != self._reported_path:
            previous, self._reported_path = self._reported_path, path
            if previous is not None:
                data = {"path": path, "previous": previous, "relay": self.relay_url}
                await self._emit(MeetingEvent("media_path_changed", data))

    # --- events ----------------------------------------------------------------------------------------

    async def _pump_events(self, connection: RelayConnection) -> None:
        reconnect_from: str | None = None
        while True:
            event = await connection.events.get()
            if event.type == "closed":
                break
            if event.type == "meeting_ended":
                await self._finish(event.data.get("reason", "ended"))
                return
            if event.type == "removed":  # left through the API (another device), or removed: stay out
                reason = event.data.get("reason")
                await self._finish("removed_by_host" if reason == "removed_by_host" else "left")
                return
            if event.type == "migrate":
                reconnect_from = connection.url
                continue
            if event.type == "media_lost":  # ICE failed or went silent; signalling may still be up
                reason = f"{event.data['path']}: {event.data['reason']}"
                self.path_errors = {event.data["path"]: event.data["reason"]}
                self._reconnect_reason = f"media path lost ({reason})"
                # A relay that still answers has only lost this path: walk the paths to it again
                # (direct first, then each TURN transport). One that does not is avoided, as when
                # its signalling drops.
                if not await connection.signalling_alive(SIGNALLING_CHECK_S):
                    reconnect_from = connection.url
                break
            await self._translate(event)
        if self._leaving or self.ended.is_set():
            return
        # The old connection's signalling closes at once (the relay lets its session go), but closing
        # its peer connection may wait on a dead path (a TURN allocation's release over a connection
        # nothing answers any more): that finishes in the background, not before reconnecting.
        closing = asyncio.ensure_future(connection.close(leave=False))
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)
        await asyncio.wait({closing}, timeout=CLOSE_WAIT_S)
        if reconnect_from is None and not self._reconnect_reason:
            reconnect_from = connection.url  # the signalling dropped: try another relay first
        self._reconnecting = asyncio.ensure_future(self._reconnect(avoid=reconnect_from))

    async def _translate(self, event: Event) -> None:
        kind, data = event.type, event.data
        if kind == "track":
            await self._emit(MeetingEvent("track_added", data, event.track))
        elif kind == "track_unpublished":
            await self._emit(MeetingEvent("track_removed", data))
        elif kind == "chat":
            if data["message_id"] not in self.chat:
                self.chat[data["message_id"]] = data
                await self._emit(MeetingEvent("chat", data))
        elif kind in ("participant_joined", "participant_left", "track_muted", "reaction", "track_published"):
            await self._emit(MeetingEvent(kind, data))
        elif kind == "speakers_changed":
            self.speakers = {s["participant_id"]: s["level"] for s in data.get("speakers", [])}
            self.dominant_speaker = data.get("dominant")
            await self._emit(MeetingEvent(kind, data))
        elif kind == "hand_changed":
            await self._emit(MeetingEvent(kind, data))
        elif kind in ("role_changed", "muted_by_host"):
            await self._on_host_control(kind, data)
        elif kind == "chat_ack":
            self._unacked.pop(str(data.get("message_id")), None)
        elif kind == "error":  # a refused message (e.g. not_allowed): the meeting goes on
            log.warning("relay error", extra={"code": data.get("code")})
            await self._emit(MeetingEvent(kind, data))

    async def _on_host_control(self, kind: str, data: dict[str, Any]) -> None:
        """Our role changed, or a host muted us: the relay forwards nothing of that source meanwhile
        (whatever we send), so we stop sending it too; ``data["can_unmute"]`` says whether
        ``mute(source, False)`` will be accepted."""
        if kind == "role_changed" and data.get("participant_id") == self.participant_id:
            self.role = str(data.get("role", self.role))
        if kind == "muted_by_host":
            if data.get("muted"):
                self.host_muted[str(data.get("source"))] = bool(data.get("can_unmute"))
            else:
                self.host_muted.pop(str(data.get("source")), None)
        if kind == "muted_by_host" and data.get("muted") and self.connection is not None:
            source = str(data.get("source"))
            if source in self.local_tracks and self.stop_sending_when_muted:
                await self.connection.set_muted(source, True)
        await self._emit(MeetingEvent(kind, data))

    async def _emit(self, event: MeetingEvent) -> None:
        await self._queue.put(event)
        for callback in self._callbacks.get(event.type, []) + self._callbacks.get("*", []):
            result = callback(event)
            if asyncio.iscoroutine(result):
                await result

    def on(self, event_type: str, callback: Callable[[MeetingEvent], Any]) -> None:
        """Call ``callback(event)`` for every event of ``event_type`` (``"*"`` for all)."""
        self._callbacks.setdefault(event_type, []).append(callback)

    async def events(self) -> AsyncIterator[MeetingEvent]:
        """Every event, in order, until the meeting ends or is left."""
        while True:
            getter = asyncio.ensure_future(self._queue.get())
            ender = asyncio.ensure_future(self.ended.wait())
            done, _ = await asyncio.wait({getter, ender}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                ender.cancel()
                yield getter.result()
                continue
            getter.cancel()
            while not self._queue.empty():
                yield self._queue.get_nowait()
            return

    def media(self, remote: RemoteTrack) -> MediaStreamTrack:
        """A copy of a remote track's frames. Several consumers (a view, a recorder, statistics) each
        take their own copy; reading ``remote.track`` directly would split the frames between them."""
        return self._media.subscribe(remote.track, buffered=False)

    @property
    def media_path(self) -> str | None:
        """The path media flows through: "direct", "turn/udp", "turn/tcp" or "turn/tls" (None until it
        flows, e.g. while nobody publishes anything)."""
        return self.connection.media_path if self.connection else None

    @property
    def remote_tracks(self) -> dict[str, RemoteTrack]:
        return self.connection.remote_tracks if self.connection else {}

    @property
    def participants(self) -> dict[str, dict[str, Any]]:
        return self.connection.participants if self.connection else {}

    # --- actions ---------------------------------------------------------------------------------------

    async def publish(self, source: str, track: MediaStreamTrack) -> None:
        """Start sending ``source`` (camera, microphone, screen), e.g. to share a screen mid-meeting."""
        self.local_tracks[source] = track
        if self.connection:
            await self.connection.publish(source, track)

    async def unpublish(self, source: str) -> None:
        self.local_tracks.pop(source, None)
        if self.connection:
            await self.connection.unpublish(source)

    @property
    def hands(self) -> list[str]:
        """Participant ids with a raised hand (ours included), first raised first."""
        if self.connection is None:
            return []
        raised = {pid: info.get("hand_raised_at") for pid, info in self.participants.items()}
        raised[self.participant_id] = self.connection.hand_raised_at
        return [pid for pid, at in sorted(raised.items(), key=lambda item: item[1] or 0) if at is not None]

    async def raise_hand(self, raised: bool = True) -> None:
        """Raise (or lower) our hand; everyone gets ``hand_changed``, and ``hands`` keeps raise order."""
        if self.connection is not None:
            await self.connection.set_hand(raised)

    async def lower_hand(self, participant_id: str | None = None) -> None:
        """Lower our hand, or (a host or co-host) another participant's: the relay answers a guest's try
        with an ``error`` event (``not_allowed``); this client refuses it first with NotAllowed."""
        if participant_id not in (None, self.participant_id) and self.role not in ("host", "co_host"):
            raise NotAllowed("only hosts and co-hosts lower others' hands", code="not_allowed")
        if self.connection is not None:
            await self.connection.set_hand(False, participant_id)

    @property
    def host_controls(self) -> HostControls:
        """Remove, mute others, roles, lock (host and co-hosts): client_sdk/host_controls.py."""
        return HostControls(self.client, self.meeting_id)

    async def mute(self, source: str, muted: bool = True) -> None:
        """Stop (or resume) sending ``source``'s media; the others are told it is muted. Unmuting what
        a host muted raises NotAllowed unless the meeting lets participants unmute themselves."""
        if not muted and self.host_muted.get(source) is False:
            raise NotAllowed(f"a host muted your {source}: a host must allow it", code="not_allowed")
        self.host_muted.pop(source, None)
        if self.connection is not None and source in self.local_tracks:
            await self.connection.set_muted(source, muted)

    async def set_video_quality(self, track_id: str, quality: p.VideoQuality) -> None:
        """The best quality wanted of a remote video (``low`` for a thumbnail): the relay sends at most
        that layer of a simulcast publisher (and less when this side's link says so)."""
        if self.connection is not None and not self.connection.closed.is_set():
            await self.connection.send_message(
                p.SetVideoQuality(type="video_quality", track_id=track_id, quality=quality)
            )

    def send_chat(self, text: str) -> OutboxItem:
        """Queue a message: stored by the API exactly once (retried while offline), then sent live.
        Await ``item.done`` for the stored message."""
        return self.outbox.put("chat", text)

    def react(self, emoji: str) -> OutboxItem:
        return self.outbox.put("reaction", emoji)

    async def _announce(self, item: OutboxItem, stored: Any) -> None:
        """After the API stored it: fan it out live through the relay, which takes the API's signed
        notice of the stored item and nothing else (receivers deduplicate by id)."""
        if isinstance(stored, ChatMessagePosted):
            self.chat[stored.message_id] = stored.model_dump(mode="json", exclude={"relay_notice"})
            chat = p.Chat(type="chat", notice=stored.relay_notice)
            self._unacked[stored.message_id] = chat
            body: p.Chat | p.Reaction = chat
        elif isinstance(stored, ReactionPosted):  # a reaction is of the moment: no second try
            body = p.Reaction(type="reaction", notice=stored.relay_notice)
        else:
            return
        await self._send_to_relay(body)

    async def _send_to_relay(self, body: p.Chat | p.Reaction) -> None:
        """Best effort: a failure here is a dead connection, which reconnecting deals with."""
        if self.connection is not None and not self.connection.closed.is_set():
            try:
                await self.connection.send_message(body)
            except Exception as exc:
                log.info("relay send failed", extra={"type": body.type, "error": repr(exc)[:200]})

    async def _announce_unacked(self) -> None:
        for body in list(self._unacked.values()):
            await self._send_to_relay(body)

    async def _catch_up_chat(self) -> None:
        """After a reconnect: messages sent while this client was away, from the API's history."""
        async for message in self.client.chat_history(self.meeting_id):
            if message.message_id not in self.chat:
                data = message.model_dump(mode="json")
                self.chat[message.message_id] = data
                await self._emit(MeetingEvent("chat", data))

    async def leave(self) -> None:
        """Leave the meeting (the others stay): relay first, then the API frees the seat."""
        self._leaving = True
        await self.outbox.flush(timeout_s=10)
        await self._close_connection(leave=True)
        with contextlib.suppress(MeetupError):
            await self.client.leave_meeting(self.meeting_id)
        await self._finish("left")

    async def end(self) -> None:
        """End the meeting for everyone (host only)."""
        await self.client.end_meeting(self.meeting_id)
        if self.connection is not None:
            with contextlib.suppress(Exception):
                await self.connection.send_message(p.End(type="end"))
        self._leaving = True
        await self._close_connection(leave=False)
        await self._finish("host_ended")

    async def _close_connection(self, leave: bool) -> None:
        if self.connection is not None:
            await self.connection.close(leave=leave)

    async def _finish(self, reason: str) -> None:
        if self.ended.is_set():
            return
        self.end_reason = reason
        if reason != "left":
            await self._emit(MeetingEvent("ended", {"reason": reason}))
        self.ended.set()
        if self._probes or self._closing:  # TURN allocations are released within their bound
            await asyncio.wait({*self._probes, *self._closing}, timeout=PROBE_TIMEOUT_S + 1)
        await self.outbox.close()
        if self.connection is not None:
            await self.connection.close(leave=False)
        if self._pump is not None and self._pump is not asyncio.current_task():
            self._pump.cancel()
