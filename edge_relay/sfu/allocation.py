"""Per-subscriber bandwidth allocation: which layer of each video source fits the subscriber's link.

Pure logic, no I/O: the forwarder feeds it the subscriber's bandwidth estimate and the sources it may
receive (in priority order: speakers, pinned, on screen), and applies what it returns. Modelled on Jitsi
Videobridge's ``BandwidthAllocator`` (``doc/allocation.md``):

1. **Candidate layers** per source: the publisher's layers ordered from lowest to highest quality, minus
   those above the receiver's constraint (``max_height``; 0 means "no video from this source") and those
   the publisher does not produce now. A source with no layer under the constraint keeps its lowest one
   (a sender without simulcast still gets through when there is room, as Jitsi does).
2. **Allocation loop**: start with nothing and the whole estimate; in rounds, walk the sources in order and
   ``improve`` each by one layer if what is left pays for the difference. In stage view the first source
   improves eagerly up to ``preferred_height`` before anyone else gets past its lowest layer; tile view
   gives everyone a low layer first.
3. **Hysteresis** (``Allocator``): a lower allocation applies at once (the link is full now), a higher one
   only once the estimate has covered it with ``UP_MARGIN`` for ``UP_HOLD_S``; until then the allocator
   reports the bitrate to probe for, so the sender can test the link (padding) before switching up.
   Video that no longer fits even at the lowest layer is paused (``None``); audio is never allocated here
   and always flows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

#: Switch up only when the estimate covers the higher allocation with this margin ...
UP_MARGIN = 1.1
#: ... continuously for this long (a single optimistic estimate does not cause a keyframe and a switch).
UP_HOLD_S = 2.0
#: Without probing, a receiver's estimate only grows to ~1.5x what it gets, so it cannot show room for a
#: higher layer: the allocator *tries* the next step up (the trial is the probe) once the estimate has
#: been calm for ``TRIAL_HOLD_S``, doubling the wait after each fall that follows a trial or a fall
#: within ``CALM_S``, up to ``MAX_TRIAL_HOLD_S``. For ``TRIAL_GRACE_S`` after a trial the estimate is judged
#: against what was sent before it (it needs that long to follow the new rate).
TRIAL_HOLD_S = 4.0
MAX_TRIAL_HOLD_S = 60.0
CALM_S = 30.0
TRIAL_GRACE_S = 3.0
#: Stage view: the on-stage source goes eagerly up to this height before others improve.
PREFERRED_HEIGHT = 360
#: Stage view: layers of the on-stage source above ``PREFERRED_HEIGHT`` need at least this frame rate.
MIN_STAGE_FPS = 15.0

Strategy = Literal["stage", "tile"]


@dataclass(frozen=True)
class Layer:
    """One forwardable layer of a source: a simulcast encoding (spatial) at a frame rate (temporal)."""

    spatial: int
    temporal: int
    height: int
    fps: float
    bitrate_bps: float
    active: bool = True  # the publisher produces it now

    @property
    def key(self) -> tuple[int, int]:
        return self.spatial, self.temporal


@dataclass(frozen=True)
class Source:
    """A video source the subscriber may receive, with the subscriber's constraint on it."""

    source_id: str
    layers: tuple[Layer, ...]
    max_height: int | None = None  # None: unconstrained; 0: the subscriber wants no video from it

    def candidates(self, *, on_stage: bool = False) -> list[Layer]:
        """The layers worth considering, lowest quality first (step 1 of the module docstring)."""
        if self.max_height == 0:
            return []
        live = sorted((layer for layer in self.layers if layer.active), key=lambda x: x.key)
        if on_stage:
            live = [x for x in live if x.height <= PREFERRED_HEIGHT or x.fps >= MIN_STAGE_FPS]
        if self.max_height is None:
            return live
        fitting = [x for x in live if x.height <= self.max_height]
        return fitting or live[:1]


@dataclass(frozen=True)
class Allocation:
    """The layer chosen per source (``None``: paused), and what it costs."""

    layers: dict[str, Layer | None]
    total_bps: float
    #: What the subscriber would get with unlimited bandwidth (within its constraints): the goal.
    ideal_bps: float

    def layer(self, source_id: str) -> Layer | None:
        return self.layers.get(source_id)

    @property
    def paused(self) -> list[str]:
        return [s for s, layer in self.layers.items() if layer is None]


