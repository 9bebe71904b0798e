"""The cluster as the relay sees it: live members with metadata, and every meeting's merged state.

Room changes are recorded locally as one-entry CRDT deltas, merged into the local state, and spread
three ways: piggybacked on SWIM datagrams when the delta fits one (the common case: a join is ~80
bytes); pushed over TCP to ``gossip_nodes`` peers when it does not (a healed partition's backlog); and
reconciled by push-pull anti-entropy over TCP every ``push_pull_interval_s`` with one random peer, and
every ``reconnect_interval_s`` with a dead member or an unreached seed, which is how a healed partition
finds itself again. Push-pull sends digests first, then only the rooms that differ. Whatever a merge
takes from a peer is re-gossiped, so one exchange across a healed link reaches both whole sides.

Every room is replicated to every relay: rooms are small (tens of entries) and a relay must know where
a participant is before it has any of its own in the meeting.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

from edge_relay.cluster.config import ClusterConfig
from edge_relay.cluster.crdt import DecodeError, RoomState
from edge_relay.cluster.hlc import HLC
from edge_relay.cluster.local_ops import LocalRoomOps, RoomCallback
from edge_relay.cluster.members import Change, Member, State
from edge_relay.cluster.swim import ENVELOPE_RESERVE, Swim, cancel_all
from edge_relay.cluster.transport import Addr, FaultInjector, Stream
from edge_relay.cluster.wire import encoded_size

log = logging.getLogger("edge_relay.cluster")

PUSH_PULL, PUSH_PULL_REPLY, PUSH_PULL_FINAL, PUSH = 10, 11, 12, 13
MemberCallback = Callable[[str, Member], Any]


class Cluster(LocalRoomOps):
    """One relay's view of the cluster. Record changes with the methods of ``LocalRoomOps`` (join, leave,
    publish_track, unpublish_track, end_meeting, add_chat), read ``rooms`` / ``room()`` / ``members()``."""

    def __init__(self, config: ClusterConfig, faults: FaultInjector | None = None) -> None:
        self.config = config
        self.faults = faults
        self.swim = Swim(config, self._on_stream, faults)
        self.swim.on_rooms = self._on_room_items
        self.swim.listeners.append(self._on_member_change)
        self.clock = HLC(config.node_id, max_offset_ms=int(config.replay_window_s * 1000))
        self.rooms: dict[str, RoomState] = {}
        self._local: dict[str, dict[str, tuple[str, str]]] = {}
        self._member_callbacks: list[MemberCallback] = []
        self._room_callbacks: list[RoomCallback] = []
        self._evicted: set[tuple[str, int]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self.counters: dict[str, int] = {
            "push_pulls": 0,
            "push_pull_failures": 0,
            "pushes": 0,
            "room_merges": 0,
        }

    # -- lifecycle ----------------------------------------------------------------------------------

    @property
    def address(self) -> Addr:
        """Where peers reach this relay (UDP and TCP): give it to others as a seed."""
        return self.swim.local.addr

    async def start(self) -> None:
        await self.swim.start()
        seeds = [_parse_addr(s) for s in self.config.seeds]
        await asyncio.gather(*(self.push_pull(a) for a in seeds if a != self.address))
        loops = (self._push_pull_loop, self._reconnect_loop, self._maintenance_loop)
        self._tasks = [asyncio.create_task(loop()) for loop in loops]

    def add_seeds(self, seeds: list[str]) -> None:
        """More initial peers (e.g. the registry's relays); the reconnect loop tries unreached ones."""
        self.config.seeds = tuple(dict.fromkeys([*self.config.seeds, *seeds]))

    async def stop(self, leave: bool = True) -> None:
        """Leave gracefully (others mark us left at once), or ``leave=False`` to vanish as if crashed."""
        self.swim.running = False
        await cancel_all([*self._tasks, *self._background])
        await self.swim.stop(leave)

    # -- members ------------------------------------------------------------------------------------

    def members(self, include_self: bool = False, include_suspect: bool = True) -> list[Member]:
        """Live relays (snapshots). Suspects count as live until declared dead, as in SWIM."""
        states = (State.ALIVE, State.SUSPECT) if include_suspect else (State.ALIVE,)
        found = [m.snapshot() for m in self.swim.table.others(*states)]
        return [self.swim.local.snapshot(), *found] if include_self else found

    def member(self, member_id: str) -> Member | None:
        m = self.swim.table.get(member_id)
        return None if m is None else m.snapshot()

    def on_member_change(self, callback: MemberCallback) -> None:
        """``callback(kind, member)``: kind is join, alive, update, suspect, dead or left."""
        self._member_callbacks.append(callback)

    def update_meta(self, **meta: Any) -> None:
        """Change our gossiped metadata (load, urls, region, extra): spreads as a new incarnation."""
        self.swim.handle(self.swim.table.bump_local(**meta))

    def _on_member_change(self, change: Change) -> None:
        if change.kind != "refute":
            for callback in self._member_callbacks:
                self._call(callback, change.kind, change.member.snapshot())

    # -- rooms: dissemination and merging -----------------------------------------------------------

    def _spread(self, meeting_id: str, delta: RoomState) -> None:
        if delta.is_empty():
            return
        queued = self.swim.broadcasts.queued("r", meeting_id)
        if queued is not None:  # fold into the delta still being gossiped for this room
            queued = RoomState.from_wire(meeting_id, queued.to_wire(), self.config.chat_keep)
            queued.merge(delta)
            delta = queued
        wire = [meeting_id, delta.to_wire()]
        if encoded_size(wire) <= self.config.max_datagram - ENVELOPE_RESERVE - 16:
            self.swim.broadcasts.put("r", meeting_id, wire, delta)
            return
        targets = self.swim.gossip_targets(self.config.gossip_nodes)
        for m in targets:
            self._spawn(self._push(m.addr, {meeting_id: delta.to_wire()}))

    def _on_room_items(self, items: Any) -> None:
        if not isinstance(items, list):
            raise ValueError("room items are not a list")
        self.merge_rooms({str(mid): wire for mid, wire in items})

    def merge_rooms(self, rooms: Any) -> None:
        """Merge remote room states (push-pull, push or piggyback); fire callbacks; re-gossip winners."""
        if not isinstance(rooms, dict):
            raise ValueError("rooms are not a map")
        for meeting_id, wire in rooms.items():
            try:
                remote = RoomState.from_wire(str(meeting_id), wire, self.config.chat_keep)
            except DecodeError:
                self.swim.codec.rejected["malformed_room"] += 1
                continue
            stamp = remote.max_ts()
            if stamp is not None:
                self.clock.observe(stamp)
            room = self.rooms.setdefault(
                remote.meeting_id, RoomState(remote.meeting_id, self.config.chat_keep)
            )
            won, diff = room.merge(remote)
            self.counters["room_merges"] += 1
            self._spread(remote.meeting_id, won)
            if diff:
                self._reassert(remote.meeting_id, room)
                for callback in self._room_callbacks:
                    self._call(callback, remote.meeting_id, diff)

    def _reassert(self, meeting_id: str, room: RoomState) -> None:
        """Our participant is still connected here (``_local`` forgets it when it leaves us), yet the
        merged state says otherwise:

        - evicted by the other side of a partition: we are alive, so put it back;
        - tombstoned by another relay (that relay closed its own, older session of the participant, but
          late: after the participant had joined us, during a partition): put it back too;
        - present on another relay (a later join elsewhere): no longer ours.
        """
        local = self._local.get(meeting_id, {})
        for pid, (name, role) in list(local.items()):
            entry = room.p.get(pid)
            if entry is None or (entry.present and entry.relay_id != self.node_id) or room.ended:
                local.pop(pid)
            elif not entry.present and (entry.reason == "evicted" or entry.relay_id != self.node_id):
                self.join(meeting_id, pid, name, role)
            elif not entry.present:
                local.pop(pid)

    # -- push-pull anti-entropy over TCP ------------------------------------------------------------

    def _digests(self) -> dict[str, str]:
        return {mid: room.digest().hex() for mid, room in self.rooms.items()}

    def _member_rows(self) -> list[Any]:
        return [m.to_wire() for m in self.swim.table.members.values()]

    async def push_pull(self, addr: Addr) -> bool:
        """Exchange member tables and differing rooms with one peer; False if it could not be reached."""
        codec = self.swim.codec
        try:
            stream = await self.swim.transport.connect(addr)
        except (OSError, TimeoutError):
            self.counters["push_pull_failures"] += 1
            return False
        try:
            await stream.send(codec.seal(PUSH_PULL, {"m": self._member_rows(), "d": self._digests()}))
            reply = codec.open(await stream.recv())
            if reply is None or reply.kind != PUSH_PULL_REPLY or not isinstance(reply.payload, dict):
                raise ValueError("bad push-pull reply")
            self.swim.merge_members(reply.payload.get("m", []), from_push_pull=True)
            self.merge_rooms(reply.payload.get("r", {}))
            wanted = reply.payload.get("w", [])
            rooms = {mid: self.rooms[mid].to_wire() for mid in wanted if mid in self.rooms}
            await stream.send(codec.seal(PUSH_PULL_FINAL, {"r": rooms}))
            self.counters["push_pulls"] += 1
            return True
        except (OSError, TimeoutError, ValueError, TypeError, asyncio.IncompleteReadError) as exc:
            self.counters["push_pull_failures"] += 1
            log.debug("push-pull with %s failed: %r", addr, exc)
            return False
        finally:
            await stream.close()

    async def _push(self, addr: Addr, rooms: dict[str, Any]) -> None:
        with contextlib.suppress(OSError, TimeoutError):
            stream = await self.swim.transport.connect(addr)
            try:
                await stream.send(self.swim.codec.seal(PUSH, {"r": rooms}))
                self.counters["pushes"] += 1
            finally:
                await stream.close()

    async def _on_stream(self, stream: Stream) -> None:
        codec = self.swim.codec
        msg = codec.open(await stream.recv())
        if msg is None or not isinstance(msg.payload, dict):
            return
        if msg.kind == PUSH:
            self.merge_rooms(msg.payload.get("r", {}))
            return
        if msg.kind != PUSH_PULL:
            return
        self.swim.merge_members(msg.payload.get("m", []), from_push_pull=True)
        theirs = msg.payload.get("d", {})
        if not isinstance(theirs, dict):
            raise ValueError("digests are not a map")
        mine = self._digests()
        differing = {mid: self.rooms[mid].to_wire() for mid, d in mine.items() if theirs.get(mid) != d}
        want = [mid for mid, d in theirs.items() if mine.get(mid) != d]
        await stream.send(codec.seal(PUSH_PULL_REPLY, {"m": self._member_rows(), "r": differing, "w": want}))
        if want:
            final = codec.open(await stream.recv())
            if final is not None and final.kind == PUSH_PULL_FINAL and isinstance(final.payload, dict):
                self.merge_rooms(final.payload.get("r", {}))

    # -- background loops ---------------------------------------------------------------------------

    async def _push_pull_loop(self) -> None:
        while self.swim.running:
            interval = self.config.push_pull_interval_for(self.swim.table.live_count())
            await asyncio.sleep(interval * (0.75 + 0.5 * self.swim.rng.random()))
            peers = self.swim.table.others(State.ALIVE)
            if peers:
                await self.push_pull(self.swim.rng.choice(peers).addr)

    async def _reconnect_loop(self) -> None:
        """Retry one dead member or unreached seed per interval: how a healed partition merges again."""
        while self.swim.running:
            await asyncio.sleep(self.config.reconnect_interval_s * (0.75 + 0.5 * self.swim.rng.random()))
            live = {m.addr for m in self.swim.table.others()} | {self.address}
            candidates = [m.addr for m in self.swim.table.others(State.DEAD)]
            candidates += [a for a in map(_parse_addr, self.config.seeds) if a not in live]
            if candidates:
                await self.push_pull(self.swim.rng.choice(candidates))

    async def _maintenance_loop(self) -> None:
        while self.swim.running:
            await asyncio.sleep(1.0)
            self.swim.codec.prune()
            self._evict_dead()
            cutoff = time.time() - self.config.ended_retention_s
            for mid in [mid for mid, r in self.rooms.items() if r.ended and r.ended.ts.seconds < cutoff]:
                del self.rooms[mid]
            self.swim.table.forget(max(self.config.evict_after_s * 2, 3600.0), State.DEAD, State.LEFT)

    def _evict_dead(self) -> None:
        """Tombstone the participants of relays dead for ``evict_after_s``; one evictor per side: the
        live member with the smallest id (the others would only write the same tombstones again)."""
        now = self.swim.table.clock()
        dead = [
            m for m in self.swim.table.others(State.DEAD, State.LEFT)
            if now - m.since >= self.config.evict_after_s and (m.id, m.incarnation) not in self._evicted
        ]  # fmt: skip
        if not dead or min(m.id for m in self.members(include_self=True)) != self.node_id:
            return
        for m in dead:
            self._evicted.add((m.id, m.incarnation))
            for mid, room in list(self.rooms.items()):
                for pid, entry in list(room.p.items()):
                    if entry.present and entry.relay_id == m.id:
                        self._tombstone(mid, pid, "evicted")

    # -- helpers --------------------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _call(self, callback: Callable[..., Any], *args: Any) -> None:
        try:
            result = callback(*args)
            if inspect.isawaitable(result):
                self._spawn(result)
        except Exception:
            log.exception("cluster callback failed")

    def stats(self) -> dict[str, Any]:
        t = self.swim.transport.stats
        return {
            **dict(t), **self.counters, "rejected": dict(self.swim.codec.rejected),
            "accepted": self.swim.codec.accepted, "members": len(self.members()), "rooms": len(self.rooms),
        }  # fmt: skip


def _parse_addr(value: str) -> Addr:
    host, _, port = value.rpartition(":")
    return (host.strip("[]") or "127.0.0.1", int(port))
