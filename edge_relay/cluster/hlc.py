"""Hybrid logical clock (Kulkarni et al., 2014) for last-writer-wins room state.

Why not wall time alone: relays in different regions disagree by a few milliseconds (NTP) and a wall
clock can step back, so "leave after join" on two relays could order the wrong way. Why not a Lamport
counter alone (what Yjs and Loro use): concurrent writes during a partition would then be decided by op
counts and peer ids, not by which happened later in real time; a participant who moved from relay A to B
must end up on B. An HLC stays close to wall time, never goes backwards, and is pushed past every
timestamp a relay has seen, so a causally later write always carries a larger timestamp.

A timestamp is ``(wall_ms, counter, node)``: the node id makes the order total (two relays never produce
the same timestamp), which is what makes LWW merges deterministic.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple


class Ts(NamedTuple):
    """An HLC timestamp; tuples compare lexicographically, which is the HLC order."""

    wall: int
    counter: int
    node: str

    @property
    def seconds(self) -> float:
        return self.wall / 1000.0


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class HLC:
    """One clock per relay. ``now()`` for local events, ``observe()`` for timestamps merged from peers."""

    def __init__(self, node: str, clock: Callable[[], int] = wall_ms, max_offset_ms: int = 60_000) -> None:
        self.node = node
        self._clock = clock
        #: A remote timestamp further than this ahead of our wall clock is not adopted: one relay with a
        #: broken clock must not drag every other clock (and so every later write) into the future.
        self.max_offset_ms = max_offset_ms
        self._wall = 0
        self._counter = 0
        self.rejected_offsets = 0

    def now(self) -> Ts:
        physical = self._clock()
        if physical > self._wall:
            self._wall, self._counter = physical, 0
        else:
            self._counter += 1
        return Ts(self._wall, self._counter, self.node)

    def observe(self, remote: Ts) -> None:
        """Advance past ``remote`` so that our next event orders after it (receive rule of the HLC)."""
        physical = self._clock()
        if remote.wall > physical + self.max_offset_ms:
            self.rejected_offsets += 1
            return
        if remote.wall > self._wall:
            self._wall, self._counter = remote.wall, remote.counter
        elif remote.wall == self._wall:
            self._counter = max(self._counter, remote.counter)
        # The next now() adds one to the counter (or moves to a newer wall time), so it is > remote.

    @property
    def last(self) -> Ts:
        return Ts(self._wall, self._counter, self.node)
