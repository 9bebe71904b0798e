"""All rooms of this relay process, and what it refuses: ended meetings and revoked join tokens.

The API tells relays what they cannot learn from a join token (edge_relay/rooms/notices.py): a meeting
ended through the API, or a participant who left (their tokens, issued before the leave, are worth
nothing after it). Both are remembered here, so a token issued before either is refused at the door,
and both are handed to the cluster (the ``RoomListener``), so every relay learns them, also one that
joins the cluster later.
"""

from __future__ import annotations

import asyncio
import logging
import time

from edge_relay.rooms.bounded import BoundedDict
from edge_relay.rooms.room import JoinRefused, Room, RoomListener

log = logging.getLogger("edge_relay.rooms")

#: Ended meetings and revocations remembered (the newest ones; older ones are refused by the API,
#: whose fresh join tokens they would need: a join token lives minutes).
ENDED_KEPT = 100_000
REVOKED_KEPT = 100_000


class Rooms:
    """All rooms of this relay process, by meeting id."""

    def __init__(self) -> None:
        self.rooms: dict[str, Room] = {}
        #: Meeting id -> reason, so an ended meeting stays refused.
        self.ended: BoundedDict = BoundedDict(ENDED_KEPT)
        #: "meeting/participant" -> the newest revoked generation of that participant's join tokens.
        self.revoked: BoundedDict = BoundedDict(REVOKED_KEPT)
        self.relay_id = ""
        self.listener: RoomListener | None = None

    def check_token(self, meeting_id: str, participant_id: str, generation: int) -> None:
        """Refuse a verified join token whose meeting ended or whose participant has left since."""
        if meeting_id in self.ended:
            raise JoinRefused("meeting_ended", "the meeting has ended")
        if generation <= self.revoked.get(f"{meeting_id}/{participant_id}", -1):
            raise JoinRefused("token_revoked", "you left this meeting; join it again through the API")

    def room_for(self, meeting_id: str, max_participants: int, ends_at: float) -> Room:
        if meeting_id in self.ended:
            raise JoinRefused("meeting_ended", "the meeting has ended")
        if ends_at <= time.time():
            raise JoinRefused("meeting_ended", "the meeting has reached its maximum duration")
        room = self.rooms.get(meeting_id)
        if room is None:
            room = Room(meeting_id, max_participants, ends_at, self._forget)
            room.relay_id, room.listener = self.relay_id, self.listener
            self.rooms[meeting_id] = room
        return room

    def _forget(self, room: Room) -> None:
        if self.rooms.get(room.meeting_id) is room:
            del self.rooms[room.meeting_id]
        if room.ended:
            self.ended[room.meeting_id] = room.ended

    async def end_meeting(self, meeting_id: str, reason: str, spread: bool = True) -> bool:
        """The meeting ended (the API said so, or another relay): end its room here if there is one,
        refuse its tokens from now on, and (``spread``) tell the cluster. False if known already."""
        room = self.rooms.get(meeting_id)
        if room is not None and not room.ended:
            await room.end(reason, relay=spread)  # tells the listener (the cluster) itself
            self.ended[meeting_id] = reason
            return True
        if meeting_id in self.ended:
            return False
        self.ended[meeting_id] = reason
        if spread and self.listener is not None:
            self.listener.ended(meeting_id, reason)
        return True

    async def revoke(
        self, meeting_id: str, participant_id: str, generation: int, spread: bool = True, reason: str = "left"
    ) -> bool:
        """Tokens of ``participant_id`` up to ``generation`` are void: refuse them, and close the session
        of one still connected here with such a token (told ``removed`` with ``reason``, ``left`` or
        ``removed_by_host``, so its client does not reconnect; the others see it leave for that reason).
        False if known already. The gossip spreads the revocation without its reason: a relay that
        learns it only so says ``left``."""
        key = f"{meeting_id}/{participant_id}"
        if generation <= self.revoked.get(key, -1):
            return False
        self.revoked[key] = generation
        room = self.rooms.get(meeting_id)
        participant = room.participants.get(participant_id) if room else None
        if room is not None and participant is None:
            room.leave_reasons[participant_id] = reason  # for when its relay's link says it is gone
        if room is not None and participant is not None and participant.generation <= generation:
            extra = {"meeting_id": meeting_id, "participant_id": participant_id, "reason": reason}
            log.info("revoked session closed", extra=extra)
            try:
                await participant.signals.removed(reason)
            except Exception:  # a dead socket: closing it below is all that is left
                log.debug("send failed", extra={"participant": participant_id})
            await room.remove(participant, reason=reason)
            await participant.signals.disconnect(reason)
        if spread and self.listener is not None:
            self.listener.revoked(meeting_id, participant_id, generation)
        return True

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
