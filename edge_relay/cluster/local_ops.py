"""The relay's calls that record room changes: each becomes a one-entry CRDT delta, stamped by the HLC.

Kept apart from :mod:`edge_relay.cluster.node` (networking) as a mixin of ``Cluster``; everything here is
local and synchronous, and ``_spread`` (in ``Cluster``) takes the winning delta to the network.
Callbacks fire only for changes merged from other relays: the relay already knows what it recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from edge_relay.cluster.config import ClusterConfig
from edge_relay.cluster.crdt import Chat, Ended, Participant, PEntry, RoomDiff, RoomState, TEntry
from edge_relay.cluster.hlc import HLC
from edge_relay.cluster.members import Member

RoomCallback = Callable[[str, RoomDiff], Any]


class LocalRoomOps:
    config: ClusterConfig
    clock: HLC
    rooms: dict[str, RoomState]
    #: Participants this relay hosts (meeting -> participant -> (name, role)), to re-assert them if
    #: the other side of a partition evicted them while we were cut off.
    _local: dict[str, dict[str, tuple[str, str]]]
    _room_callbacks: list[RoomCallback]

    @property
    def node_id(self) -> str:
        return self.config.node_id

    def members(self, include_self: bool = False, include_suspect: bool = True) -> list[Member]:
        raise NotImplementedError

    def _spread(self, meeting_id: str, delta: RoomState) -> None:
        raise NotImplementedError

    def room(self, meeting_id: str) -> RoomState | None:
        return self.rooms.get(meeting_id)

    def live_participants(self, meeting_id: str) -> dict[str, Participant]:
        """Participants on relays that are live now (before eviction tombstones a dead relay's ones)."""
        room, live = self.rooms.get(meeting_id), {m.id for m in self.members(include_self=True)}
        return {k: p for k, p in (room.participants() if room else {}).items() if p.relay_id in live}

    def on_room_change(self, callback: RoomCallback) -> None:
        """``callback(meeting_id, diff)`` for changes merged from other relays (not for local calls)."""
        self._room_callbacks.append(callback)

    def join(self, meeting_id: str, participant_id: str, name: str = "", role: str = "") -> None:
        self._local.setdefault(meeting_id, {})[participant_id] = (name, role)
        entry = PEntry(self.clock.now(), True, self.node_id, name, role, "")
        self._record(meeting_id, lambda d: d.p.__setitem__(participant_id, entry))

    def leave(self, meeting_id: str, participant_id: str, reason: str = "left") -> None:
        """A participant of this relay left. One that has since joined elsewhere is left alone there."""
        self._local.get(meeting_id, {}).pop(participant_id, None)
        room = self.rooms.get(meeting_id)
        entry = room.p.get(participant_id) if room else None
        if entry is not None and entry.relay_id == self.node_id:
            self._tombstone(meeting_id, participant_id, reason)

    def publish_track(
        self,
        meeting_id: str,
        participant_id: str,
        track_id: str,
        kind: str,
        source: str = "",
        muted: bool = False,
    ) -> None:
        """Announce (or update: mute, unmute) a track published on this relay."""
        entry = TEntry(self.clock.now(), True, self.node_id, kind, source, muted)
        self._record(meeting_id, lambda d: d.t.setdefault(participant_id, {}).__setitem__(track_id, entry))

    def unpublish_track(self, meeting_id: str, participant_id: str, track_id: str) -> None:
        room = self.rooms.get(meeting_id)
        old = room.t.get(participant_id, {}).get(track_id) if room else None
        kind, source = (old.kind, old.source) if old else ("", "")
        entry = TEntry(self.clock.now(), False, self.node_id, kind, source, False)
        self._record(meeting_id, lambda d: d.t.setdefault(participant_id, {}).__setitem__(track_id, entry))

    def end_meeting(self, meeting_id: str, reason: str = "ended") -> None:
        ended = Ended(self.clock.now(), reason, self.node_id)
        self._record(meeting_id, lambda d: setattr(d, "ended", ended))
        self._local.pop(meeting_id, None)

    def revoke(self, meeting_id: str, participant_id: str, generation: int) -> None:
        """The API revoked a participant's join tokens up to ``generation``: every relay refuses them."""
        self._record(meeting_id, lambda d: d.r.__setitem__(participant_id, generation))

    def add_chat(
        self, meeting_id: str, message_id: str, sender: str, text: str, created_at: float | None = None
    ) -> None:
        """A chat notification to fan out on every relay (the message itself is stored by the API)."""
        text = text.encode()[: self.config.chat_text_max].decode(errors="ignore")
        entry = Chat(self.clock.now(), sender, text, time.time() if created_at is None else created_at)
        self._record(meeting_id, lambda d: d.c.__setitem__(message_id, entry))

    def _tombstone(self, meeting_id: str, participant_id: str, reason: str) -> None:
        room = self.rooms.get(meeting_id)
        old = room.p.get(participant_id) if room else None
        if old is None or not old.present:
            return
        ts = self.clock.now()
        tracks = {
            tid: TEntry(ts, False, e.relay_id, e.kind, e.source, False)
            for tid, e in (room.t.get(participant_id, {}) if room else {}).items()
            if e.present
        }

        def fill(d: RoomState) -> None:
            d.p[participant_id] = PEntry(ts, False, old.relay_id, old.name, old.role, reason)
            if tracks:
                d.t[participant_id] = tracks

        self._record(meeting_id, fill)

    def _record(self, meeting_id: str, fill: Callable[[RoomState], None]) -> None:
        delta = RoomState(meeting_id, self.config.chat_keep)
        fill(delta)
        room = self.rooms.setdefault(meeting_id, RoomState(meeting_id, self.config.chat_keep))
        won, _ = room.merge(delta)
        self._spread(meeting_id, won)
