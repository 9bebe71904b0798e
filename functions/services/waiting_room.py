"""The waiting room: guests who passed the passcode wait until a host or co-host admits or denies them.

The entries live on the meeting item (a small JSON map, at most ``MAX_WAITING``), not in the participants
table: a waiting guest is no member yet (it sees no chat, no participants, no recordings). Each entry is
keyed by user and holds the participant id the guest will have once admitted, so hosts address it like
any participant. Writes are optimistic (conditional on the map as read), retried on a race.

States: ``waiting`` -> ``admitted`` (its next join gets a token without the passcode) or ``denied`` (its
next join is told so once; after that it must bring the passcode and wait again).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from pynamodb.exceptions import UpdateError

from functions.core.errors import ApiError
from functions.models import MeetingModel

MAX_WAITING = 50
Entries = dict[str, dict[str, Any]]  # user id -> {participant_id, display_name, state, since}


def entries(meeting: MeetingModel) -> Entries:
    try:
        value = json.loads(meeting.waiting or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def change(meeting: MeetingModel, edit: Callable[[Entries], Any]) -> Any:
    """Apply ``edit`` to the meeting's entries (it returns what the caller wants back), atomically."""
    for _ in range(5):
        old = meeting.waiting
        current = entries(meeting)
        result = edit(current)
        condition = MeetingModel.waiting.does_not_exist() if old is None else MeetingModel.waiting == old
        try:
            meeting.update(actions=[MeetingModel.waiting.set(json.dumps(current))], condition=condition)
            return result
        except UpdateError:
            meeting.refresh(consistent_read=True)
    raise ApiError(409, "join_conflict", "the waiting room changed meanwhile; try again")


def knock(meeting: MeetingModel, user_id: str, display_name: str) -> tuple[str, str]:
    """The caller's (state, participant id), entering the waiting room if it is not in it yet."""

    def edit(current: Entries) -> tuple[str, str]:
        entry = current.get(user_id)
        if entry is None:
            if sum(e.get("state") == "waiting" for e in current.values()) >= MAX_WAITING:
                raise ApiError(409, "waiting_room_full", "too many are waiting already; try later")
            entry = {"participant_id": f"p_{secrets.token_hex(8)}", "state": "waiting", "since": time.time()}
            current[user_id] = entry
        entry["display_name"] = display_name
        state = str(entry["state"])
        if state != "waiting":
            del current[user_id]  # admitted: admitted now; denied: told now, then it must knock again
        return state, str(entry["participant_id"])

    result: tuple[str, str] = change(meeting, edit)
    return result


def decide(meeting: MeetingModel, participant_id: str, state: str) -> str:
    """A host admits or denies a waiting guest; returns its display name (404 if nobody such waits)."""

    def edit(current: Entries) -> str:
        for entry in current.values():
            if entry.get("participant_id") == participant_id and entry.get("state") == "waiting":
                entry["state"] = state
                return str(entry.get("display_name", ""))
        raise ApiError(404, "participant_not_found", "nobody with this id is waiting")

    result: str = change(meeting, edit)
    return result
