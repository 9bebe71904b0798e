"""How loud a published audio track is, from the sender's RFC 6464 audio levels (no decoding).

Every audio packet of a WebRTC sender (browsers, aiortc) carries the ``ssrc-audio-level`` header
extension: one byte, V (voice activity) and the level in -dBov, 0 the loudest and 127 silence. Like
LiveKit's ``AudioLevel`` (pkg/sfu/audio/audiolevel.go), a track is observed in windows of
``OBSERVE_MS``: a window counts as speech when at least ``MIN_PERCENTILE`` % of it was at or above
``ACTIVE_LEVEL``, and its loudest level, weighted by how much of the window was speech, feeds an
exponential moving average (``SMOOTH_INTERVALS``) in linear amplitude. Short noises (a cough, a
click) stay below the percentile; a talker crosses it within one window. A track that sends nothing
for two windows reads as silent.
"""

from __future__ import annotations

import math

ACTIVE_LEVEL = 35  # -dBov: louder than this counts as speech (LiveKit's default)
MIN_PERCENTILE = 40  # % of a window that must be speech
OBSERVE_MS = 400  # LiveKit's default update interval
SMOOTH_INTERVALS = 2
SILENT = 127
DEFAULT_PACKET_MS = 20  # Opus' usual frame
MAX_PACKET_MS = 120  # Opus' longest frame: a timestamp jump beyond this is a gap, not a long frame


def linear(level_dbov: float) -> float:
    """-dBov to linear amplitude (0 dBov -> 1.0, 127 -> ~4e-7)."""
    return math.pow(10, -level_dbov / 20)


ACTIVE_THRESHOLD = linear(ACTIVE_LEVEL)


class AudioLevel:
    """One audio track's smoothed level, observed packet by packet."""

    __slots__ = ("_active_ms", "_last_at_ms", "_last_ts", "_loudest", "_observed_ms", "_smoothed")

    def __init__(self) -> None:
        self._smoothed = 0.0
        self._loudest = SILENT
        self._active_ms = 0
        self._observed_ms = 0
        self._last_at_ms = -1e18
        self._last_ts: int | None = None

    def observe(self, value: int, timestamp: int, clock_rate: int, now_ms: float) -> None:
        """One packet: ``value`` is the extension's byte (V bit and level), ``timestamp`` its RTP time."""
        level = value & 0x7F
        duration = DEFAULT_PACKET_MS
        if self._last_ts is not None:
            step = (timestamp - self._last_ts) & 0xFFFFFFFF
            ms = step * 1000 // clock_rate
            if 0 < ms <= MAX_PACKET_MS:
                duration = ms
        self._last_ts = timestamp
        self._last_at_ms = now_ms
        self._observed_ms += duration
        if level <= ACTIVE_LEVEL:
            self._active_ms += duration
            self._loudest = min(self._loudest, level)
        if self._observed_ms >= OBSERVE_MS:
            smoothed = 0.0
            if self._active_ms * 100 >= MIN_PERCENTILE * OBSERVE_MS:
                # speech for more of the window weighs louder, less weighs softer (0 dB at exactly full)
                weight = 20 * math.log10(self._active_ms / OBSERVE_MS)
                target = linear(self._loudest - weight)
                smoothed = self._smoothed + (target - self._smoothed) * (2 / (SMOOTH_INTERVALS + 1))
            self._reset(smoothed)

    def level(self, now_ms: float) -> tuple[float, bool]:
        """The smoothed linear level and whether it counts as speech now."""
        if now_ms - self._last_at_ms >= 2 * OBSERVE_MS:
            self._reset(0.0)
        return self._smoothed, self._smoothed >= ACTIVE_THRESHOLD

    def _reset(self, smoothed: float) -> None:
        self._smoothed = smoothed
        self._loudest = SILENT
        self._active_ms = 0
        self._observed_ms = 0
