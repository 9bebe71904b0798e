"""The SDK's API client against the local stack: token refresh, typed errors, safe retries."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlparse

import jwt
import pytest

from client_sdk import errors
from client_sdk.client import Client, new_idempotency_key
from local_stack.aws import free_port
from tests.conftest import Api, User
from tests.tcp_proxies import AnswerLosingProxy


def sdk(stack, user: User | None = None, base_url: str | None = None) -> Client:
    return Client(
        base_url or stack.api_url,
        access_token=user.access_token if user else None,
        refresh_token=user.refresh_token if user else None,
    )


def _expired_token(stack, user: User) -> str:
    now = int(time.time())
    return jwt.encode(
        {
            "iss": "meetup-edge",
            "aud": "meetup-api",
            "sub": user.user_id,
            "typ": "access",
            "iat": now - 60,
            "exp": now - 1,
        },
        stack.env["MEETUP_JWT_SECRET"],
        algorithm="HS256",
    )


async def test_an_expired_access_token_is_refreshed_transparently(api: Api, stack) -> None:
    user = api.new_user()
    expired = _expired_token(stack, user)
    async with Client(stack.api_url, access_token=expired, refresh_token=user.refresh_token) as client:
        me = await client.me()
        assert me.user_id == user.user_id
        assert client.access_token != expired and client.refresh_token != user.refresh_token


async def test_concurrent_calls_refresh_once(api: Api, stack) -> None:
    """Two refreshes with one token would be a reuse, and the API would revoke the login."""
    user = api.new_user()
    expired = _expired_token(stack, user)
    async with Client(stack.api_url, access_token=expired, refresh_token=user.refresh_token) as client:
        answers = await asyncio.gather(*(client.me() for _ in range(4)))
        assert {me.user_id for me in answers} == {user.user_id}
        await client.refresh()  # the login is still alive


async def test_failures_raise_typed_exceptions(api: Api, stack) -> None:
    meeting, host, (guest,) = api.joined_meeting(1, max_participants=2)
    mid = meeting["meeting_id"]
    async with sdk(stack, api.new_user()) as stranger, sdk(stack, guest) as g, sdk(stack, host) as h:
        with pytest.raises(errors.WrongPasscode):
            await stranger.join_meeting(mid, "WRONG")
        with pytest.raises(errors.MeetingNotFound) as missing:  # answered like a wrong passcode
            await stranger.join_meeting("1000000000", meeting["passcode"])
        assert isinstance(missing.value, errors.WrongMeetingOrPasscode) and missing.value.status == 403
        with pytest.raises(errors.MeetingFull):
            await stranger.join_meeting(mid, meeting["passcode"])
        with pytest.raises(errors.MeetingNotFound):
            await stranger.get_meeting(mid)
        with pytest.raises(errors.Forbidden) as forbidden:
            await g.end_meeting(mid)
        assert forbidden.value.code == "not_host" and forbidden.value.status == 403
        await h.end_meeting(mid)
        with pytest.raises(errors.MeetingEnded):
            await g.send_chat(mid, "hello?")
        with pytest.raises(errors.InvalidRequest):
            await h.create_meeting("x", max_participants=1)
    async with sdk(stack) as anonymous:
        with pytest.raises(errors.AuthError):
            await anonymous.login("nobody@example.com", "whatever")
        with pytest.raises(errors.AuthError):
            await anonymous.me()


async def test_rate_limits_carry_retry_after(api_from_new_ip: Api, stack) -> None:
    api = api_from_new_ip
    user = api.new_user()
    for _ in range(10):
        api.post("/auth/login", json={"email": user.email, "password": "wrong"})
    async with sdk(stack) as client:
        with pytest.raises(errors.RateLimited) as limited:
            await client.login(user.email, user.password)
    assert 0 < limited.value.retry_after <= 300


async def test_an_unreachable_api_is_a_connection_error() -> None:
    async with Client(f"http://127.0.0.1:{free_port()}", retries=1) as client:
        with pytest.raises(errors.ConnectionFailed):
            await client.login("a@b.cd", "password")


async def test_a_lost_answer_is_retried_and_the_message_stored_once(api: Api, stack) -> None:
    """The request reaches the API but its answer is lost: the retry, with the same key, lands once."""
    meeting, host, _ = api.joined_meeting(0)
    upstream = urlparse(stack.api_url)
    async with AnswerLosingProxy(upstream.hostname or "", upstream.port or 0, lose=1).running() as proxy:
        async with sdk(stack, host, base_url=f"http://127.0.0.1:{proxy.port}") as client:
            sent = await client.send_chat(
                meeting["meeting_id"], "exactly once", idempotency_key=new_idempotency_key()
            )
        assert proxy.connections == 2
    texts = [m["text"] for m in api.get(f"/meetings/{meeting['meeting_id']}/chat", host).json()["items"]]
    assert texts == ["exactly once"] and sent.text == "exactly once"


async def test_chat_history_iterates_every_page(api: Api, stack) -> None:
    meeting, host, _ = api.joined_meeting(0)
    async with sdk(stack, host) as client:
        for i in range(120):
            await client.send_chat(meeting["meeting_id"], f"m{i}")
        texts = [m.text async for m in client.chat_history(meeting["meeting_id"])]
    assert sorted(texts) == sorted(f"m{i}" for i in range(120))
