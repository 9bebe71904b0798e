"""Another relay's side of a meeting (a cascade link), as a room sees it, and what a link asks of its room.

Two classes play it: :class:`~edge_relay.rooms.cascade_peer.CascadePeer` where the other relay dialed us
(we make the offers) and :class:`~edge_relay.rooms.dialed_link.DialedLink` where we dialed it (we answer).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from edge_relay.rooms.signals import Event
from edge_relay.sfu.forwarder import PublishedTrack, Subscription
from meetup_protocol.signalling import LinkState, TrackInfo


class Link(Protocol):
    """Another relay's side of this meeting."""

    relay_id: str
    state: LinkState  # the other relay's participants and tracks

    @property
    def tracks(self) -> list[tuple[PublishedTrack, TrackInfo]]:
        """The other relay's tracks arriving over this link."""

    def forwarded(self) -> list[Subscription]:
        """Our tracks going over this link (each once, whatever the subscribers behind it)."""

    async def negotiate(self) -> None: ...

    async def send_state(self, state: LinkState) -> None: ...

    async def send_relayed(self, event: Event) -> None: ...

    async def close(self) -> None: ...


class LinkRoom(Protocol):
    """What a link asks of its room (edge_relay/rooms/room.py)."""

    relay_id: str
    meeting_id: str

    def local_tracks(self) -> list[tuple[PublishedTrack, TrackInfo]]: ...

    async def on_link_state(self, link: Link, old: LinkState, new: LinkState) -> None: ...

    async def on_link_tracks_changed(
        self, link: Link, published: Iterable[TrackInfo] = (), unpublished: Iterable[TrackInfo] = ()
    ) -> None: ...

    async def on_relayed(self, link: Link, event: Event) -> None: ...

    async def remove_link(self, link: Link, announce: bool = True) -> None: ...
