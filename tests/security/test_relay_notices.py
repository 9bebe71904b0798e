"""What the API decides reaches the relays, and the relays carry only what the API accepted.

Over the real stack: the API under uvicorn, two clustered relay processes, real WebSockets and WebRTC.

- Ending a meeting through the API (no relay message from the host) ends it on every relay, and a join
  token issued before the end is refused there, also by a relay that joins the cluster only afterwards.
- Leaving through the API closes the participant's relay session (told ``removed``) and voids the join
  tokens issued before the leave; a new join through the API is admitted again.
- A relay fans out chat and reactions only from the API's signed notices: no text of the sender's own,
  no id of its choosing, no other participant's notice, each message once.
- ``POST /notices`` refuses whatever is not a pushed notice signed by the API.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from functions.models import RelayModel
from local_stack.relays import RelayProcess
from meetup_protocol.tokens import generate_join_keypair, issue_notice, load_private_key
from tests.conftest import Api
from tests.edge_relay.media import wait_until
from tests.edge_relay.test_bad_input import exchange
from tests.edge_relay.test_cascade import join_on


def running(stack) -> list:
    """The session stack's relays still up (a scale-in test stops one it added)."""
    return [r for r in stack.relays if r.proc is not None and r.proc.poll() is None]


def join_frame(token: str) -> str:
    return json.dumps({"type": "join", "token": token, "protocol": 1})


def errors(peer) -> set[str]:
    return {e.data.get("code") for e in peer.events if e.type == "error"}


async def test_end_through_the_api_reaches_every_relay_and_voids_earlier_tokens(api: Api, stack) -> None:
    meeting, host, (near_guest, far_guest, absent) = api.joined_meeting(3)
    mid = meeting["meeting_id"]
    near = await join_on(stack, near_guest, meeting, "local", video=False)
    far = await join_on(stack, far_guest, meeting, "eu-west-1", video=False)
    early_token = api.join(meeting, absent).json()["join_token"]  # issued before the end, unused
    try:
        # The host never connects to a relay: only the API can tell them.
        r = api.post(f"/meetings/{mid}/end", host)
        assert r.status_code == 200 and r.json()["status"] == "ended"
        for peer in (near, far):
            assert await wait_until(lambda p=peer: "meeting_ended" in p.event_types(), 5), peer.event_types()
            assert await wait_until(lambda p=peer: p.conn.closed.is_set(), 5)
        for relay in running(stack):
            replies, code = await exchange(relay.url, join_frame(early_token))
            assert replies[0] == {
                "type": "error",
                "code": "meeting_ended",
                "message": "the meeting has ended",
            }
            assert code == 4403
    finally:
        await near.close(leave=False)
        await far.close(leave=False)


async def test_leave_through_the_api_closes_the_session_and_voids_earlier_tokens(api: Api, stack) -> None:
    meeting, _, (guest, watcher) = api.joined_meeting(2)
    mid = meeting["meeting_id"]
    first_token = api.join(meeting, guest).json()["join_token"]
    peer = await join_on(stack, guest, meeting, "local", video=False)
    other = await join_on(stack, watcher, meeting, "local", video=False)
    try:
        assert api.post(f"/meetings/{mid}/leave", guest).status_code == 204
        assert await wait_until(lambda: "removed" in peer.event_types(), 5), peer.event_types()
        assert await wait_until(lambda: peer.conn.closed.is_set(), 5)
        assert peer.conn.close_reason == "left"
        left = [e for e in other.events if e.type == "participant_left"]
        assert await wait_until(lambda: any(e.type == "participant_left" for e in other.events), 5), left
        for relay in running(stack):  # the near one was told by the API, the far one too (and by gossip)
            for token in (first_token, peer.conn.token):
                replies, code = await exchange(relay.url, join_frame(token))
                assert replies[0]["code"] == "token_revoked" and code == 4403, replies
        # Joining again through the API makes a new admission, whose token the relays admit.
        again = api.join(meeting, guest)
        assert again.status_code == 200
        replies, _ = await exchange(stack.relays[0].url, join_frame(again.json()["join_token"]))
        assert replies[0]["type"] == "welcome"
    finally:
        await peer.close(leave=False)
        await other.close()


async def test_a_relay_that_joins_later_learns_ends_and_revocations_from_the_cluster(api: Api, stack) -> None:
    meeting, _, (leaver, staying) = api.joined_meeting(2)
    leaver_token = api.join(meeting, leaver).json()["join_token"]
    assert api.post(f"/meetings/{meeting['meeting_id']}/leave", leaver).status_code == 204
    staying_token = api.join(meeting, staying).json()["join_token"]
    ended, ended_host, (early,) = api.joined_meeting(1)
    early_token = api.join(ended, early).json()["join_token"]
    assert api.post(f"/meetings/{ended['meeting_id']}/end", ended_host).status_code == 200

    # A relay the API does not know (not registered, so never pushed to), seeded with the cluster's.
    seeds = ",".join(r.gossip for r in RelayModel.scan(consistent_read=True) if r.gossip)
    late = RelayProcess(
        "late",
        stack.join_public_key,
        env={"MEETUP_RELAY_REGISTRY": "false", "MEETUP_RELAY_CLUSTER_SEEDS": seeds},
    )
    late.start()
    try:

        async def first_reply(token: str) -> dict:
            replies, _ = await exchange(late.url, join_frame(token))
            return replies[0]

        learnt = False
        for _ in range(40):  # the cluster's push-pull brings the state within a few seconds
            if (await first_reply(early_token)).get("code") == "meeting_ended" and (
                await first_reply(leaver_token)
            ).get("code") == "token_revoked":
                learnt = True
                break
            await asyncio.sleep(0.25)
        assert learnt
        # Someone who did not leave, in a meeting that did not end, is admitted there.
        assert (await first_reply(staying_token))["type"] == "welcome"
    finally:
        late.stop()


