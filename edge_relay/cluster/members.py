"""Member records and the SWIM state rules (pure: no I/O, so every rule is unit-tested directly).

Each member has an incarnation number that only it increases. A suspicion or death claim carries the
incarnation it is about; a member that hears itself suspected (or declared dead by a healed partition)
announces itself alive with a higher incarnation, which overrides the claim everywhere ("refutation",
SWIM section 4.2). Metadata changes (load) ride on the same mechanism: bump, announce alive.

Order of strength at equal incarnation: alive < suspect < dead/left, so a stale "alive" never cancels a
newer suspicion. A death learnt from push-pull (a full state from one peer) is taken as a suspicion only,
as in memberlist: one peer's stale view must not kill a member outright.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, NamedTuple


class State(IntEnum):
    ALIVE = 0
    SUSPECT = 1
    DEAD = 2
    LEFT = 3


@dataclass
class Member:
    """A relay in the cluster, with what the cascade and the API need to know about it."""

    id: str
    host: str
    port: int
    incarnation: int = 0
    state: State = State.ALIVE
    region: str = ""
    signalling_url: str = ""
    cascade_url: str = ""
    load: float = 0.0
    extra: dict[str, str] = field(default_factory=dict)
    #: Local monotonic time of the last state change (not gossiped).
    since: float = 0.0

    @property
    def addr(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def live(self) -> bool:
        return self.state in (State.ALIVE, State.SUSPECT)

    def to_wire(self) -> list[Any]:
        return [
            self.id, self.incarnation, int(self.state), self.host, self.port, self.region,
            self.signalling_url, self.cascade_url, self.load, self.extra,
        ]  # fmt: skip

    @classmethod
    def from_wire(cls, row: Any) -> Member:
        """Validate a peer's record; raises ValueError on anything malformed."""
        if not isinstance(row, list) or len(row) < 10:
            raise ValueError("member record is not a 10-item list")
        mid, inc, state, host, port, region, sig, casc, load, extra = row[:10]
        strings = (mid, host, region, sig, casc)
        if not all(isinstance(s, str) for s in strings) or not mid or not host:
            raise ValueError("member record: bad strings")
        if type(inc) is not int or type(port) is not int or type(state) is not int:
            raise ValueError("member record: bad integers")
        if inc < 0 or not 0 < port < 65536 or state not in State._value2member_map_:
            raise ValueError("member record: out of range")
        if isinstance(load, bool) or not isinstance(load, int | float):
            raise ValueError("member record: bad load")
        if not isinstance(extra, dict) or not all(isinstance(v, str) for v in extra.values()):
            raise ValueError("member record: bad extra")
        return cls(mid, host, port, inc, State(state), region, sig, casc, float(load), dict(extra))

    def snapshot(self) -> Member:
        return dataclasses.replace(self, extra=dict(self.extra))


class Change(NamedTuple):
    """What applying an update did: ``kind`` is join, alive (revived), update, suspect, dead, left or
    refute (we were the subject and re-announced ourselves); ``member`` is the record to re-gossip."""

    kind: str
    member: Member
    previous: State | None


class MemberTable:
    def __init__(self, local: Member, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        local.since = clock()
        self.local = local
        self.members: dict[str, Member] = {local.id: local}
        self.leaving = False

    def get(self, member_id: str) -> Member | None:
        return self.members.get(member_id)

    def others(self, *states: State) -> list[Member]:
        wanted = states or (State.ALIVE, State.SUSPECT)
        return [m for m in self.members.values() if m is not self.local and m.state in wanted]

    def live_count(self) -> int:
        return 1 + len(self.others())

    def _set(self, m: Member, state: State, incarnation: int) -> None:
        if m.state != state:
            m.since = self.clock()
        m.state, m.incarnation = state, incarnation

    def bump_local(self, **meta: Any) -> Change:
        """Change our metadata (or just refute): a higher incarnation makes everyone take the new record."""
        unknown = set(meta) - {"region", "signalling_url", "cascade_url", "load", "extra"}
        if unknown:
            raise ValueError(f"not member metadata: {sorted(unknown)}")
        for key, value in meta.items():
            setattr(self.local, key, value)
        self.local.incarnation += 1
        return Change("refute", self.local, State.ALIVE)

    def apply(self, upd: Member, from_push_pull: bool = False) -> Change | None:
        if upd.id == self.local.id:
            return self._about_me(upd)
        state = State.SUSPECT if from_push_pull and upd.state == State.DEAD else upd.state
        m = self.members.get(upd.id)
        if state == State.ALIVE:
            if m is None:
                upd.since = self.clock()
                self.members[upd.id] = upd
                return Change("join", upd, None)
            if upd.incarnation <= m.incarnation:
                return None
            previous = m.state
            m.host, m.port = upd.host, upd.port
            m.region, m.signalling_url, m.cascade_url = upd.region, upd.signalling_url, upd.cascade_url
            m.load, m.extra = upd.load, upd.extra
            self._set(m, State.ALIVE, upd.incarnation)
            return Change("update" if previous == State.ALIVE else "alive", m, previous)
        if m is None or upd.incarnation < m.incarnation:
            return None  # a suspicion or death of a member we never saw alive tells us nothing useful
        previous = m.state
        if state == State.SUSPECT:
            if previous in (State.DEAD, State.LEFT) or (
                previous == State.SUSPECT and upd.incarnation == m.incarnation
            ):
                return None
            self._set(m, State.SUSPECT, upd.incarnation)
            return Change("suspect", m, previous)
        if previous == State.LEFT or (previous == State.DEAD and state == State.DEAD):
            return None
        self._set(m, state, upd.incarnation)
        return Change("left" if state == State.LEFT else "dead", m, previous)

    def _about_me(self, upd: Member) -> Change | None:
        if self.leaving:
            return None
        refute = upd.incarnation > self.local.incarnation or (
            upd.state != State.ALIVE and upd.incarnation == self.local.incarnation
        )
        if not refute:
            return None
        self.local.incarnation = upd.incarnation
        return self.bump_local()

    def expire_suspect(self, member_id: str, incarnation: int) -> Change | None:
        """The suspicion timer ran out: dead, unless the member refuted (or was re-suspected) since."""
        m = self.members.get(member_id)
        if m is None or m.state != State.SUSPECT or m.incarnation != incarnation:
            return None
        self._set(m, State.DEAD, incarnation)
        return Change("dead", m, State.SUSPECT)

    def forget(self, older_than: float, *states: State) -> list[str]:
        """Drop members dead or left for longer than ``older_than`` seconds (keeps the table bounded)."""
        now = self.clock()
        gone = [
            mid for mid, m in self.members.items()
            if m is not self.local and m.state in states and now - m.since > older_than
        ]  # fmt: skip
        for mid in gone:
            del self.members[mid]
        return gone
