"""In-process fakes for the relay's unit tests: peers that record what a room tells them, and links."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

from meetup_protocol.signalling import LinkState, LinkTrack, ParticipantInfo, TrackInfo


class Heard:
    """Any signals object (edge_relay/rooms/signals.py): records each call as ``(name, args)``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Callable[..., Awaitable[None]]:
        if name.startswith("__"):
            raise AttributeError(name)

        async def record(*args: Any) -> None:
            self.calls.append((name, args))

        return record

    def of(self, name: str) -> list[tuple[Any, ...]]:
        return [args for called, args in self.calls if called == name]


def track(track_id: str, kind: str = "video") -> Any:
    """What a room reads of a published track (edge_relay/sfu/forwarder.py PublishedTrack)."""
    return SimpleNamespace(track_id=track_id, kind=kind, mime_type="video/VP8", codec_parameters={})


def info(track_id: str, source: str = "camera") -> TrackInfo:
    participant_id = track_id.split("/")[0]
    kind = "audio" if source == "microphone" else "video"
    return TrackInfo(track_id=track_id, participant_id=participant_id, source=source, kind=kind)  # type: ignore[arg-type]


class FakeTransport:
    """A participant's connection as its room's tick uses it (edge_relay/sfu/transport.py)."""

    def __init__(self) -> None:
        self.allocations: list[float] = []

    def allocate_downlink(self, now: float) -> None:
        self.allocations.append(now)


class FakeParticipant:
    """A participant as its room sees it (edge_relay/rooms/participant.py), without a connection."""

    def __init__(self, participant_id: str, role: str = "guest", sources: tuple[str, ...] = ()) -> None:
        self.id = participant_id
        self.name = participant_id.title()
        self.role = role
        self.generation = 0
        self.signals = Heard()
        self.transport = FakeTransport()
        self.muted: dict[str, bool] = {}
        self.tracks = [(track(f"{participant_id}/{s}"), info(f"{participant_id}/{s}", s)) for s in sources]
        self.negotiations = 0
        self.closed = False

    def info(self) -> ParticipantInfo:
        return ParticipantInfo(
            participant_id=self.id,
            name=self.name,
            role=self.role,  # type: ignore[arg-type]
            tracks=[i for _, i in self.tracks],
        )

    async def negotiate(self) -> None:
        self.negotiations += 1

    async def close(self) -> None:
        self.closed = True


class FakeLink:
    """Another relay's side of a meeting (edge_relay/rooms/link.py), without a connection."""

    def __init__(self, relay_id: str, people: tuple[FakeParticipant, ...] = (), fail: bool = False) -> None:
        self.relay_id = relay_id
        self.state = link_state(relay_id, people)
        self.tracks = [t for p in people for t in p.tracks]
        self.states: list[LinkState] = []
        self.relayed: list[dict[str, Any]] = []
        self.fail = fail
        self.closed = False

    def forwarded(self) -> list[Any]:
        return []

    async def negotiate(self) -> None:
        pass

    async def send_state(self, state: LinkState) -> None:
        if self.fail:
            raise ConnectionError("socket closed")
        self.states.append(state)

    async def send_relayed(self, event: dict[str, Any]) -> None:
        if self.fail:
            raise ConnectionError("socket closed")
        self.relayed.append(event)

    async def close(self) -> None:
        self.closed = True


def link_state(relay_id: str, people: tuple[FakeParticipant, ...] = ()) -> LinkState:
    from meetup_protocol.signalling import CodecInfo

    tracks = [LinkTrack(info=i, codec=CodecInfo(mime_type="video/VP8")) for p in people for _, i in p.tracks]
    return LinkState(relay_id=relay_id, participants=[p.info() for p in people], tracks=tracks)
