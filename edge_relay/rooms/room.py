"""A meeting on this relay: who is in it, whose tracks go to whom, and how it ends.

Limits travel in the join token (max participants, end of the meeting's maximum duration), so the relay
enforces them without calling the API. A room ends when its host ends it, when its time is up, or when
the relay drains; an ended meeting stays refused on this relay (edge_relay/rooms/directory.py).

When the meeting also has participants on other relays, the room holds one *link* per such relay
(edge_relay/rooms/link.py): each of our participants' tracks crosses a link once, whatever the
number of subscribers behind it, and the tracks arriving over a link are fanned out here like local ones.
A link announces its relay's participants and tracks (``LinkState``); events of our own participants
(chat, reactions, mute, the end) are relayed to every link, never re-relayed.

The room routes and formats nothing: it tells its peers what happened by calling them
(edge_relay/rooms/signals.py), and the signalling layer turns each call into a wire message.

A ``RoomListener`` (the cluster coordinator, edge_relay/cluster/coordinator.py) hears of every local
change, so the gossiped room state follows this room; it decides which links to open.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from edge_relay.rooms import hands
from edge_relay.rooms.bounded import BoundedDict
from edge_relay.rooms.link import Link
from edge_relay.rooms.participant import Participant
from edge_relay.rooms.signals import Event, ParticipantSignals
from edge_relay.rooms.speakers import SpeakerDetector
from edge_relay.sfu.forwarder import PublishedTrack, packet_clock_ms
from meetup_protocol.signalling import CodecInfo, LinkState, LinkTrack, ParticipantInfo, TrackInfo

log = logging.getLogger("edge_relay.room")


class JoinRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RoomListener(Protocol):
    """Hears of what happens in a room on this relay (implemented by the cluster coordinator)."""

    def changed(self, room: Room) -> None:
        """Our participants, their tracks or their mute states changed."""

    def ended(self, meeting_id: str, reason: str) -> None:
        """The meeting ended here, or the API told us it ended (not: learnt from another relay)."""

    def revoked(self, meeting_id: str, participant_id: str, generation: int) -> None:
        """The API revoked a participant's join tokens up to ``generation`` (they left)."""

    def chat(self, room: Room, event: Event) -> None:
        """One of our participants sent a chat message."""


#: Leaves whose reason the other relays are told (a plain leave or a lost connection says ``left``).
RELAYED_LEAVE_REASONS = ("removed_by_host",)
LEAVE_REASONS_KEPT = 1000

#: Chat message ids remembered per room, so a message arriving by two paths (a link and the gossip)
#: reaches our participants once.
CHAT_IDS_KEPT = 2000