def _options(sources: Sequence[Source], strategy: Strategy, last_n: int | None) -> list[list[Layer]]:
    """Candidate layers per source in priority order, with last-N applied (Jitsi: maxHeight 0 beyond N)."""
    return [
        []
        if last_n is not None and 0 <= last_n <= i
        else s.candidates(on_stage=strategy == "stage" and i == 0)
        for i, s in enumerate(sources)
    ]


def allocate(
    estimate_bps: float,
    sources: Sequence[Source],
    *,
    strategy: Strategy = "tile",
    last_n: int | None = None,
) -> Allocation:
    """The best allocation of ``estimate_bps`` over ``sources`` (in priority order)."""
    options = _options(sources, strategy, last_n)
    chosen: list[int] = [-1] * len(sources)  # index into options[i]; -1: nothing
    left = float(estimate_bps) if estimate_bps > 0 else 0.0  # NaN and negatives: nothing to give

    def cost(i: int, index: int) -> float:
        return options[i][index].bitrate_bps if index >= 0 else 0.0

    def improve(i: int, *, eager_to: int | None = None) -> bool:
        """Step source ``i`` up (to ``eager_to`` height at once if given); True if it moved."""
        nonlocal left
        moved = False
        while chosen[i] + 1 < len(options[i]):
            step = chosen[i] + 1
            extra = cost(i, step) - cost(i, chosen[i])
            if extra > left:
                break
            left -= extra
            chosen[i], moved = step, True
            if eager_to is None or options[i][step].height >= eager_to:
                break
        return moved

    if strategy == "stage" and sources:
        improve(0, eager_to=PREFERRED_HEIGHT)
    while any([improve(i) for i in range(len(sources))]):  # a list: every source gets its turn per round
        pass
    layers = {s.source_id: (options[i][chosen[i]] if chosen[i] >= 0 else None) for i, s in enumerate(sources)}
    return _priced(layers, options)


def _priced(layers: dict[str, Layer | None], options: list[list[Layer]]) -> Allocation:
    total = sum(layer.bitrate_bps for layer in layers.values() if layer is not None)
    return Allocation(layers, total, sum(opts[-1].bitrate_bps for opts in options if opts))


def _lower(a: Layer | None, b: Layer | None) -> Layer | None:
    if a is None or b is None:
        return None
    return a if a.key <= b.key else b


