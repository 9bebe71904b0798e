"""Chat and reactions of a meeting: idempotent posts, cursor-paged history. Participants only."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pynamodb.exceptions import PutError

from functions.core.config import get_settings
from functions.core.deps import CurrentUser, UserId
from functions.core.errors import ApiError, error_responses
from functions.core.observability import count
from functions.core.rate_limit import spend
from functions.core.security import normalize_meeting_id
from functions.models import ChatItemModel
from functions.models.base import utcnow
from functions.services import relay_notices
from functions.services.meetings import meeting_for_member, require_active
from meetup_protocol.schemas.base import MeetingIdPath, Page
from meetup_protocol.schemas.chat import (
    ChatMessageOut,
    ChatMessagePosted,
    ChatPost,
    ReactionOut,
    ReactionPost,
    ReactionPosted,
)

router = APIRouter(prefix="/meetings", tags=["chat"], responses=error_responses(400, 401, 404, 422))

Cursor = Annotated[str | None, Query(max_length=512, description="next_cursor of the previous page")]
Limit = Annotated[int, Query(ge=1, le=100)]


def _encode_cursor(last_key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(last_key, separators=(",", ":")).encode()).decode()


def _decode_cursor(cursor: str | None, meeting_id: str) -> dict[str, Any] | None:
    if cursor is None:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        valid = (
            isinstance(key, dict)
            and set(key) == {"meeting_id", "item_id", "timeline"}
            and key["meeting_id"] == {"S": meeting_id}
            and all(isinstance(v, dict) and isinstance(v.get("S"), str) for v in key.values())
        )
    except (ValueError, binascii.Error, UnicodeDecodeError):
        valid = False
    if not valid:
        raise ApiError(400, "invalid_cursor", "the cursor is not valid for this list")
    return key


def _post(
    meeting_id: str, user: Any, kind: str, body: str, idempotency_key: str
) -> tuple[ChatItemModel, bool, str]:
    """Store the item once per (sender, idempotency key); return it, whether it was new, and the
    sender's participant id (the relay checks that the notice is its sender's)."""
    meeting, participant = meeting_for_member(meeting_id, user.user_id)
    require_active(meeting)
    settings = get_settings()
    limit, what = (
        (settings.chat_posts_per_user, "messages")
        if kind == "msg"
        else (settings.reactions_per_user, "reactions")
    )
    spend(f"{kind}-posts", f"{meeting.meeting_id}#{user.user_id}", limit, what)
    item_hash = hashlib.sha256(f"{user.user_id}\x00{idempotency_key}".encode()).hexdigest()[:32]
    item_id = f"{kind}#{item_hash}"
    now = utcnow()
    item = ChatItemModel(
        meeting.meeting_id,
        item_id,
        timeline=f"{kind}#{int(now.timestamp() * 1000):013d}#{item_hash}",
        kind=kind,
        sender_id=user.user_id,
        sender_name=user.display_name,
        body=body,
        idempotency_key=idempotency_key,
        created_at=now,
    )
    try:
        item.save(condition=ChatItemModel.item_id.does_not_exist())
        return item, True, participant.participant_id
    except PutError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise
    existing = ChatItemModel.get(meeting.meeting_id, item_id, consistent_read=True)
    if existing.body != body:
        raise ApiError(409, "idempotency_key_reused", "this idempotency key was used for different content")
    return existing, False, participant.participant_id


def _page(
    meeting_id: str, user_id: str, kind: str, cursor: str | None, limit: int
) -> tuple[list, str | None, bool]:
    meeting, _ = meeting_for_member(meeting_id, user_id)
    result = ChatItemModel.by_time.query(
        meeting.meeting_id,
        ChatItemModel.timeline.startswith(f"{kind}#"),
        limit=limit,
        last_evaluated_key=_decode_cursor(cursor, meeting.meeting_id),
        consistent_read=True,
    )
    items = list(result)
    if not items:
        return items, cursor, False
    last = items[-1]
    key = {
        "meeting_id": {"S": last.meeting_id},
        "item_id": {"S": last.item_id},
        "timeline": {"S": last.timeline},
    }
    return items, _encode_cursor(key), result.last_evaluated_key is not None


def _message_out(item: ChatItemModel) -> ChatMessageOut:
    return ChatMessageOut(
        message_id=item.item_id.split("#", 1)[1],
        meeting_id=item.meeting_id,
        sender_id=item.sender_id,
        sender_name=item.sender_name,
        text=item.body,
        idempotency_key=item.idempotency_key,
        created_at=item.created_at,
    )


def _reaction_out(item: ChatItemModel) -> ReactionOut:
    return ReactionOut(
        reaction_id=item.item_id.split("#", 1)[1],
        meeting_id=item.meeting_id,
        sender_id=item.sender_id,
        sender_name=item.sender_name,
        emoji=item.body,  # type: ignore[arg-type]
        idempotency_key=item.idempotency_key,
        created_at=item.created_at,
    )


def _store(
    meeting_id: str, user: Any, kind: str, body: str, key: str, response: Response, metric: str
) -> tuple[ChatItemModel, str]:
    """Store once; a retry answers 200 with the first item instead of 201."""
    item, created, participant_id = _post(normalize_meeting_id(meeting_id), user, kind, body, key)
    if created:
        count(metric)
    else:
        response.status_code = 200
    return item, participant_id


_POST_RESPONSES = {
    200: {"model": None, "description": "A retry: the item stored by the first post with this key"},
    **error_responses(409, 410, 429),
}


@router.post("/{meeting_id}/chat", status_code=201, responses=_POST_RESPONSES)
def post_message(
    meeting_id: MeetingIdPath, body: ChatPost, user: CurrentUser, response: Response
) -> ChatMessagePosted:
    item, participant_id = _store(
        meeting_id, user, "msg", body.text, body.idempotency_key, response, "ChatMessages"
    )
    out = _message_out(item)
    notice = {
        "participant_id": participant_id,
        "name": out.sender_name,
        "message_id": out.message_id,
        "text": out.text,
        "created_at": out.created_at.isoformat(),
    }
    return ChatMessagePosted(
        **out.model_dump(), relay_notice=relay_notices.sign("chat", item.meeting_id, notice)
    )


@router.get("/{meeting_id}/chat")
def list_messages(
    meeting_id: MeetingIdPath, user_id: UserId, cursor: Cursor = None, limit: Limit = 50
) -> Page[ChatMessageOut]:
    """Messages oldest first. A client polling for new ones passes the last page's cursor."""
    items, next_cursor, more = _page(normalize_meeting_id(meeting_id), user_id, "msg", cursor, limit)
    return Page[ChatMessageOut](
        items=[_message_out(i) for i in items], next_cursor=next_cursor, has_more=more
    )


@router.post("/{meeting_id}/reactions", status_code=201, responses=_POST_RESPONSES)
def post_reaction(
    meeting_id: MeetingIdPath, body: ReactionPost, user: CurrentUser, response: Response
) -> ReactionPosted:
    item, participant_id = _store(
        meeting_id, user, "react", body.emoji, body.idempotency_key, response, "Reactions"
    )
    out = _reaction_out(item)
    notice = {
        "participant_id": participant_id,
        "name": out.sender_name,
        "emoji": out.emoji,
        "reaction_id": out.reaction_id,  # relays fan each stored reaction out once
    }
    return ReactionPosted(
        **out.model_dump(), relay_notice=relay_notices.sign("reaction", item.meeting_id, notice)
    )


@router.get("/{meeting_id}/reactions")
def list_reactions(
    meeting_id: MeetingIdPath, user_id: UserId, cursor: Cursor = None, limit: Limit = 50
) -> Page[ReactionOut]:
    items, next_cursor, more = _page(normalize_meeting_id(meeting_id), user_id, "react", cursor, limit)
    return Page[ReactionOut](items=[_reaction_out(i) for i in items], next_cursor=next_cursor, has_more=more)
