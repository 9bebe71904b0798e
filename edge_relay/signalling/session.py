"""One participant's WebSocket: authenticate the join, then turn messages into room actions.

Every malformed, oversized, unknown or out-of-order message is answered with an ``error`` and otherwise
ignored; nothing a client sends can raise out of here or touch another room.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_relay.cluster.credentials import LinkTokenError, verify_link_token
from edge_relay.config import RelayConfig
from edge_relay.ops.clock import ClockCheck
from edge_relay.ops.metrics import COUNTERS
from edge_relay.rooms import notices
from edge_relay.rooms.cascade_peer import CascadePeer
from edge_relay.rooms.directory import Rooms
from edge_relay.rooms.participant import Participant
from edge_relay.rooms.room import JoinRefused, Room
from meetup_protocol import signalling as p
from meetup_protocol.tokens import TokenError, signed_issue_time, verify_join_token

log = logging.getLogger("edge_relay.session")


class Closed(Exception):
    """The session is over (left, ended, refused): the server closes the socket with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Session:
    def __init__(
        self,
        config: RelayConfig,
        rooms: Rooms,
        public_key: Ed25519PublicKey,
        send: Callable[[str], Awaitable[None]],
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
        self.participant: Participant | None = None
        self.room: Room | None = None
        self._allowance = config.messages_per_second * 2
        self._last = time.monotonic()

    async def error(self, code: str, text: str) -> None:
        COUNTERS.rejects[code] += 1
        await self.send(p.message("error", code=code, message=text))

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
        """One frame from the client. Raises Closed when the session must end."""
        if not self._rate_ok():
            await self.error("rate_limited", "too many messages; slow down")
            return
        try:
            msg = p.parse_client_message(raw)
        except p.ProtocolError as exc:
            await self.error(exc.code, exc.message)
            return
        if self.participant is None:
            if isinstance(msg, p.CascadeJoin):
                await self._join_link(msg)
            elif isinstance(msg, p.Join):
                await self._join(msg)
            else:
                await self.error("not_joined", "send 'join' with your join token first")
            return
        is_link = isinstance(self.participant, CascadePeer)
        link_only = isinstance(msg, (p.CascadeUpdate, p.Relayed))
        if link_only != is_link and not (is_link and isinstance(msg, (p.Answer, p.Ping))):
            await self.error("not_allowed", f"'{msg.type}' is not for this kind of connection")
            return
        handler = getattr(self, f"_on_{msg.type}", None)
        if handler is None:  # only join lacks one: joining twice
            await self.error("already_joined", "this connection has joined already")
            return
        try:
            await handler(msg)
        except (Closed, ConnectionError):
            raise
        except Exception:  # a bug here must not cost the participant its meeting: answer, go on
            log.exception("message failed", extra={"type": msg.type})
            await self.error("internal_error", f"'{msg.type}' could not be handled")

    async def _join(self, msg: p.Join) -> None:
        if msg.protocol != p.PROTOCOL_VERSION:
            await self.error("unsupported_protocol", f"this relay speaks protocol {p.PROTOCOL_VERSION}")
            raise Closed(4400, "unsupported protocol")
        if self.draining():
            await self.error("relay_draining", "this relay is shutting down; use another")
            raise Closed(4503, "draining")
        if self.clock is not None and (signed := signed_issue_time(msg.token, self.public_key)) is not None:
            issued_at, user_id = signed  # the API's clock when it issued the token, and to whom
            self.clock.observe_api(issued_at - time.time(), user_id)
        try:
            claims = verify_join_token(msg.token, self.public_key)
        except TokenError as exc:
            skewed = self.clock is not None and self.clock.skewed
            log.info("join refused", extra={"code": exc.code, "clock_skewed": skewed})
            await self.error(exc.code, str(exc))
            raise Closed(4401, exc.code) from None
        try:
            self.rooms.check_token(claims.meeting_id, claims.participant_id, claims.generation)
        except JoinRefused as exc:
            log.info("join refused", extra={"meeting_id": claims.meeting_id, "code": exc.code})
            await self.error(exc.code, exc.message)
            raise Closed(4403, exc.code) from None
        if self.rooms.participant_count >= self.config.max_participants:
            await self.error("relay_full", "this relay is at capacity; use another")
            raise Closed(4503, "relay full")
        try:
            room = self.rooms.room_for(claims.meeting_id, claims.max_participants, claims.meeting_ends_at)
            room.check_admission(claims.participant_id)
        except JoinRefused as exc:
            await self.error(exc.code, exc.message)
            raise Closed(4403, exc.code) from None
        participant = Participant(
            room,
            claims.participant_id,
            claims.user_id,
            claims.display_name,
            claims.role,
            self.send,
            self.disconnect,
            self.config.stun_servers,
            generation=claims.generation,
        )
        for source in msg.publish:
            participant.want(source, msg.video_codec)
        await room.add(participant)
        self.participant, self.room = participant, room
        COUNTERS.joins += 1
        log.info("joined", extra={"meeting_id": room.meeting_id, "participant_id": participant.id})
        others = room.everyone_else(participant)
        await self.send(
            p.message(
                "welcome",
                participant_id=participant.id,
                meeting_id=room.meeting_id,
                role=participant.role,
                participants=others,
            )
        )
        await participant.negotiate()

    async def _join_link(self, msg: p.CascadeJoin) -> None:
        """Another relay links up for a meeting (it has participants there too)."""
        try:
            claims = verify_link_token(self.config.cluster_secret, msg.token)
        except LinkTokenError as exc:
            await self.error("token_invalid", str(exc))
            raise Closed(4401, "token_invalid") from None
        if claims.relay_id != msg.state.relay_id:
            await self.error("token_invalid", "the cascade token is for another relay")
            raise Closed(4401, "token_invalid")
        room = self.rooms.rooms.get(claims.meeting_id)
        if room is None or not room.participants:  # nobody here (any more) to link for: no room
            code = "meeting_ended" if claims.meeting_id in self.rooms.ended else "no_participants"
            await self.error(code, "this relay has no participants in the meeting")
            raise Closed(4404, code)
        peer = CascadePeer(room, msg.state, self.send, self.disconnect, self.config.stun_servers)
        self.participant, self.room = peer, room
        log.info("relay linked", extra={"meeting_id": room.meeting_id, "peer": claims.relay_id})
        await room.add_link(peer)

    async def _on_cascade_update(self, msg: p.CascadeUpdate) -> None:
        assert isinstance(self.participant, CascadePeer)
        await self.participant.apply_state(msg.state)

    async def _on_relayed(self, msg: p.Relayed) -> None:
        assert self.participant is not None and self.room is not None
        await self.room.on_relayed(self.participant, msg.event)  # type: ignore[arg-type]

    async def _on_publish(self, msg: p.Publish) -> None:
        assert self.participant is not None
        if msg.source in self.participant.wanted_sources:
            await self.error("already_published", f"{msg.source} is published already")
            return
        self.participant.want(msg.source, msg.video_codec)
        await self.participant.negotiate()

    async def _on_unpublish(self, msg: p.Unpublish) -> None:
        assert self.participant is not None and self.room is not None
        track = self.participant.unpublish(msg.source)
        if track is None:
            await self.error("not_published", f"{msg.source} is not published")
            return
        info = self.participant.track_info(msg.source, track)
        await self.room.on_tracks_changed(self.participant, unpublished=[info])
        await self.participant.negotiate()

    async def _on_answer(self, msg: p.Answer) -> None:
        assert self.participant is not None
        if msg.negotiation != self.participant.awaiting_answer:
            await self.error("unexpected_answer", f"no offer {msg.negotiation} is waiting for an answer")
            return
        try:
            await self.participant.on_answer(msg.negotiation, msg.sdp)
        except Exception as exc:  # an SDP aiortc cannot apply: refuse it, keep the session
            log.warning(
                "answer refused", extra={"participant_id": self.participant.id, "error": repr(exc)[:200]}
            )
            self.participant.awaiting_answer = None
            await self.error("invalid_answer", "the answer could not be applied")

    async def _on_mute(self, msg: p.Mute) -> None:
        assert self.participant is not None and self.room is not None
        self.participant.muted[msg.source] = msg.muted
        track_id = f"{self.participant.id}/{msg.source}"
        event = {"type": "track_muted", "track_id": track_id, "muted": msg.muted}
        await self.room.relay_event(event, source=self.participant)

    async def _stored(self, token: str, kind: str) -> dict[str, object] | None:
        """The content of the API's notice of what this participant stored, or None (answered)."""
        assert self.participant is not None and self.room is not None
        try:
            notice = notices.verified(token, self.public_key, kind)
        except notices.NoticeRefused as exc:
            await self.error(exc.code, exc.message)
            return None
        data = notice.data
        if notice.meeting_id != self.room.meeting_id or data.get("participant_id") != self.participant.id:
            await self.error("not_allowed", f"that {kind} is not yours in this meeting")
            return None
        return data

    async def _on_reaction(self, msg: p.Reaction) -> None:
        assert self.participant is not None and self.room is not None
        data = await self._stored(msg.notice, "reaction")
        if data is not None:
            event = {"type": "reaction", "participant_id": self.participant.id}
            event |= {k: data.get(k, "") for k in ("name", "emoji", "reaction_id")}
            await self.room.relay_event(event)

    async def _on_chat(self, msg: p.Chat) -> None:
        assert self.participant is not None and self.room is not None
        data = await self._stored(msg.notice, "chat")
        if data is not None:
            fields = ("name", "message_id", "text", "created_at")
            event = {"type": "chat", "participant_id": self.participant.id}
            event |= {k: data.get(k) for k in fields}
            await self.room.relay_event(event, self.participant)
            # The sender keeps announcing it (after a reconnect) until this: confirmed chat reaches
            # everyone live even when the first announcement died with a connection.
            await self.send(p.message("chat_ack", message_id=data.get("message_id")))

    async def _on_end(self, msg: p.End) -> None:
        assert self.participant is not None and self.room is not None
        if self.participant.role != "host":
            await self.error("not_host", "only the host can end the meeting")
            return
        await self.room.end("host_ended")

    async def _on_leave(self, msg: p.Leave) -> None:
        raise Closed(1000, "left")

    async def _on_ping(self, msg: p.Ping) -> None:
        await self.send(p.message("pong"))

    async def close(self, reason: str) -> None:
        if isinstance(self.participant, CascadePeer) and self.room is not None:
            await self.room.remove_link(self.participant)  # type: ignore[arg-type]
            log.info(
                "relay unlinked",
                extra={"meeting_id": self.room.meeting_id, "peer": self.participant.relay_id},
            )
        elif self.participant is not None and self.room is not None:
            await self.room.remove(self.participant, reason=reason)
            log.info(
                "left",
                extra={
                    "meeting_id": self.room.meeting_id,
                    "participant_id": self.participant.id,
                    "reason": reason,
                },
            )
