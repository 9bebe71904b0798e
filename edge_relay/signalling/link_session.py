"""Relay-to-relay sockets, both ends: the link another relay dialed (we offer: ``LinkSession``), and
the one we dialed (we answer: ``DialedLinkSession``, fed by edge_relay/cluster/cascade.py)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from edge_relay.cluster.credentials import LinkTokenError, verify_link_token
from edge_relay.config import RelayConfig
from edge_relay.rooms.cascade_peer import CascadePeer
from edge_relay.rooms.dialed_link import DialedLink
from edge_relay.rooms.directory import Rooms
from edge_relay.rooms.room import Room
from edge_relay.sfu.transport import PeerTransport
from edge_relay.signalling.session import Closed, Handler, Session
from edge_relay.signalling.wire import AcceptedLinkWire
from meetup_protocol import signalling as p

log = logging.getLogger("edge_relay.session")


async def join(msg: p.CascadeJoin, wire: AcceptedLinkWire, config: RelayConfig, rooms: Rooms) -> LinkSession:
    """Another relay links up for a meeting (it has participants there too), or Closed is raised."""
    try:
        claims = verify_link_token(config.cluster_secret, msg.token)
    except LinkTokenError as exc:
        await wire.error("token_invalid", str(exc))
        raise Closed(4401, "token_invalid") from None
    if claims.relay_id != msg.state.relay_id:
        await wire.error("token_invalid", "the cascade token is for another relay")
        raise Closed(4401, "token_invalid")
    room = rooms.rooms.get(claims.meeting_id)
    if room is None or not room.participants:  # nobody here (any more) to link for: no room
        code = "meeting_ended" if claims.meeting_id in rooms.ended else "no_participants"
        await wire.error(code, "this relay has no participants in the meeting")
        raise Closed(4404, code)
    peer = CascadePeer(room, msg.state, wire, PeerTransport(config.stun_servers, "link"))
    log.info("relay linked", extra={"meeting_id": room.meeting_id, "peer": claims.relay_id})
    return LinkSession(peer, room, wire)


class LinkSession(Session):
    """The socket of a relay that dialed us: its state and events, and answers to our offers."""

    def __init__(self, peer: CascadePeer, room: Room, wire: AcceptedLinkWire) -> None:
        self.link = peer
        self.room = room
        super().__init__(peer, wire)

    def table(self) -> Mapping[type[p.Message], Handler]:
        return {
            p.CascadeUpdate: self.on_update,
            p.Relayed: self.on_relayed,
            p.Answer: self.on_answer,
            p.Ping: self.on_ping,
        }

    @property
    def peer_name(self) -> str:
        return f"relay:{self.link.relay_id}"

    async def start(self) -> None:
        await self.room.add_link(self.link)

    async def on_update(self, msg: p.CascadeUpdate) -> None:
        await self.link.apply_state(msg.state)

    async def on_relayed(self, msg: p.Relayed) -> None:
        await self.link.on_relayed(msg.event)

    async def close(self, reason: str) -> None:
        await self.room.remove_link(self.link)
        log.info("relay unlinked", extra={"meeting_id": self.room.meeting_id, "peer": self.link.relay_id})


class DialedLinkSession:
    """What the relay we dialed says, into our side of the link. Its frames are trusted more than a
    client's (it holds the cluster's credential) but still checked: a bad one is logged and skipped."""

    def __init__(self, link: DialedLink) -> None:
        self.link = link
        self.handlers: dict[type[p.Message], Handler] = {
            p.LinkOffer: link.on_offer,
            p.CascadeUpdate: self.on_update,
            p.Relayed: self.on_relayed,
            p.LinkError: self.on_error,
        }

    async def handle(self, raw: str | bytes) -> None:
        try:
            msg = p.parse_link_message(raw)
        except p.ProtocolError:
            log.warning("peer relay sent a malformed frame", extra={"peer": self.link.relay_id})
            return
        await self.handlers[type(msg)](msg)

    async def on_update(self, msg: p.CascadeUpdate) -> None:
        await self.link.apply_state(msg.state)

    async def on_relayed(self, msg: p.Relayed) -> None:
        await self.link.on_relayed(msg.event)

    async def on_error(self, msg: p.LinkError) -> None:
        log.warning("peer relay refused", extra={"peer": self.link.relay_id, "code": msg.code})
