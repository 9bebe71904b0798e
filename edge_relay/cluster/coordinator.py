"""Ties this relay's rooms to the cluster: what happens here is gossiped, what happens elsewhere acts here.

- Local changes (joins, leaves, tracks, mute, the end, chat) are recorded in the cluster's CRDT room
  state, which every relay replicates (edge_relay/cluster/node.py).
- Links: a meeting with participants here and on relay R needs one link between us and R. The relay
  with the smaller id dials it (so a pair never opens two), to the signalling URL R gossips. Links are
  dropped when R is declared dead (a partition or a crash) and dialed again when it is back; the room
  drops its links itself when its last participant here leaves, which stops the cascade.
- Remote changes: a meeting ended on another relay (even during a partition, learnt at the heal) ends
  here; chat sent on another relay reaches our participants by gossip even when no link carried it
  (the room delivers each message id once, whichever path brings it first).

Reconciliation runs on every relevant change and once a second, so a missed event or a failed dial is
retried without bookkeeping of its own; a dial that failed waits a growing back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from typing import Any

from edge_relay.cluster import cascade
from edge_relay.cluster.crdt import RoomDiff
from edge_relay.cluster.link_tls import CERT_KEY
from edge_relay.cluster.members import Member
from edge_relay.cluster.node import Cluster
from edge_relay.rooms.directory import Rooms
from edge_relay.rooms.room import Room

log = logging.getLogger("edge_relay.coordinator")

TrackKey = tuple[str, str]  # participant id, track id


class Coordinator:
    def __init__(
        self,
        cluster: Cluster,
        rooms: Rooms,
        secret: str,
        stun_servers: list[str],
        reconcile_interval_s: float = 1.0,
        max_backoff_s: float = 10.0,
    ) -> None:
        self.cluster = cluster
        self.rooms = rooms
        self.secret = secret
        self.stun_servers = stun_servers
        self.reconcile_interval_s = reconcile_interval_s
        self.max_backoff_s = max_backoff_s
        #: What we recorded of each room, to turn the room's current state into deltas.
        self._participants: dict[str, dict[str, tuple[str, str]]] = defaultdict(dict)
        self._tracks: dict[str, dict[TrackKey, tuple[str, str, bool]]] = defaultdict(dict)
        self._dialing: set[tuple[str, str]] = set()
        self._failures: dict[tuple[str, str], tuple[int, float]] = {}  # -> (count, retry after)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.counters: dict[str, int] = {
            "dials": 0,
            "pinned_dials": 0,  # to the peer's own TLS endpoint
            "dial_failures": 0,
            "remote_ends": 0,
            "gossip_chat": 0,
        }
        rooms.listener = self
        cluster.on_room_change(self._on_room_change)
        cluster.on_member_change(self._on_member_change)

    @property
    def relay_id(self) -> str:
        return self.cluster.node_id

    # -- RoomListener: local changes into the cluster ---------------------------------------------------

    def changed(self, room: Room) -> None:
        mid = room.meeting_id
        if room.ended:
            return
        now_p = {p.id: (p.name, p.role) for p in room.participants.values()}
        now_t: dict[TrackKey, tuple[str, str, bool]] = {}
        for participant in room.participants.values():
            for track, info in participant.tracks:
                muted = participant.muted.get(info.source, False)
                now_t[(participant.id, track.track_id)] = (info.kind, info.source, muted)
        known_p, known_t = self._participants[mid], self._tracks[mid]
        for (pid, tid), value in now_t.items():
            if known_t.get((pid, tid)) != value:
                self.cluster.publish_track(mid, pid, tid, value[0], value[1], value[2])
        for pid, tid in set(known_t) - set(now_t):
            if pid in now_p:  # a leave tombstones the participant's tracks with it
                self.cluster.unpublish_track(mid, pid, tid)
        for pid, (name, role) in now_p.items():
            if known_p.get(pid) != (name, role):
                self.cluster.join(mid, pid, name, role)
        for pid in set(known_p) - set(now_p):
            self.cluster.leave(mid, pid)
        if now_p:
            self._participants[mid], self._tracks[mid] = now_p, now_t
        else:
            self._participants.pop(mid, None)
            self._tracks.pop(mid, None)
        self._schedule(self.reconcile(mid))

    def ended(self, meeting_id: str, reason: str) -> None:
        self.cluster.end_meeting(meeting_id, reason)
        self._participants.pop(meeting_id, None)
        self._tracks.pop(meeting_id, None)

    def revoked(self, meeting_id: str, participant_id: str, generation: int) -> None:
        self.cluster.revoke(meeting_id, participant_id, generation)

    def chat(self, room: Room, event: dict[str, Any]) -> None:
        sender = str(event.get("participant_id", ""))
        self.cluster.add_chat(room.meeting_id, str(event["message_id"]), sender, str(event.get("text", "")))

    # -- cluster callbacks: other relays' changes act here --------------------------------------------

    async def _on_room_change(self, meeting_id: str, diff: RoomDiff) -> None:
        if diff.ended is not None:
            self.counters["remote_ends"] += 1
            self._participants.pop(meeting_id, None)
            self._tracks.pop(meeting_id, None)
            await self.rooms.end_meeting(meeting_id, diff.ended.reason, spread=False)
            return
        for participant_id, generation in diff.revoked:
            await self.rooms.revoke(meeting_id, participant_id, generation, spread=False)
        room = self.rooms.rooms.get(meeting_id)
        if room is None:
            return
        state = self.cluster.room(meeting_id)
        names = {pid: e.name for pid, e in state.p.items()} if state else {}
        for message in diff.chat:
            event = {
                "type": "chat",
                "participant_id": message.sender,
                "name": names.get(message.sender, ""),
                "message_id": message.message_id,
                "text": message.text,
            }
            if await room.deliver_chat(event):
                self.counters["gossip_chat"] += 1
        await self.reconcile(meeting_id)

    async def _on_member_change(self, kind: str, member: Member) -> None:
        if kind != "update":  # load and metadata changes are routine; the rest is worth a line
            log.info("cluster member", extra={"change": kind, "peer": member.id, "region": member.region})
        if kind in ("dead", "left"):
            for key in [k for k in self._failures if k[1] == member.id]:
                del self._failures[key]
            for room in list(self.rooms.rooms.values()):
                link = room.links.get(member.id)
                if link is not None:
                    log.info("relay unreachable: link dropped", extra={"peer": member.id})
                    await room.remove_link(link)
        elif kind in ("join", "alive"):
            await self.reconcile_all()

    # -- links ------------------------------------------------------------------------------------------

    async def reconcile_all(self) -> None:
        for meeting_id in list(self.rooms.rooms):
            await self.reconcile(meeting_id)

    async def reconcile(self, meeting_id: str) -> None:
        """Dial every live relay that has participants in this meeting and no link to us yet."""
        room = self.rooms.rooms.get(meeting_id)
        if room is None or room.ended or not room.participants:
            return
        others = {p.relay_id for p in self.cluster.live_participants(meeting_id).values()}
        for relay_id in sorted(others - {self.relay_id} - set(room.links)):
            key = (meeting_id, relay_id)
            if self.relay_id > relay_id or key in self._dialing:
                continue  # the peer dials us, or we are dialing already
            _, retry_after = self._failures.get(key, (0, 0.0))
            member = self.cluster.member(relay_id)
            if time.monotonic() < retry_after or member is None or not member.signalling_url:
                continue
            self._dialing.add(key)
            self._schedule(self._dial(room, member))

    async def _dial(self, room: Room, member: Member) -> None:
        key = (room.meeting_id, member.id)
        self.counters["dials"] += 1
        # The peer's own TLS endpoint when it has one (pinned by the gossiped fingerprint), else the
        # URL its clients use.
        url, pin = member.signalling_url, None
        if member.cascade_url and member.extra.get(CERT_KEY):
            url, pin = member.cascade_url, member.extra[CERT_KEY]
            self.counters["pinned_dials"] += 1
        link = None
        try:
            link = await cascade.dial(room, member.id, url, self.secret, self.stun_servers, pin)
            if room.ended or not room.participants or self.rooms.rooms.get(room.meeting_id) is not room:
                await link.close()
                return
            await room.add_link(link)
            self._failures.pop(key, None)
            log.info("relay linked", extra={"meeting_id": room.meeting_id, "peer": member.id})
        except Exception as exc:
            self.counters["dial_failures"] += 1
            count = self._failures.get(key, (0, 0.0))[0] + 1
            backoff = min(self.max_backoff_s, 0.5 * 2**count)
            self._failures[key] = (count, time.monotonic() + backoff)
            log.warning("dial failed", extra={"peer": member.id, "error": repr(exc)[:200]})
            if link is not None:
                with contextlib.suppress(Exception):
                    await link.close()
        finally:
            self._dialing.discard(key)

    async def run(self) -> None:
        """Reconcile every room periodically: the safety net under the event-driven path."""
        while True:
            await asyncio.sleep(self.reconcile_interval_s)
            try:
                await self.reconcile_all()
            except Exception:
                log.exception("reconcile failed")

    def _schedule(self, coro: Any) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no running loop: nothing to dial
            coro.close()
            return
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
