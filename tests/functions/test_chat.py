"""Chat and reactions over real HTTP: idempotent posts (also concurrent), paging, access rules."""

from __future__ import annotations

import base64
import json
import secrets
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import Api, error_code


def key() -> str:
    return secrets.token_urlsafe(12)


def test_post_and_list_messages_in_order(api: Api) -> None:
    meeting, host, (guest,) = api.joined_meeting(1)
    mid = meeting["meeting_id"]
    for user, text in ((host, "hello"), (guest, "hi!"), (host, "  let's start  ")):
        r = api.post(f"/meetings/{mid}/chat", user, json={"text": text, "idempotency_key": key()})
        assert r.status_code == 201, r.text
    page = api.get(f"/meetings/{mid}/chat", guest).json()
    assert [(m["sender_name"], m["text"]) for m in page["items"]] == [
        ("Host", "hello"),
        ("Guest 0", "hi!"),
        ("Host", "let's start"),
    ]
    assert page["has_more"] is False


def test_a_retried_post_is_stored_once(api: Api) -> None:
    meeting, host, _ = api.joined_meeting(0)
    mid, k = meeting["meeting_id"], key()
    first = api.post(f"/meetings/{mid}/chat", host, json={"text": "once", "idempotency_key": k})
    second = api.post(f"/meetings/{mid}/chat", host, json={"text": "once", "idempotency_key": k})
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json() == second.json()
    assert len(api.get(f"/meetings/{mid}/chat", host).json()["items"]) == 1


def test_the_same_key_posted_concurrently_stores_one_message(api: Api) -> None:
    meeting, host, _ = api.joined_meeting(0)
    mid, k = meeting["meeting_id"], key()
    with ThreadPoolExecutor(8) as pool:
        responses = list(
            pool.map(
                lambda _: api.post(
                    f"/meetings/{mid}/chat", host, json={"text": "race", "idempotency_key": k}
                ),
                range(8),
            )
        )
    assert sorted(r.status_code for r in responses) == [200] * 7 + [201]
    assert len({r.json()["message_id"] for r in responses}) == 1
    assert len(api.get(f"/meetings/{mid}/chat", host).json()["items"]) == 1


def test_keys_are_per_sender_and_reuse_with_other_text_conflicts(api: Api) -> None:
    meeting, host, (guest,) = api.joined_meeting(1)
    mid, k = meeting["meeting_id"], key()
    assert (
        api.post(f"/meetings/{mid}/chat", host, json={"text": "a", "idempotency_key": k}).status_code == 201
    )
    assert (
        api.post(f"/meetings/{mid}/chat", guest, json={"text": "a", "idempotency_key": k}).status_code == 201
    )
    r = api.post(f"/meetings/{mid}/chat", host, json={"text": "b", "idempotency_key": k})
    assert r.status_code == 409 and error_code(r) == "idempotency_key_reused"


def test_history_pages_with_a_cursor_and_the_cursor_polls_for_new_messages(api: Api) -> None:
    meeting, host, _ = api.joined_meeting(0)
    mid = meeting["meeting_id"]
    sent = [f"message {i}" for i in range(23)]
    for text in sent:
        api.post(f"/meetings/{mid}/chat", host, json={"text": text, "idempotency_key": key()})
    seen, cursor = [], None
    while True:
        params = {"limit": 10, **({"cursor": cursor} if cursor else {})}
        page = api.get(f"/meetings/{mid}/chat", host, params=params).json()
        seen += [m["text"] for m in page["items"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert sorted(seen) == sorted(sent) and len(seen) == 23
    empty = api.get(f"/meetings/{mid}/chat", host, params={"cursor": cursor}).json()
    assert empty["items"] == [] and empty["next_cursor"] == cursor
    api.post(f"/meetings/{mid}/chat", host, json={"text": "late", "idempotency_key": key()})
    newer = api.get(f"/meetings/{mid}/chat", host, params={"cursor": cursor}).json()
    assert [m["text"] for m in newer["items"]] == ["late"]


def test_reactions_from_the_allowed_set(api: Api) -> None:
    meeting, host, (guest,) = api.joined_meeting(1)
    mid = meeting["meeting_id"]
    for emoji in ("👍", "🎉", "❤️"):
        r = api.post(f"/meetings/{mid}/reactions", guest, json={"emoji": emoji, "idempotency_key": key()})
        assert r.status_code == 201
    for bad in ("🍕", "<script>", "", "👍👍"):
        r = api.post(f"/meetings/{mid}/reactions", guest, json={"emoji": bad, "idempotency_key": key()})
        assert r.status_code == 422
    items = api.get(f"/meetings/{mid}/reactions", host).json()["items"]
    assert [i["emoji"] for i in items] == ["👍", "🎉", "❤️"]
    assert api.get(f"/meetings/{mid}/chat", host).json()["items"] == []  # reactions are not messages


def test_only_participants_read_and_write(api: Api) -> None:
    meeting, host, _ = api.joined_meeting(0)
    mid, stranger = meeting["meeting_id"], api.new_user()
    assert error_code(api.get(f"/meetings/{mid}/chat", stranger)) == "meeting_not_found"
    assert error_code(api.get(f"/meetings/{mid}/reactions", stranger)) == "meeting_not_found"
    r = api.post(f"/meetings/{mid}/chat", stranger, json={"text": "hi", "idempotency_key": key()})
    assert error_code(r) == "meeting_not_found"
    assert api.get(f"/meetings/{mid}/chat").status_code == 401


def test_after_the_end_history_stays_readable_but_closed_for_posts(api: Api) -> None:
    meeting, host, (guest,) = api.joined_meeting(1)
    mid = meeting["meeting_id"]
    api.post(f"/meetings/{mid}/chat", guest, json={"text": "bye", "idempotency_key": key()})
    api.post(f"/meetings/{mid}/end", host)
    r = api.post(f"/meetings/{mid}/chat", guest, json={"text": "too late", "idempotency_key": key()})
    assert r.status_code == 410 and error_code(r) == "meeting_ended"
    assert [m["text"] for m in api.get(f"/meetings/{mid}/chat", guest).json()["items"]] == ["bye"]


def _cursor(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 !!",
        _cursor("a string"),
        _cursor({"meeting_id": {"S": "1"}}),
        _cursor({"meeting_id": {"S": "9999999999"}, "item_id": {"S": "x"}, "timeline": {"S": "y"}}),
        _cursor({"meeting_id": {"N": "1"}, "item_id": {"S": "x"}, "timeline": {"S": "y"}}),
    ],
)
def test_forged_cursors_are_refused(api: Api, cursor: str) -> None:
    meeting, host, _ = api.joined_meeting(0)
    r = api.get(f"/meetings/{meeting['meeting_id']}/chat", host, params={"cursor": cursor})
    assert r.status_code == 400 and error_code(r) == "invalid_cursor"


@pytest.mark.parametrize(
    "body",
    [
        {"text": "", "idempotency_key": "abcdefgh"},
        {"text": "   ", "idempotency_key": "abcdefgh"},
        {"text": "x" * 2001, "idempotency_key": "abcdefgh"},
        {"text": "hi", "idempotency_key": "short"},
        {"text": "hi", "idempotency_key": "has spaces in it"},
        {"text": "hi"},
        {"text": 42, "idempotency_key": "abcdefgh"},
    ],
)
def test_invalid_messages_get_422(api: Api, body: dict) -> None:
    meeting, host, _ = api.joined_meeting(0)
    r = api.post(f"/meetings/{meeting['meeting_id']}/chat", host, json=body)
    assert r.status_code == 422
    error_code(r)
