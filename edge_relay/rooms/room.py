"""A meeting on this relay: who is in it, whose tracks go to whom, and how it ends.

Limits travel in the join token (max participants, end of the meeting's maximum duration), so the relay
enforces them without calling the API. A room ends when its host ends it, when its time is up, or when
the relay drains; an ended meeting stays refused on this relay.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from edge_relay.rooms.participant import Participant
from edge_relay.sfu.forwarder import PublishedTrack
from edge_relay.signalling.protocol import TrackInfo, message

log = logging.getLogger("edge_relay.room")


class JoinRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Room:
    def __init__(
        self, meeting_id: str, max_participants: int, ends_at: float, on_empty: Callable[[Room], None]
    ) -> None:
        self.meeting_id = meeting_id
        self.max_participants = max_participants
        self.ends_at = ends_at
        self.participants: dict[str, Participant] = {}
        self.ended: str | None = None  # the reason, once ended
        self._on_empty = on_empty
        self._deadline = asyncio.get_running_loop().call_at(
            asyncio.get_running_loop().time() + max(0.0, ends_at - time.time()),
            lambda: asyncio.ensure_future(self.end("duration_reached")),
        )

    # --- membership ------------------------------------------------------------------------------------

    def check_admission(self, participant_id: str) -> None:
        if self.ended:
            raise JoinRefused("meeting_ended", "the meeting has ended")
        if participant_id not in self.participants and len(self.participants) >= self.max_participants:
            raise JoinRefused("meeting_full", "the meeting is full")

    async def add(self, participant: Participant) -> None:
        self.check_admission(participant.id)
        previous = self.participants.get(participant.id)
        if previous is not None:  # the same participant again (a reconnect): the new session wins
            await self.remove(previous, reason="replaced", notify=False)
        self.participants[participant.id] = participant
        await self.broadcast(
            message("participant_joined", participant=participant.info()), exclude=participant
        )

    async def remove(self, participant: Participant, reason: str, notify: bool = True) -> None:
        if self.participants.get(participant.id) is not participant:
            return
        del self.participants[participant.id]
        gone = [info for _, info in participant.tracks]
        await participant.close()
        if notify:
            await self.broadcast(message("participant_left", participant_id=participant.id, reason=reason))
        if gone:
            await self.on_tracks_changed(participant, unpublished=gone)
        if not self.participants:
            self._on_empty(self)

    async def end(self, reason: str) -> None:
        """End the meeting for everyone on this relay: tell each participant why, then close."""
        if self.ended:
            return
        self.ended = reason
        self._deadline.cancel()
        await self.broadcast(message("meeting_ended", reason=reason))
        for participant in list(self.participants.values()):
            await participant.close()
            await participant.disconnect(reason)
        self.participants.clear()
        self._on_empty(self)

    # --- tracks ----------------------------------------------------------------------------------------

    def tracks_for(self, participant: Participant) -> list[tuple[PublishedTrack, TrackInfo]]:
        """Every track of the others, which ``participant`` should receive."""
        return [t for other in self.participants.values() if other is not participant for t in other.tracks]

    async def on_tracks_changed(
        self,
        publisher: Participant,
        published: Iterable[TrackInfo] = (),
        unpublished: Iterable[TrackInfo] = (),
    ) -> None:
        for info in published:
            await self.broadcast(message("track_published", track=info), exclude=publisher)
        for info in unpublished:
            await self.broadcast(message("track_unpublished", track_id=info.track_id), exclude=publisher)
        for other in list(self.participants.values()):
            if other is not publisher:
                await other.negotiate()

    # --- fan-out ---------------------------------------------------------------------------------------

    async def broadcast(self, text: str, exclude: Participant | None = None) -> None:
        for participant in list(self.participants.values()):
            if participant is not exclude:
                try:
                    await participant.send(text)
                except Exception:  # a dead socket is cleaned up by its own session
                    log.debug("send failed", extra={"participant": participant.id})

    async def tick(self, report: bool) -> None:
        """Periodic upkeep (every ~200 ms): keyframes for waiting subscribers, NACK retries; with
        ``report`` (every second) receiver reports and bitrate estimates to the publishers."""
        now_ms = time.monotonic() * 1000
        for participant in list(self.participants.values()):
            for track, _ in participant.tracks:
                await track.upkeep(now_ms)
                if report and track.ssrc:
                    await track.upstream.report(track)


class Rooms:
    """All rooms of this relay process, by meeting id."""

    def __init__(self) -> None:
        self.rooms: dict[str, Room] = {}
        self.ended: dict[str, str] = {}  # meeting id -> reason, so an ended meeting stays refused

    def room_for(self, meeting_id: str, max_participants: int, ends_at: float) -> Room:
        if meeting_id in self.ended:
            raise JoinRefused("meeting_ended", "the meeting has ended")
        if ends_at <= time.time():
            raise JoinRefused("meeting_ended", "the meeting has reached its maximum duration")
        room = self.rooms.get(meeting_id)
        if room is None:
            room = Room(meeting_id, max_participants, ends_at, self._forget)
            self.rooms[meeting_id] = room
        return room

    def _forget(self, room: Room) -> None:
        if self.rooms.get(room.meeting_id) is room:
            del self.rooms[room.meeting_id]
        if room.ended:
            self.ended[room.meeting_id] = room.ended

    @property
    def participant_count(self) -> int:
        return sum(len(r.participants) for r in self.rooms.values())

    async def tick_forever(self, interval_s: float = 0.2, report_every: int = 5) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(interval_s)
            ticks += 1
            for room in list(self.rooms.values()):
                try:
                    await room.tick(report=ticks % report_every == 0)
                except Exception:
                    log.exception("room tick failed", extra={"meeting_id": room.meeting_id})