@dataclass
class Allocator:
    """One subscriber's allocation over time: down at once, up only after the estimate held.

    Applying an allocation is not free (a switch up needs a keyframe of the target layer), and an estimate
    can overshoot for a moment; so the allocator moves a source down at once and up only when
    ``allocate(estimate / UP_MARGIN)`` has offered the higher layer for ``UP_HOLD_S``. A source seen for
    the first time gets what fits at once. ``probe_bps`` says what the link would have to carry for the
    next step up, so the sender can probe for it (with padding) instead of waiting for traffic to show it.
    With ``trials``, the step up is tried instead (see ``TRIAL_HOLD_S``): what a relay without a prober
    does, as LiveKit does when it cannot probe.
    """

    strategy: Strategy = "tile"
    last_n: int | None = None
    trials: bool = False
    current: Allocation = field(default_factory=lambda: Allocation({}, 0.0, 0.0))
    probe_bps: float = 0.0
    #: Trials made and falls seen (a fall: some source had to go down), for logs and tests.
    trial_count: int = 0
    falls: int = 0
    _up_since: float | None = None
    _hold: float = TRIAL_HOLD_S
    _next_trial: float | None = None
    _last_fall: float = -1e9
    _last_trial: float = -1e9
    _grace_until: float = -1e9
    _before_trial_bps: float = 0.0

    def update(self, estimate_bps: float, sources: Sequence[Source], now: float) -> Allocation:
        """Recompute from the latest estimate and sources; returns the allocation to apply now."""
        if now < self._grace_until and estimate_bps >= self._before_trial_bps:
            estimate_bps = max(estimate_bps, self.current.total_bps)  # the estimate is still catching up
        previous = self.current
        result = self._settle(estimate_bps, sources, now)
        if _lowers(result, previous) and estimate_bps < previous.total_bps:  # the link, not a constraint
            self._fell(now)
        elif self.trials and self.probe_bps and now >= self._trial_due(now):
            trial = allocate(self.probe_bps / UP_MARGIN, sources, strategy=self.strategy, last_n=self.last_n)
            if _raises(trial, result):
                self._before_trial_bps, self._grace_until = result.total_bps, now + TRIAL_GRACE_S
                self._next_trial, self._last_trial = now + self._hold, now
                self.trial_count += 1
                result = self.current = trial
                self._set_probe(result, sources)
        return result

    def _trial_due(self, now: float) -> float:
        if self._next_trial is None:
            self._next_trial = now + self._hold
        return self._next_trial

    def _fell(self, now: float) -> None:
        self.falls += 1
        calm = now - max(self._last_fall, self._last_trial) > CALM_S  # else a trial failed: wait longer
        self._hold = TRIAL_HOLD_S if calm else min(2 * self._hold, MAX_TRIAL_HOLD_S)
        self._last_fall = now
        self._next_trial = now + self._hold
        self._grace_until = -1e9

    def _set_probe(self, result: Allocation, sources: Sequence[Source]) -> None:
        step = _next_step_bps(result, sources, _options(sources, self.strategy, self.last_n))
        self.probe_bps = (result.total_bps + step) * UP_MARGIN if step else 0.0

    def _settle(self, estimate_bps: float, sources: Sequence[Source], now: float) -> Allocation:
        """Down at once, up after the hold (the class docstring); sets ``current`` and ``probe_bps``."""
        options = _options(sources, self.strategy, self.last_n)
        down = allocate(estimate_bps, sources, strategy=self.strategy, last_n=self.last_n)
        layers: dict[str, Layer | None] = {}
        for source, opts in zip(sources, options, strict=True):
            sid = source.source_id
            if sid not in self.current.layers:
                layers[sid] = down.layer(sid)  # new: whatever fits now
            else:
                layers[sid] = _lower(_at_most(opts, self.current.layer(sid)), down.layer(sid))
        result = _priced(layers, options)
        up = allocate(estimate_bps / UP_MARGIN, sources, strategy=self.strategy, last_n=self.last_n)
        if _raises(up, result):
            self._up_since = now if self._up_since is None else self._up_since
            if now - self._up_since >= UP_HOLD_S:
                result, self._up_since = up, None
        else:
            self._up_since = None
        self.current = result
        self._set_probe(result, sources)
        return result


def _at_most(options: list[Layer], layer: Layer | None) -> Layer | None:
    """The best candidate no higher than ``layer`` (the lowest if all are higher); None if none."""
    if layer is None or not options:
        return None
    fitting = [x for x in options if x.key <= layer.key]
    return fitting[-1] if fitting else options[0]


def _lowers(target: Allocation, current: Allocation) -> bool:
    """Whether ``target`` puts some source that is in both below what it had (a fall, not a leave)."""
    for sid, old in current.layers.items():
        if old is not None and sid in target.layers:
            new = target.layers[sid]
            if new is None or new.key < old.key:
                return True
    return False


def _raises(target: Allocation, current: Allocation) -> bool:
    """Whether ``target`` puts some source above what it has in ``current``."""
    for sid, new in target.layers.items():
        old = current.layer(sid)
        if new is not None and (old is None or new.key > old.key):
            return True
    return False


def _next_step_bps(current: Allocation, sources: Sequence[Source], options: list[list[Layer]]) -> float:
    """Extra bitrate of the next improvement (the first source in priority order that can step up)."""
    for source, opts in zip(sources, options, strict=True):
        layer = current.layer(source.source_id)
        keys = [x.key for x in opts]
        index = keys.index(layer.key) if layer is not None and layer.key in keys else -1
        if index + 1 < len(opts):
            return opts[index + 1].bitrate_bps - (layer.bitrate_bps if layer is not None else 0.0)
    return 0.0
