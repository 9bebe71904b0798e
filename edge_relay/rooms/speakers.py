"""Who is speaking in a room, and who the dominant speaker is, from the audio levels of its tracks.

Each tick the room hands in the smoothed level of every audio track it forwards (its own participants'
and the linked relays', so every relay of a cascaded meeting ranks the same voices). ``speakers`` are
those whose level counts as speech, loudest first. The **dominant** speaker changes with hysteresis,
as Jitsi's dominant speaker identification does (in spirit, not its three-window model): another
participant must be the loudest for ``DOMINANT_HOLD_S`` before taking over, and the dominant speaker
stays dominant through silence (a pause in a sentence does not empty the stage), until someone else
speaks or it leaves. ``update`` returns a new ``Speakers`` only when who speaks, their order or the
dominant changed (the levels it carries are a snapshot), so clients hear of changes, not of every tick.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

DOMINANT_HOLD_S = 1.0


@dataclass(frozen=True)
class Speakers:
    """Who speaks now (loudest first, with levels 0..1) and the dominant speaker."""

    levels: tuple[tuple[str, float], ...]
    dominant: str | None

    @property
    def ids(self) -> list[str]:
        return [pid for pid, _ in self.levels]


class SpeakerDetector:
    """Ranks a room's participants by their voices; one per room."""

    def __init__(self) -> None:
        self.current = Speakers((), None)
        self._candidate: str | None = None
        self._candidate_since = 0.0

    def update(self, levels: Mapping[str, tuple[float, bool]], now: float) -> Speakers | None:
        """``levels`` maps participant id to (linear level, speaking) for everyone who publishes audio.

        Returns the new state if what clients should see changed, else None.
        """
        speaking = sorted(
            ((pid, level) for pid, (level, active) in levels.items() if active),
            key=lambda item: (-item[1], item[0]),
        )
        dominant = self._dominant(speaking, levels, now)
        new = Speakers(tuple((pid, round(min(1.0, level), 3)) for pid, level in speaking), dominant)
        changed = new.ids != self.current.ids or dominant != self.current.dominant
        self.current = new
        return new if changed else None

    def _dominant(
        self, speaking: list[tuple[str, float]], levels: Mapping[str, object], now: float
    ) -> str | None:
        dominant = self.current.dominant
        if dominant is not None and dominant not in levels:
            dominant = None  # left, or stopped publishing audio
        loudest = speaking[0][0] if speaking else None
        if loudest is None or loudest == dominant:
            self._candidate = None
            return dominant
        if dominant is None:  # nobody held the stage: the first voice takes it at once
            self._candidate = None
            return loudest
        if loudest != self._candidate:
            self._candidate, self._candidate_since = loudest, now
        if now - self._candidate_since >= DOMINANT_HOLD_S:
            self._candidate = None
            return loudest
        return dominant
