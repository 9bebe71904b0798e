"""Raised hands: who asks to speak, in raise order, across the meeting's relays.

A hand is part of its participant's state (``ParticipantInfo.hand_raised_at``, on its own relay's clock):
that relay sets it and tells its participants (``hand_changed``); the link states carry it to the other
relays, which tell theirs what changed. So every relay shows the same hands in the same order with no
merge to resolve: each hand has one writer, the owner's relay. Lowering another's hand is for hosts and
co-hosts; when that hand sits on another relay, the request crosses the link as a relayed
``hand_changed`` and the owner's relay applies it (relays trust each other's checks, as for everything a
link carries).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from edge_relay.rooms.participant import Participant
from edge_relay.rooms.signals import Event
from meetup_protocol.signalling import LinkState
from meetup_protocol.tokens import MODERATORS

if TYPE_CHECKING:
    from edge_relay.rooms.room import Room


async def on_hand(
    room: Room, actor: Participant, target_id: str | None, raised: bool
) -> tuple[str, str] | None:
    """A participant's ``hand`` message: raise or lower its own, or (a moderator) lower another's.
    Returns (code, message) when refused."""
    target_id = target_id or actor.id
    if target_id != actor.id:
        if raised:
            return "not_allowed", "you can raise only your own hand"
        if actor.role not in MODERATORS:
            return "not_allowed", "only hosts and co-hosts lower others' hands"
        if target_id not in room.visible():
            return "unknown_participant", "no such participant in this meeting"
    local = room.participants.get(target_id)
    by = actor.id if target_id != actor.id else None
    if local is not None:
        await set_hand(room, local, raised, by)
    else:  # on another relay: its relay lowers it, and its link state tells us
        await room.relay_to_links(
            {"type": "hand_changed", "participant_id": target_id, "raised": False, "by": by}
        )
    return None


async def set_hand(room: Room, participant: Participant, raised: bool, by: str | None = None) -> None:
    """Raise or lower one of our participants' hands (again: nothing changes, its place is kept)."""
    if raised == (participant.hand_raised_at is not None):
        return
    participant.hand_raised_at = time.time() if raised else None
    event: Event = {
        "type": "hand_changed",
        "participant_id": participant.id,
        "raised": raised,
        "raised_at": participant.hand_raised_at,
        "by": by,
    }
    await room.tell(lambda signals: signals.event(event))
    await room.sync_links()


async def on_relayed(room: Room, event: Event) -> None:
    """Another relay's moderator lowers the hand of one of ours."""
    participant = room.participants.get(str(event.get("participant_id")))
    if participant is not None and event.get("raised") is False:
        by = event.get("by")
        await set_hand(room, participant, False, by if isinstance(by, str) else None)


async def announce(room: Room, old: LinkState, new: LinkState) -> None:
    """Tell our participants of the hands that went up or down on a linked relay."""
    before = {i.participant_id: i.hand_raised_at for i in old.participants}
    for info in new.participants:
        if info.participant_id in room.participants or before.get(info.participant_id) == info.hand_raised_at:
            continue
        if info.participant_id not in before and info.hand_raised_at is None:
            continue  # a joiner with its hand down: participant_joined says all
        event: Event = {
            "type": "hand_changed",
            "participant_id": info.participant_id,
            "raised": info.hand_raised_at is not None,
            "raised_at": info.hand_raised_at,
        }
        await room.tell(lambda signals: signals.event(event))  # noqa: B023 (awaited at once)


def raised(room: Room) -> list[str]:
    """The meeting's raised hands as seen here, in raise order."""
    hands = [(i.hand_raised_at, pid) for pid, i in room.visible().items() if i.hand_raised_at is not None]
    return [pid for _, pid in sorted(hands)]
