"""A participant's socket: the join (token, limits, admission), then its messages as room actions."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_relay.config import RelayConfig
from edge_relay.ops.clock import ClockCheck
from edge_relay.ops.metrics import COUNTERS
from edge_relay.rooms import hands, moderation, notices
from edge_relay.rooms.directory import Rooms
from edge_relay.rooms.participant import Participant
from edge_relay.rooms.room import JoinRefused, Room
from edge_relay.rooms.signals import Event
from edge_relay.sfu.transport import PeerTransport
from edge_relay.signalling.session import Closed, Handler, Session
from edge_relay.signalling.wire import ParticipantWire
from meetup_protocol import signalling as p
from meetup_protocol.tokens import TokenError, signed_issue_time, verify_join_token

log = logging.getLogger("edge_relay.session")


async def join(
    msg: p.Join,
    wire: ParticipantWire,
    config: RelayConfig,
    rooms: Rooms,
    public_key: Ed25519PublicKey,
    draining: bool,
    clock: ClockCheck | None,
) -> ParticipantSession:
    """Admit a participant (or raise Closed, the reason told): it is in its room; ``start`` welcomes it."""
    if msg.protocol != p.PROTOCOL_VERSION:
        await wire.error("unsupported_protocol", f"this relay speaks protocol {p.PROTOCOL_VERSION}")
        raise Closed(4400, "unsupported protocol")
    if draining:
        await wire.error("relay_draining", "this relay is shutting down; use another")
        raise Closed(4503, "draining")
    if clock is not None and (signed := signed_issue_time(msg.token, public_key)) is not None:
        issued_at, user_id = signed  # the API's clock when it issued the token, and to whom
        clock.observe_api(issued_at - time.time(), user_id)
    try:
        claims = verify_join_token(msg.token, public_key)
    except TokenError as exc:
        skewed = clock is not None and clock.skewed
        log.info("join refused", extra={"code": exc.code, "clock_skewed": skewed})
        await wire.error(exc.code, str(exc))
        raise Closed(4401, exc.code) from None
    try:
        rooms.check_token(claims.meeting_id, claims.participant_id, claims.generation)
    except JoinRefused as exc:
        log.info("join refused", extra={"meeting_id": claims.meeting_id, "code": exc.code})
        await wire.error(exc.code, exc.message)
        raise Closed(4403, exc.code) from None
    if rooms.participant_count >= config.max_participants:
        await wire.error("relay_full", "this relay is at capacity; use another")
        raise Closed(4503, "relay full")
    try:
        room = rooms.room_for(claims.meeting_id, claims.max_participants, claims.meeting_ends_at)
        room.check_admission(claims.participant_id)
    except JoinRefused as exc:
        await wire.error(exc.code, exc.message)
        raise Closed(4403, exc.code) from None
    participant = Participant(
        room,
        claims.participant_id,
        claims.user_id,
        claims.display_name,
        claims.role,
        wire,
        PeerTransport(config.stun_servers),
        generation=claims.generation,
    )
    for source in msg.publish:
        participant.want(source, msg.video_codec, msg.simulcast)
    moderation.restore(room, participant, claims.host_muted)
    await room.add(participant)
    COUNTERS.joins += 1
    log.info("joined", extra={"meeting_id": room.meeting_id, "participant_id": participant.id})
    return ParticipantSession(participant, room, wire, public_key)


class ParticipantSession(Session):
    def __init__(
        self, participant: Participant, room: Room, wire: ParticipantWire, public_key: Ed25519PublicKey
    ) -> None:
        self.participant = participant
        self.room = room
        self.public_key = public_key
        super().__init__(participant, wire)

    async def start(self) -> None:
        """Welcome the participant (who else is here) and make the first offer."""
        participant = self.participant
        welcome = p.message(
            "welcome",
            participant_id=participant.id,
            meeting_id=self.room.meeting_id,
            role=participant.role,
            participants=self.room.everyone_else(participant),
        )
        await self.wire.send(welcome)
        speakers = self.room.speakers.current
        if speakers.levels or speakers.dominant:  # who holds the stage, before anyone speaks again
            await self.wire.speakers_changed(list(speakers.levels), speakers.dominant)
        for source, may_unmute in participant.host_muted.items():  # still muted by a host: say so
            told = {"type": "muted_by_host", "source": source, "muted": True, "can_unmute": may_unmute}
            await participant.signals.event(told)
        await participant.negotiate()

    def table(self) -> Mapping[type[p.Message], Handler]:
        return {
            p.Publish: self.on_publish,
            p.Unpublish: self.on_unpublish,
            p.Answer: self.on_answer,
            p.Mute: self.on_mute,
            p.SetVideoQuality: self.on_video_quality,
            p.Reaction: self.on_reaction,
            p.Chat: self.on_chat,
            p.Hand: self.on_hand,
            p.End: self.on_end,
            p.Leave: self.on_leave,
            p.Ping: self.on_ping,
            p.Join: self.on_join_again,
            p.CascadeJoin: self.on_join_again,
        }

    @property
    def peer_name(self) -> str:
        return self.participant.id

    async def on_join_again(self, _: p.Message) -> None:
        await self.wire.error("already_joined", "this connection has joined already")

    async def on_publish(self, msg: p.Publish) -> None:
        if msg.source in self.participant.wanted_sources:
            await self.wire.error("already_published", f"{msg.source} is published already")
            return
        self.participant.want(msg.source, msg.video_codec, msg.simulcast)
        await self.participant.negotiate()

    async def on_unpublish(self, msg: p.Unpublish) -> None:
        track = self.participant.unpublish(msg.source)
        if track is None:
            await self.wire.error("not_published", f"{msg.source} is not published")
            return
        info = self.participant.track_info(msg.source, track)
        await self.room.on_tracks_changed(self.participant, unpublished=[info])
        await self.participant.negotiate()

    async def on_mute(self, msg: p.Mute) -> None:
        if not msg.muted and moderation.self_unmute_refused(self.room, self.participant, msg.source):
            await self.wire.error("not_allowed", f"a host muted your {msg.source}: a host must allow it")
            return
        self.participant.muted[msg.source] = msg.muted
        track_id = f"{self.participant.id}/{msg.source}"
        event = {"type": "track_muted", "track_id": track_id, "muted": msg.muted}
        await self.room.relay_event(event, source=self.participant)

    async def on_video_quality(self, msg: p.SetVideoQuality) -> None:
        if not await self.participant.set_quality(msg.track_id, msg.quality):
            await self.wire.error("unknown_track", f"{msg.track_id} is not a track this participant receives")

    async def _stored(self, token: str, kind: str) -> dict[str, object] | None:
        """The content of the API's notice of what this participant stored, or None (answered)."""
        try:
            notice = notices.verified(token, self.public_key, kind)
        except notices.NoticeRefused as exc:
            await self.wire.error(exc.code, exc.message)
            return None
        data = notice.data
        if notice.meeting_id != self.room.meeting_id or data.get("participant_id") != self.participant.id:
            await self.wire.error("not_allowed", f"that {kind} is not yours in this meeting")
            return None
        return data

    async def on_reaction(self, msg: p.Reaction) -> None:
        data = await self._stored(msg.notice, "reaction")
        if data is not None:
            event: Event = {"type": "reaction", "participant_id": self.participant.id}
            event |= {k: data.get(k, "") for k in ("name", "emoji", "reaction_id")}
            await self.room.relay_event(event)

    async def on_chat(self, msg: p.Chat) -> None:
        data = await self._stored(msg.notice, "chat")
        if data is not None:
            fields = ("name", "message_id", "text", "created_at")
            event: Event = {"type": "chat", "participant_id": self.participant.id}
            event |= {k: data.get(k) for k in fields}
            await self.room.relay_event(event, self.participant)
            # The sender keeps announcing it (after a reconnect) until this: confirmed chat reaches
            # everyone live even when the first announcement died with a connection.
            await self.wire.send(p.message("chat_ack", message_id=data.get("message_id")))

    async def on_hand(self, msg: p.Hand) -> None:
        refused = await hands.on_hand(self.room, self.participant, msg.participant_id, msg.raised)
        if refused is not None:
            await self.wire.error(*refused)

    async def on_end(self, _: p.End) -> None:
        if self.participant.role != "host":
            await self.wire.error("not_host", "only the host can end the meeting")
            return
        await self.room.end("host_ended")

    async def on_leave(self, _: p.Leave) -> None:
        raise Closed(1000, "left")

    async def close(self, reason: str) -> None:
        await self.room.remove(self.participant, reason=reason)
        extra = {"meeting_id": self.room.meeting_id, "participant_id": self.participant.id, "reason": reason}
        log.info("left", extra=extra)
