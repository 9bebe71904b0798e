"""One signalling WebSocket: rate-limited and parsed here, then served by the session its first message
picks (``join``: a participant; ``cascade_join``: another relay)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_relay.config import RelayConfig
from edge_relay.ops.clock import ClockCheck
from edge_relay.rooms.directory import Rooms
from edge_relay.signalling import link_session, participant_session
from edge_relay.signalling.session import Session
from edge_relay.signalling.wire import AcceptedLinkWire, ParticipantWire, Send, Wire
from meetup_protocol import signalling as p


class Connection:
    def __init__(
        self,
        config: RelayConfig,
        rooms: Rooms,
        public_key: Ed25519PublicKey,
        send: Send,
        disconnect: Callable[[str], Awaitable[None]],
        draining: Callable[[], bool],
        clock: ClockCheck | None = None,
    ) -> None:
        self.config = config
        self.rooms = rooms
        self.public_key = public_key
        self.send = send
        self.disconnect = disconnect
        self.draining = draining
        self.clock = clock
        self.session: Session | None = None
        self._wire = Wire(send, disconnect)  # errors before a session serves the socket
        self._allowance = config.messages_per_second * 2
        self._last = time.monotonic()

    async def error(self, code: str, text: str) -> None:
        await self._wire.error(code, text)

    def _rate_ok(self) -> bool:
        """Token bucket: ``messages_per_second``, bursts of twice that."""
        now = time.monotonic()
        rate = self.config.messages_per_second
        self._allowance = min(rate * 2, self._allowance + (now - self._last) * rate)
        self._last = now
        if self._allowance < 1:
            return False
        self._allowance -= 1
        return True

    async def handle(self, raw: str | bytes) -> None:
        """One frame from the peer. Raises Closed when the connection must end."""
        if not self._rate_ok():
            await self.error("rate_limited", "too many messages; slow down")
            return
        try:
            msg = p.parse_client_message(raw)
        except p.ProtocolError as exc:
            await self.error(exc.code, exc.message)
            return
        if self.session is not None:
            await self.session.handle(msg)
            return
        match msg:
            case p.Join():
                wire = ParticipantWire(self.send, self.disconnect)
                args = (self.config, self.rooms, self.public_key, self.draining(), self.clock)
                self.session = await participant_session.join(msg, wire, *args)
            case p.CascadeJoin():
                link_wire = AcceptedLinkWire(self.send, self.disconnect)
                self.session = await link_session.join(msg, link_wire, self.config, self.rooms)
            case _:
                await self.error("not_joined", "send 'join' with your join token first")
                return
        await self.session.start()

    async def close(self, reason: str) -> None:
        if self.session is not None:
            await self.session.close(reason)
