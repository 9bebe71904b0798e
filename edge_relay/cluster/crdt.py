"""A meeting's shared state as a state-based CRDT (a join-semilattice), hand-written and small.

Why not pycrdt (Yjs) or Loro: their maps resolve concurrent writes by client id or Lamport order, so a
participant who left relay A and, during a partition, rejoined on relay B could end up "on A" depending
on peer ids; here every register is last-writer-wins by hybrid logical clock, i.e. by real time. Their
documents also keep history (a Yjs map with 2 000 join/leave writes encodes to 24 KB), while a room here
is a few dozen fixed-size entries that fit one datagram. The semantics needed are four textbook CRDTs:

- participants: an LWW-element map keyed by participant id; leave writes a tombstone (``present=False``)
  so that an older join arriving late cannot resurrect the participant;
- tracks: the same per ``(participant, track)``, the value being kind/source/muted;
- ended: a grow-only flag; once any replica has it, every merge keeps it (the earliest end wins the
  reason), and an ended room drops its participants, tracks and chat (they can no longer matter);
- chat: a grow-only set of notifications keyed by message id, bounded to the newest ``chat_keep``;
- revoked: per participant, the newest revoked generation of its join tokens (a max register: a
  participant who left through the API may not come back with a token issued before the leave).

Every merge is ``max`` over a total order (entries are NamedTuples led by their HLC timestamp) or a
bounded union, so merges are commutative, associative and idempotent;
tests/edge_relay/cluster/test_crdt.py checks that with hypothesis. ``merge`` returns the part of the
other state that won (a delta-state CRDT: that delta is what a relay re-gossips), plus a diff of the
visible state for the relay's callbacks.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from edge_relay.cluster.hlc import Ts


class PEntry(NamedTuple):
    ts: Ts
    present: bool
    relay_id: str
    name: str
    role: str
    reason: str  # of a tombstone: "left", "evicted" (the relay hosting it was dead), "moved"


class TEntry(NamedTuple):
    ts: Ts
    present: bool
    relay_id: str
    kind: str
    source: str
    muted: bool


class Ended(NamedTuple):
    ts: Ts
    reason: str
    by: str


class Chat(NamedTuple):
    ts: Ts
    sender: str
    text: str
    created_at: float


class Participant(NamedTuple):
    participant_id: str
    relay_id: str
    name: str
    role: str


class Track(NamedTuple):
    participant_id: str
    track_id: str
    kind: str
    source: str
    muted: bool
    relay_id: str


class ChatMessage(NamedTuple):
    message_id: str
    sender: str
    text: str
    created_at: float


@dataclass
class RoomDiff:
    """What a merge changed in the visible state of one meeting (what a relay has to act on)."""

    joined: list[Participant] = field(default_factory=list)  # new, or moved to another relay / renamed
    left: list[str] = field(default_factory=list)
    tracks_added: list[Track] = field(default_factory=list)  # new, or changed (mute flipped)
    tracks_removed: list[tuple[str, str]] = field(default_factory=list)
    ended: Ended | None = None
    chat: list[ChatMessage] = field(default_factory=list)
    revoked: list[tuple[str, int]] = field(default_factory=list)  # (participant id, generation)

    def __bool__(self) -> bool:
        return bool(
            self.joined
            or self.left
            or self.tracks_added
            or self.tracks_removed
            or self.ended
            or self.chat
            or self.revoked
        )


class DecodeError(ValueError):
    """A peer sent a room state that is not well-formed (counted and dropped, never raised further)."""


class RoomState:
    """One meeting. Mutate through ``merge`` (of a remote state or of a one-entry local delta) only."""

    def __init__(self, meeting_id: str, chat_keep: int = 200) -> None:
        self.meeting_id = meeting_id
        self.chat_keep = chat_keep
        self.p: dict[str, PEntry] = {}
        self.t: dict[str, dict[str, TEntry]] = {}
        self.ended: Ended | None = None
        self.c: dict[str, Chat] = {}
        self.r: dict[str, int] = {}
        self._digest: bytes | None = None

    # -- visible state ------------------------------------------------------------------------------

    def participants(self) -> dict[str, Participant]:
        return {pid: Participant(pid, e.relay_id, e.name, e.role) for pid, e in self.p.items() if e.present}

    def tracks(self) -> dict[tuple[str, str], Track]:
        """Published tracks of present participants, from the relay each participant is on now."""
        out: dict[tuple[str, str], Track] = {}
        for pid, tracks in self.t.items():
            owner = self.p.get(pid)
            if owner is None or not owner.present:
                continue
            for tid, e in tracks.items():
                if e.present and e.relay_id == owner.relay_id:
                    out[(pid, tid)] = Track(pid, tid, e.kind, e.source, e.muted, e.relay_id)
        return out

    def chat(self) -> list[ChatMessage]:
        items = sorted(self.c.items(), key=lambda kv: (kv[1], kv[0]))
        return [ChatMessage(mid, e.sender, e.text, e.created_at) for mid, e in items]

    # -- merge ----------------------------------------------------------------------------------------

    def merge(self, other: RoomState) -> tuple[RoomState, RoomDiff]:
        """Join ``other`` into this state. Returns (the entries of ``other`` that won, the visible diff)."""
        before_p, before_t, before_c = self.participants(), self.tracks(), set(self.c)
        won = RoomState(self.meeting_id, self.chat_keep)
        for pid, pe in other.p.items():
            mine = self.p.get(pid)
            if mine is None or pe > mine:
                self.p[pid] = won.p[pid] = pe
        for pid, tracks in other.t.items():
            for tid, te in tracks.items():
                mine_t = self.t.get(pid, {}).get(tid)
                if mine_t is None or te > mine_t:
                    self.t.setdefault(pid, {})[tid] = te
                    won.t.setdefault(pid, {})[tid] = te
        newly_ended = None
        if other.ended is not None and (self.ended is None or other.ended < self.ended):
            newly_ended = other.ended if self.ended is None else None
            self.ended = won.ended = other.ended
        for mid, ce in other.c.items():
            mine_c = self.c.get(mid)
            if mine_c is None or ce > mine_c:
                self.c[mid] = won.c[mid] = ce
        revoked = []
        for pid, generation in other.r.items():
            if generation > self.r.get(pid, -1):
                self.r[pid] = won.r[pid] = generation
                revoked.append((pid, generation))
        self._trim()
        won.c = {mid: e for mid, e in won.c.items() if mid in self.c}
        if self.ended is not None:
            won.p, won.t, won.c, won.r = {}, {}, {}, {}
        self._digest = None
        diff = RoomDiff(ended=newly_ended)
        if self.ended is None:
            after_p, after_t = self.participants(), self.tracks()
            diff.joined = [v for k, v in after_p.items() if before_p.get(k) != v]
            diff.left = [k for k in before_p if k not in after_p]
            diff.tracks_added = [v for k, v in after_t.items() if before_t.get(k) != v]
            diff.tracks_removed = [k for k in before_t if k not in after_t]
            diff.chat = [m for m in self.chat() if m.message_id not in before_c]
            diff.revoked = revoked
        return won, diff

    def _trim(self) -> None:
        if self.ended is not None:  # an ended meeting keeps only the flag: nothing else can matter now
            self.p, self.t, self.c, self.r = {}, {}, {}, {}
        elif len(self.c) > self.chat_keep:
            keep = sorted(self.c.items(), key=lambda kv: (kv[1], kv[0]))[-self.chat_keep :]
            self.c = dict(keep)

    def is_empty(self) -> bool:
        return not (self.p or self.t or self.ended or self.c or self.r)

    def max_ts(self) -> Ts | None:
        stamps = [e.ts for e in self.p.values()] + [e.ts for e in self.c.values()]
        stamps += [e.ts for tracks in self.t.values() for e in tracks.values()]
        if self.ended is not None:
            stamps.append(self.ended.ts)
        return max(stamps, default=None)

    # -- wire form ------------------------------------------------------------------------------------

    def to_wire(self) -> dict[str, Any]:
        """Compact, canonical (sorted) plain form: lists, str, int, float, bool only (msgpack or JSON)."""
        out: dict[str, Any] = {}
        if self.p:
            out["p"] = [[k, *_flat(e)] for k, e in sorted(self.p.items())]
        if self.t:
            out["t"] = [
                [k, [[tk, *_flat(e)] for tk, e in sorted(v.items())]] for k, v in sorted(self.t.items())
            ]
        if self.ended is not None:
            out["e"] = _flat(self.ended)
        if self.c:
            out["c"] = [[k, *_flat(e)] for k, e in sorted(self.c.items())]
        if self.r:
            out["r"] = [[k, v] for k, v in sorted(self.r.items())]
        return out

    @classmethod
    def from_wire(cls, meeting_id: str, data: Any, chat_keep: int = 200) -> RoomState:
        if not isinstance(data, dict):
            raise DecodeError("room is not a map")
        room = cls(meeting_id, chat_keep)
        try:
            for row in data.get("p", []):
                room.p[_str(row[0])] = PEntry(_ts(row[1:4]), _bool(row[4]), *map(_str, row[5:9]))
            for pid, tracks in data.get("t", []):
                for row in tracks:
                    room.t.setdefault(_str(pid), {})[_str(row[0])] = TEntry(
                        _ts(row[1:4]), _bool(row[4]), _str(row[5]), _str(row[6]), _str(row[7]), _bool(row[8])
                    )
            if "e" in data:
                row = data["e"]
                room.ended = Ended(_ts(row[0:3]), _str(row[3]), _str(row[4]))
            for row in data.get("c", []):
                room.c[_str(row[0])] = Chat(_ts(row[1:4]), _str(row[4]), _str(row[5]), _float(row[6]))
            for pid, generation in data.get("r", []):
                room.r[_str(pid)] = _int(generation)
        except (IndexError, TypeError, ValueError) as exc:
            raise DecodeError(f"malformed room {meeting_id!r}: {exc!r}"[:200]) from None
        room._trim()
        return room

    def digest(self) -> bytes:
        """8-byte hash of the canonical form: push-pull exchanges digests and sends only rooms that differ."""
        if self._digest is None:
            self._digest = hashlib.blake2b(repr(self.to_wire()).encode(), digest_size=8).digest()
        return self._digest

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RoomState) and self.to_wire() == other.to_wire()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RoomState({self.meeting_id!r}, {self.to_wire()!r})"


def _flat(entry: NamedTuple) -> list[Any]:
    ts, *rest = entry
    return [ts.wall, ts.counter, ts.node, *rest]


def _ts(row: Any) -> Ts:
    wall, counter, node = row
    if type(wall) is not int or type(counter) is not int or wall < 0 or counter < 0:
        raise DecodeError("bad timestamp")
    return Ts(wall, counter, _str(node))


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise DecodeError("expected a string")
    return value


def _int(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise DecodeError("expected a non-negative integer")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise DecodeError("expected a bool")
    return value


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DecodeError("expected a number")
    return float(value)
