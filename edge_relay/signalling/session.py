"""What the sessions share: how one message is dispatched, and how an offer's answer is applied.

A socket is served by one session, picked by its first message (edge_relay/signalling/connection.py):
a participant's (participant_session.py) or another relay's (link_session.py). Each has an explicit
table of the messages it takes; anything else is answered with an error and otherwise ignored, and
nothing a peer sends can raise out of here or touch another room.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from edge_relay.rooms.offering import OfferingPeer
from edge_relay.signalling.wire import Wire
from meetup_protocol import signalling as p

log = logging.getLogger("edge_relay.session")

Handler = Callable[[Any], Awaitable[None]]


class Closed(Exception):
    """The session is over (left, ended, refused): the server closes the socket with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Session(ABC):
    """A joined socket whose peer is negotiated by our offers."""

    def __init__(self, peer: OfferingPeer, wire: Wire) -> None:
        self.peer = peer
        self.wire = wire
        self.handlers: Mapping[type[p.Message], Handler] = self.table()

    @abstractmethod
    def table(self) -> Mapping[type[p.Message], Handler]:
        """The messages this kind of peer may send once joined, and their handlers."""

    @abstractmethod
    async def start(self) -> None:
        """Joined (the session holds the peer now, so a failure from here on is cleaned up by ``close``):
        greet the peer."""

    @abstractmethod
    async def close(self, reason: str) -> None:
        """The socket closed: the peer leaves its room."""

    @property
    @abstractmethod
    def peer_name(self) -> str:
        """Who the peer is, for the logs."""

    async def handle(self, msg: p.Message) -> None:
        """One parsed message. Raises Closed when the session must end."""
        handler = self.handlers.get(type(msg))
        if handler is None:
            kind = getattr(msg, "type", "?")
            await self.wire.error("not_allowed", f"'{kind}' is not for this kind of connection")
            return
        try:
            await handler(msg)
        except (Closed, ConnectionError):
            raise
        except Exception:  # a bug here must not cost the peer its meeting: answer, go on
            log.exception("message failed", extra={"type": getattr(msg, "type", "?")})
            await self.wire.error("internal_error", f"'{getattr(msg, 'type', '?')}' could not be handled")

    async def on_answer(self, msg: p.Answer) -> None:
        if msg.negotiation != self.peer.awaiting_answer:
            await self.wire.error("unexpected_answer", f"no offer {msg.negotiation} is waiting for an answer")
            return
        try:
            await self.peer.on_answer(msg.negotiation, msg.sdp)
        except Exception as exc:  # an SDP aiortc cannot apply: refuse it, keep the session
            log.warning("answer refused", extra={"peer": self.peer_name, "error": repr(exc)[:200]})
            self.peer.awaiting_answer = None
            await self.wire.error("invalid_answer", "the answer could not be applied")

    async def on_ping(self, _: p.Ping) -> None:
        await self.wire.send(p.message("pong"))
