"""Chat messages and reactions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from meetup_protocol.schemas.base import IdempotencyKey, StrictRequest

ALLOWED_EMOJI = ("👍", "👎", "👏", "🎉", "😂", "😮", "❤️", "🙌", "🤔", "✋")
Emoji = Literal["👍", "👎", "👏", "🎉", "😂", "😮", "❤️", "🙌", "🤔", "✋"]
ChatText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class ChatPost(StrictRequest):
    text: ChatText
    idempotency_key: IdempotencyKey


class ReactionPost(StrictRequest):
    emoji: Emoji
    idempotency_key: IdempotencyKey


class ChatMessageOut(BaseModel):
    message_id: str
    meeting_id: str
    sender_id: str
    sender_name: str
    text: str
    idempotency_key: str
    created_at: datetime


class ReactionOut(BaseModel):
    reaction_id: str
    meeting_id: str
    sender_id: str
    sender_name: str
    emoji: Emoji
    idempotency_key: str
    created_at: datetime


_NOTICE_DOC = (
    "The API's signed notice of this stored item, for the sender to hand to its relay "
    "(`{type: chat|reaction, notice}`): relays fan out only what such a notice says."
)


class ChatMessagePosted(ChatMessageOut):
    relay_notice: str = Field(description=_NOTICE_DOC)


class ReactionPosted(ReactionOut):
    relay_notice: str = Field(description=_NOTICE_DOC)