async def test_relay_chat_and_reactions_carry_only_what_the_api_stored(api: Api, stack) -> None:
    meeting, host, (guest,) = api.joined_meeting(1)
    mid = meeting["meeting_id"]
    sender = await join_on(stack, guest, meeting, "local", video=False)
    reader = await join_on(stack, host, meeting, "local", video=False)
    try:
        send = sender.send_raw
        # The old, unverifiable forms: text and an id of the sender's choosing, any emoji.
        await send({"type": "chat", "message_id": "fake", "text": "I am the host"})
        await send({"type": "reaction", "emoji": "🖕"})
        # A notice signed with another key.
        other_key = load_private_key(generate_join_keypair()[0])
        forged = issue_notice(
            "chat",
            mid,
            {"participant_id": sender.conn.participant_id, "message_id": "x", "text": "forged"},
            other_key,
            60,
        )
        await send({"type": "chat", "notice": forged})
        # Someone else's stored message, announced by the guest.
        theirs = api.post(
            f"/meetings/{mid}/chat", host, json={"text": "host's words", "idempotency_key": "host-msg-1"}
        )
        assert theirs.status_code == 201
        await send({"type": "chat", "notice": theirs.json()["relay_notice"]})
        # A reaction notice handed in as chat.
        reaction = api.post(
            f"/meetings/{mid}/reactions", guest, json={"emoji": "🎉", "idempotency_key": "guest-re-1"}
        )
        await send({"type": "chat", "notice": reaction.json()["relay_notice"]})
        assert await wait_until(
            lambda: {"invalid_message", "token_invalid", "not_allowed"} <= errors(sender), 5
        ), errors(sender)
        # A stored reaction, its notice replayed: once. Then the real message, announced twice (an
        # outbox retry, or a replay): delivered once, as stored.
        await send({"type": "reaction", "notice": reaction.json()["relay_notice"]})
        await send({"type": "reaction", "notice": reaction.json()["relay_notice"]})
        stored = api.post(
            f"/meetings/{mid}/chat",
            guest,
            json={"text": "hello [b]all[/b]", "idempotency_key": "guest-msg-1"},
        )
        body = stored.json()
        await send({"type": "chat", "notice": body["relay_notice"]})
        assert await wait_until(lambda: {"chat", "reaction"} <= set(reader.event_types()), 5)
        await send({"type": "ping"})  # in order behind everything above: its pong means all was sent
        assert await wait_until(lambda: "pong" in sender.event_types(), 5)
        await asyncio.sleep(0.5)  # and a moment for the reader to take in a duplicate, were there one
        chats = [e.data for e in reader.events if e.type == "chat"]
        assert len(chats) == 1, chats
        assert chats[0]["message_id"] == body["message_id"] and chats[0]["text"] == "hello [b]all[/b]"
        assert (
            chats[0]["participant_id"] == sender.conn.participant_id
            and chats[0]["name"] == guest.display_name
        )
        reactions = [e.data for e in reader.events if e.type == "reaction"]
        assert [r["emoji"] for r in reactions] == ["🎉"]
        assert not sender.conn.closed.is_set()
    finally:
        await sender.close()
        await reader.close()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"not json", 400, "malformed_json"),
        (b"[" * 5_000, 400, "too_deep"),
        (b'{"notice": 5}', 400, "invalid_message"),
        (b'{"notice": "a.b.c"}', 401, "token_invalid"),
        (b"x" * 20_000, 413, "too_large"),
    ],
)
def test_notices_endpoint_refuses_what_the_api_did_not_sign(
    stack, body: bytes, status: int, code: str
) -> None:
    r = httpx.post(f"{stack.relays[0].http_url}/notices", content=body)
    assert r.status_code == status and r.json()["error"]["code"] == code, r.text


def test_notices_endpoint_refuses_forged_misused_and_join_tokens(api: Api, stack) -> None:
    meeting, host, (guest,) = api.joined_meeting(1)
    mid = meeting["meeting_id"]
    url = f"{stack.relays[0].http_url}/notices"
    other_key = load_private_key(generate_join_keypair()[0])
    forged_end = issue_notice("meeting_ended", mid, {"reason": "host_ended"}, other_key, 60)
    join_token = api.join(meeting, guest).json()["join_token"]
    chat = api.post(f"/meetings/{mid}/chat", guest, json={"text": "hi", "idempotency_key": "notice-test-1"})
    for token, status, code in [
        (forged_end, 401, "token_invalid"),
        (join_token, 401, "token_invalid"),  # a join token is no notice
        (chat.json()["relay_notice"], 403, "not_allowed"),  # chat is carried by its sender
    ]:
        r = httpx.post(url, json={"notice": token})
        assert r.status_code == status and r.json()["error"]["code"] == code, r.text
    # None of that ended the meeting: its participants still get in.
    assert api.get(f"/meetings/{mid}", host).json()["status"] == "active"
