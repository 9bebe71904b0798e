"""What the API tells this relay, each fact signed with the join key (meetup_protocol/tokens.py notices).

The API pushes ``meeting_ended``, ``participant_revoked`` (a leave, or a host's removal) and the host
controls ``muted`` and ``role_changed`` (edge_relay/rooms/moderation.py) to every relay it knows
(``POST /notices``, edge_relay/signalling/server.py), and participants carry the ``chat`` and
``reaction`` notices of what the API stored for them (edge_relay/signalling/participant_session.py).
Anyone can send us a notice; only one that verifies is acted on, so the worst a replay can do is repeat
a fact that is true already.
"""

from __future__ import annotations

import logging

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_relay.rooms import moderation
from edge_relay.rooms.directory import Rooms
from meetup_protocol.tokens import Notice, TokenError, verify_notice

log = logging.getLogger("edge_relay.notices")

#: Reasons a meeting may end by notice (anything else becomes "host_ended": the API ends no other way).
END_REASONS = ("host_ended", "duration_reached")
#: Reasons a participant's tokens are revoked (anything else becomes "left").
REVOKE_REASONS = ("left", "removed_by_host")


class NoticeRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def verified(token: str, public_key: Ed25519PublicKey, kind: str | None = None) -> Notice:
    try:
        return verify_notice(token, public_key, kind)
    except TokenError as exc:
        raise NoticeRefused(exc.code, str(exc)) from None


async def apply_pushed(rooms: Rooms, notice: Notice) -> bool:
    """Act on a notice the API pushed; True if it changed anything here."""
    data = notice.data
    if notice.kind == "meeting_ended":
        reason = data.get("reason") if data.get("reason") in END_REASONS else "host_ended"
        changed = await rooms.end_meeting(notice.meeting_id, str(reason))
    elif notice.kind == "participant_revoked":
        participant_id, generation = data.get("participant_id"), data.get("generation")
        if not isinstance(participant_id, str) or type(generation) is not int:
            raise NoticeRefused("token_invalid", "the revocation lacks its participant or generation")
        reason = data.get("reason") if data.get("reason") in REVOKE_REASONS else "left"
        changed = await rooms.revoke(notice.meeting_id, participant_id, generation, reason=str(reason))
    elif notice.kind in ("muted", "role_changed"):
        room = rooms.rooms.get(notice.meeting_id)
        try:
            apply = moderation.apply_mute if notice.kind == "muted" else moderation.apply_roles
            changed = await apply(room, data) > 0  # checked whether or not the meeting is here
        except moderation.BadNotice as exc:
            raise NoticeRefused("token_invalid", str(exc)) from None
    else:
        raise NoticeRefused("not_allowed", f"a {notice.kind} notice is carried by its sender, not pushed")
    log.info("notice", extra={"kind": notice.kind, "meeting_id": notice.meeting_id, "changed": changed})
    return changed
