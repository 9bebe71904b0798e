"""Dialing relay-to-relay links (cascades): this relay joins a meeting on a peer relay, once per meeting
and pair.

The relay with the smaller id dials (so a pair never opens two links), with the cluster's credential
and, when the peer gossips its own TLS endpoint, pinned to its certificate. The peer accepts it
(edge_relay/signalling/link_session.py) and makes the offers; our side of the media is a
:class:`~edge_relay.rooms.dialed_link.DialedLink`. Only the socket lives here: no media.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import websockets

from edge_relay.cluster import link_tls
from edge_relay.cluster.credentials import LinkClaims, issue_link_token
from edge_relay.rooms.dialed_link import DialedLink
from edge_relay.rooms.room import Room
from edge_relay.sfu.transport import PeerTransport
from edge_relay.signalling.link_session import DialedLinkSession
from edge_relay.signalling.wire import DialedLinkWire
from meetup_protocol.signalling import MAX_MESSAGE_BYTES, CascadeJoin, encode_cascade

log = logging.getLogger("edge_relay.cascade")


class LinkSocket:
    """The WebSocket of a link we dialed: it sends while open, and reads into a ``DialedLinkSession``."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.closed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def send(self, text: str) -> None:
        if not self.closed.is_set():
            with contextlib.suppress(websockets.ConnectionClosed):
                await self.ws.send(text)

    async def disconnect(self, _: str = "") -> None:
        self.closed.set()
        with contextlib.suppress(Exception):
            await self.ws.close()

    def read_into(self, room: Room, link: DialedLink) -> None:
        self._reader = asyncio.ensure_future(self._read(room, link))

    async def _read(self, room: Room, link: DialedLink) -> None:
        session = DialedLinkSession(link)
        try:
            async for raw in self.ws:
                await session.handle(raw)
        except (websockets.ConnectionClosed, OSError):
            pass
        except Exception:
            log.exception("cascade link failed", extra={"peer": link.relay_id})
        finally:
            self.closed.set()
            await room.remove_link(link)


async def dial(
    room: Room, peer_relay_id: str, peer_url: str, secret: str, stun: list[str], pin: str | None = None
) -> DialedLink:
    """Join ``room``'s meeting on the relay at ``peer_url``; ``pin``: its gossiped certificate
    fingerprint (its own TLS link endpoint). Raises when the peer cannot be reached or is not the one
    we mean. The link is not in the room yet: the caller adds it."""
    tls: dict[str, Any] = {"ssl": link_tls.client_context()} if pin else {}
    ws = await websockets.connect(
        peer_url,
        # Pinned to the gossiped certificate; a public wss:// URL is verified as usual.
        **tls,
        max_size=MAX_MESSAGE_BYTES,
        open_timeout=5,
        # A link across a partition must not hold its room for websockets' 20 + 20 s defaults; the
        # cluster declares the peer dead sooner anyway, and then the link is closed outright.
        ping_interval=2,
        ping_timeout=5,
        close_timeout=1,
    )
    if pin:  # before the token leaves: only the relay we mean may see it
        try:
            link_tls.check_pin(ws, pin)
        except link_tls.PinMismatch:
            await ws.close()
            raise
    socket = LinkSocket(ws)
    link = DialedLink(
        room, peer_relay_id, DialedLinkWire(socket.send, socket.disconnect), PeerTransport(stun, "link")
    )
    claims = LinkClaims(room.relay_id, room.meeting_id, room.max_participants, int(room.ends_at))
    join = CascadeJoin(type="cascade_join", token=issue_link_token(secret, claims), state=room.local_state())
    try:
        await ws.send(encode_cascade(join))
    except BaseException:
        await link.close()
        raise
    socket.read_into(room, link)
    return link