class Room:
    def __init__(
        self, meeting_id: str, max_participants: int, ends_at: float, on_empty: Callable[[Room], None]
    ) -> None:
        self.meeting_id = meeting_id
        self.max_participants = max_participants
        self.ends_at = ends_at
        self.participants: dict[str, Participant] = {}
        self.links: dict[str, Link] = {}  # relay id -> link to that relay
        self.relay_id = ""
        self.ended: str | None = None  # the reason, once ended
        self.listener: RoomListener | None = None
        self.speakers = SpeakerDetector()
        self._chat_seen: OrderedDict[str, None] = OrderedDict()
        #: Why a participant of another relay left (a removal), told before its link's state drops it.
        self.leave_reasons: BoundedDict = BoundedDict(LEAVE_REASONS_KEPT)
        #: Participant id -> {source: may unmute itself} of host mutes, so a reconnect keeps them.
        self.host_mutes: BoundedDict = BoundedDict(LEAVE_REASONS_KEPT)
        self._on_empty = on_empty
        self._deadline = asyncio.get_running_loop().call_at(
            asyncio.get_running_loop().time() + max(0.0, ends_at - time.time()),
            lambda: asyncio.ensure_future(self.end("duration_reached")),
        )

    # --- membership ------------------------------------------------------------------------------------

    def check_admission(self, participant_id: str) -> None:
        if self.ended:
            raise JoinRefused("meeting_ended", "the meeting has ended")
        if participant_id not in self.participants and self.head_count() >= self.max_participants:
            raise JoinRefused("meeting_full", "the meeting is full")

    def head_count(self) -> int:
        """Participants of the meeting here and on every linked relay."""
        return len(self.visible())

    def visible(self, skip: object = None) -> dict[str, ParticipantInfo]:
        """Who is in the meeting as seen from here: our participants, and those the current links
        announce (without ``skip``). Ours win: a participant who moved here from another relay is here,
        whatever a late state of that relay's link still says; two links saying the same, one counts."""
        seen: dict[str, ParticipantInfo] = {}
        for link in self.links.values():
            if link is not skip:
                for info in link.state.participants:
                    seen.setdefault(info.participant_id, info)
        for participant in self.participants.values():
            if participant is not skip:
                seen[participant.id] = participant.info()
        return seen

    def everyone_else(self, participant: Participant) -> list[ParticipantInfo]:
        """What a joining participant is told about the others, local or behind a link."""
        return [info for pid, info in self.visible().items() if pid != participant.id]

    async def _announce(self, before: dict[str, ParticipantInfo], after: dict[str, ParticipantInfo]) -> None:
        """Tell our participants who appeared or disappeared between two views of the meeting."""
        for pid, info in after.items():
            if pid not in before:
                await self.tell(lambda peer: peer.participant_joined(info))  # noqa: B023 (awaited at once)
        for pid in before.keys() - after.keys():
            why = self.leave_reasons.pop(pid, "left")
            await self.tell(lambda peer: peer.participant_left(pid, why))  # noqa: B023 (awaited at once)

    async def add(self, participant: Participant) -> None:
        self.check_admission(participant.id)
        previous = self.participants.get(participant.id)
        if previous is not None:  # the same participant again (a reconnect): the new session wins
            await self.remove(previous, reason="replaced", notify=False)
        self.participants[participant.id] = participant
        info = participant.info()
        await self.tell(lambda peer: peer.participant_joined(info), exclude=participant)
        await self.sync_links()

    async def remove(self, participant: Participant, reason: str, notify: bool = True) -> None:
        if self.participants.get(participant.id) is not participant:
            return
        del self.participants[participant.id]
        gone = [info for _, info in participant.tracks]
        await participant.close()
        if notify and participant.id not in self.visible():  # not: moved to a linked relay already
            await self.tell(lambda peer: peer.participant_left(participant.id, reason))
            if reason in RELAYED_LEAVE_REASONS:  # ahead of the state without it: the links say why
                event = {"type": "participant_left", "participant_id": participant.id, "reason": reason}
                await self._to_links(lambda link: link.send_relayed(event))
        if gone:
            await self._tracks_changed(participant, (), gone)
        await self.sync_links()
        if not self.participants:
            for link in list(self.links.values()):  # nobody here needs the other relays' media
                await self.remove_link(link)
            self._on_empty(self)

    async def end(self, reason: str, relay: bool = True) -> None:
        """End the meeting for everyone on this relay: tell each participant why, then close."""
        if self.ended:
            return
        self.ended = reason
        self._deadline.cancel()
        if relay and self.listener is not None:
            self.listener.ended(self.meeting_id, reason)
        await self.tell(lambda peer: peer.meeting_ended(reason))
        if relay:
            await self._to_links(lambda link: link.send_relayed({"type": "meeting_ended", "reason": reason}))
        for link in list(self.links.values()):
            await self.remove_link(link, announce=False)
        for participant in list(self.participants.values()):
            await participant.close()
            await participant.signals.disconnect(reason)
        self.participants.clear()
        self._on_empty(self)

    # --- tracks ----------------------------------------------------------------------------------------

    def local_tracks(self) -> list[tuple[PublishedTrack, TrackInfo]]:
        return [t for participant in self.participants.values() for t in participant.tracks]

    def tracks_for(self, participant: Participant) -> list[tuple[PublishedTrack, TrackInfo]]:
        """The tracks ``participant`` should receive: everyone else's, local or linked (a link gets only
        ``local_tracks``). A linked track of a participant who is here now is stale (it moved here), and
        is left out."""
        tracks = [t for other in self.participants.values() if other is not participant for t in other.tracks]
        ids = {track.track_id for track, _ in tracks}
        for link in self.links.values():
            for track, info in link.tracks:
                if info.participant_id not in self.participants and track.track_id not in ids:
                    ids.add(track.track_id)
                    tracks.append((track, info))
        return tracks

    def _track_ids(self, skip: object = None) -> set[str]:
        """Track ids visible here (our participants' and the current links' announcements)."""
        ids = {info.track_id for p in self.participants.values() if p is not skip for _, info in p.tracks}
        for link in self.links.values():
            if link is not skip:
                ids |= {
                    t.info.track_id
                    for t in link.state.tracks
                    if t.info.participant_id not in self.participants
                }
        return ids

    async def on_tracks_changed(
        self,
        publisher: Participant,
        published: Iterable[TrackInfo] = (),
        unpublished: Iterable[TrackInfo] = (),
    ) -> None:
        """One of our participants' tracks changed."""
        await self._tracks_changed(publisher, published, unpublished)
        await self.sync_links()

    async def on_link_tracks_changed(
        self, link: Link, published: Iterable[TrackInfo] = (), unpublished: Iterable[TrackInfo] = ()
    ) -> None:
        """The tracks arriving over a link changed (a stale link speaks for nobody, and its news of a
        participant who is here now is stale too)."""
        if self.is_current(link):
            published = [i for i in published if i.participant_id not in self.participants]
            await self._tracks_changed(link, published, unpublished)

    async def _tracks_changed(
        self, publisher: Participant | Link, published: Iterable[TrackInfo], unpublished: Iterable[TrackInfo]
    ) -> None:
        """Tell our participants (but the publisher) and offer them what changed."""
        still = self._track_ids(skip=publisher)  # the same ids from elsewhere: re-offered, not gone
        for info in published:
            await self.tell(lambda peer: peer.track_published(info), exclude=publisher)  # noqa: B023
        for info in unpublished:
            if info.track_id not in still:
                track_id = info.track_id
                await self.tell(lambda peer: peer.track_unpublished(track_id), exclude=publisher)  # noqa: B023
        for other in list(self.participants.values()):
            if other is not publisher:
                await other.negotiate()

    # --- links to other relays -------------------------------------------------------------------------

    def local_state(self) -> LinkState:
        tracks = [
            LinkTrack(
                info=info, codec=CodecInfo(mime_type=track.mime_type, parameters=track.codec_parameters)
            )
            for track, info in self.local_tracks()
        ]
        return LinkState(
            relay_id=self.relay_id, participants=[p.info() for p in self.participants.values()], tracks=tracks
        )

    async def sync_links(self) -> None:
        """Our participants or tracks changed: tell the cluster and every linked relay, and offer the
        linked relays the new tracks."""
        if self.listener is not None:
            self.listener.changed(self)
        if not self.links:
            return
        state = self.local_state()

        async def update(link: Link) -> None:
            await link.send_state(state)
            await link.negotiate()

        await self._to_links(update)

    def is_current(self, link: Link) -> bool:
        """Whether ``link`` is this room's link to its relay (not one replaced, dropped or never added)."""
        return self.links.get(link.relay_id) is link

    async def add_link(self, link: Link) -> None:
        previous = self.links.get(link.relay_id)
        if previous is not None and previous is not link:  # the peer dialed anew: the old link is stale
            await self.remove_link(previous, announce=False)
        before = self.visible(skip=link)
        if previous is not None and previous is not link:
            before = {**{i.participant_id: i for i in previous.state.participants}, **before}
        self.links[link.relay_id] = link
        await self._announce(before, self.visible())

        async def introduce(link: Link) -> None:
            await link.send_state(self.local_state())
            await link.negotiate()

        await self._to_links(introduce, [link])

    async def remove_link(self, link: Link, announce: bool = True) -> None:
        if self.links.get(link.relay_id) is not link:
            return
        before = self.visible()
        del self.links[link.relay_id]
        gone = [info for _, info in link.tracks]
        await link.close()
        if announce:
            await self._announce(before, self.visible())
            await self._tracks_changed(link, (), gone)

    async def _to_links(
        self, speak: Callable[[Link], Awaitable[None]], links: Iterable[Link] | None = None
    ) -> None:
        """Say something to each link (all by default). A link that cannot be spoken to is dead (its
        socket closed, e.g. by a keepalive during a cut): it is dropped, so that the coordinator dials
        the peer again once it answers, and nothing it says later counts. Never raises: the caller is
        acting for one of our participants, who must not pay for another relay's connection."""
        for link in list(self.links.values() if links is None else links):
            if not self.is_current(link):
                continue
            try:
                await speak(link)
            except Exception as exc:
                log.warning("link unusable: dropped", extra={"peer": link.relay_id, "error": repr(exc)[:200]})
                await self.remove_link(link)

    async def on_link_state(self, link: Link, old: LinkState, new: LinkState) -> None:
        """Tell our participants who joined or left on the other relay: only what changes the meeting
        as seen from here (someone who moved from that relay to this one or a third has not left), and
        only from the current link to that relay (a replaced one's late update speaks for nobody)."""
        if not self.is_current(link):
            return
        others = self.visible(skip=link)
        before = {**{i.participant_id: i for i in old.participants}, **others}
        after = {**{i.participant_id: i for i in new.participants}, **others}
        await self._announce(before, after)
        await hands.announce(self, old, new)

    async def relay_event(self, event: Event, source: Participant | None = None) -> None:
        """An event of one of our participants: to our other participants and to every linked relay."""
        if event.get("type") == "reaction" and not self.first_sight(f"reaction:{event.get('reaction_id')}"):
            return  # a stored reaction's notice again (a replay): once only, like chat
        if event.get("type") == "chat":
            if not self.first_sight(str(event.get("message_id", ""))):
                return  # the same stored message announced again (a retry, or a replay): once only
            if self.listener is not None:
                self.listener.chat(self, event)
        elif event.get("type") == "track_muted" and self.listener is not None:
            self.listener.changed(self)
        await self.tell(lambda peer: peer.event(event), exclude=source)
        await self._to_links(lambda link: link.send_relayed(event))

    async def relay_to_links(self, event: Event) -> None:
        """Pass an event to every linked relay only (what their participants hear comes from them)."""
        await self._to_links(lambda link: link.send_relayed(event))

    async def on_relayed(self, link: Link, event: Event) -> None:
        """An event from a linked relay's participant: to ours only (never relayed on)."""
        if not self.is_current(link):
            return  # a replaced or dropped link's late event: the current one, or the gossip, has it
        if event.get("type") == "meeting_ended":
            await self.end(str(event.get("reason", "host_ended")), relay=False)
        elif event.get("type") == "chat":
            await self.deliver_chat(event)
        elif event.get("type") in ("reaction", "track_muted"):
            await self.tell(lambda peer: peer.event(event))
        elif event.get("type") == "hand_changed":
            await hands.on_relayed(self, event)
        elif event.get("type") == "participant_left":
            self.leave_reasons[str(event.get("participant_id"))] = str(event.get("reason", "left"))

    async def deliver_chat(self, event: Event) -> bool:
        """A chat message of another relay's participant, by a link or by gossip: to ours, once."""
        if not self.first_sight(str(event.get("message_id", ""))):
            return False
        await self.tell(lambda peer: peer.event(event))
        return True

    def first_sight(self, item_id: str) -> bool:
        """Whether a stored item (a chat message, a reaction) is new here: each reaches ours once."""
        if item_id in self._chat_seen:
            return False
        self._chat_seen[item_id] = None
        if len(self._chat_seen) > CHAT_IDS_KEPT:
            self._chat_seen.popitem(last=False)
        return True

    # --- fan-out ---------------------------------------------------------------------------------------

    async def tell(
        self, say: Callable[[ParticipantSignals], Awaitable[None]], exclude: object = None
    ) -> None:
        """Say something to each of our participants (but ``exclude``)."""
        for participant in list(self.participants.values()):
            if participant is not exclude:
                try:
                    await say(participant.signals)
                except Exception:  # a dead socket is cleaned up by its own session
                    log.debug("send failed", extra={"participant": participant.id})

    async def tick(self, report: bool) -> None:
        """Periodic upkeep (every ~200 ms): keyframes for waiting subscribers, NACK retries; with
        ``report`` (every second) receiver reports and bitrate estimates to the publishers."""
        now_ms = packet_clock_ms()  # the clock of the packets' arrival times (NACK retries compare them)
        linked = [t for link in list(self.links.values()) for t in link.tracks]
        now = time.monotonic()
        for participant in list(self.participants.values()):  # each one's layers, before tracks apply them
            participant.transport.allocate_downlink(now)
        levels: dict[str, tuple[float, bool]] = {}
        for track, info in [*self.local_tracks(), *linked]:  # a linked track's upstream is the link
            await track.upkeep(now_ms)
            if report and track.ssrc:
                await track.upstream.report(track)
            if track.audio_level is not None and info.source == "microphone":
                levels[info.participant_id] = track.audio_level.level(now_ms)
        speakers = self.speakers.update(levels, now)
        if speakers is not None:
            levels_now, dominant = list(speakers.levels), speakers.dominant
            await self.tell(lambda signals: signals.speakers_changed(levels_now, dominant))
