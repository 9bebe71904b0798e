"""Unit tests of client_sdk.outbox: chat and reactions reach the API exactly once, in order, across outages.

Real asyncio, a real ``Outbox``; fakes only at its boundary: an API client whose ``send_chat``/``react``
answer from a script (and, for the HTTP mapping, the SDK's real ``Client`` over ``httpx.MockTransport``),
and the outbox's sleep, so back-off delays are recorded instead of waited for.
"""

from __future__ import annotations

import asyncio
import json
import types
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from client_sdk import outbox as outbox_module
from client_sdk.client import Client
from client_sdk.errors import (
    ConnectionFailed,
    InvalidRequest,
    MeetingEnded,
    MeetupError,
    RateLimited,
    ServerError,
)
from client_sdk.outbox import Outbox, OutboxItem

MEETING = "123-456-789"


class FakeApi:
    """``send_chat`` / ``react`` as the outbox calls them. ``script`` answers each call in turn: an
    exception instance is raised, anything else (or nothing left) means stored."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.calls: list[tuple[str, str, str]] = []  # (kind, body, idempotency key)
        self.stored: dict[str, tuple[str, str]] = {}  # key -> (kind, body): the API's idempotent store
        self.in_flight = 0
        self.max_in_flight = 0
        self.gate: asyncio.Event | None = None  # when set, each call waits for it

    async def _call(self, kind: str, meeting_id: str, body: str, key: str | None) -> Any:
        assert meeting_id == MEETING and key
        self.calls.append((kind, body, key))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            await asyncio.sleep(0)
            answer = self.script.pop(0) if self.script else None
            if isinstance(answer, BaseException):
                raise answer
            self.stored.setdefault(key, (kind, body))
            return {"kind": kind, "body": body, "key": key}
        finally:
            self.in_flight -= 1

    async def send_chat(self, meeting_id: str, text: str, idempotency_key: str | None = None) -> Any:
        return await self._call("chat", meeting_id, text, idempotency_key)

    async def react(self, meeting_id: str, emoji: str, idempotency_key: str | None = None) -> Any:
        return await self._call("reaction", meeting_id, emoji, idempotency_key)


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """The outbox's back-off sleeps, recorded; each only yields to the loop."""
    recorded: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(delay: float, result: Any = None) -> Any:
        recorded.append(delay)
        return await real_sleep(0, result)

    fake = types.ModuleType("asyncio")
    fake.__dict__.update(vars(asyncio))
    fake.sleep = sleep  # type: ignore[attr-defined]
    monkeypatch.setattr(outbox_module, "asyncio", fake)
    return recorded


class Announced:
    def __init__(self) -> None:
        self.items: list[tuple[OutboxItem, Any]] = []

    async def __call__(self, item: OutboxItem, stored: Any) -> None:
        self.items.append((item, stored))


def make(api: Any, on_stored: Callable[..., Any] | None = None, **kw: Any) -> tuple[Outbox, Announced]:
    announced = Announced()
    return Outbox(api, MEETING, on_stored or announced, **kw), announced


async def wait_for(condition: Callable[[], bool], timeout_s: float = 2.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.001)


# ---------------------------------------------------------------------------------- the normal path


async def test_items_are_sent_in_order_one_at_a_time_each_with_its_own_key(sleeps) -> None:
    api = FakeApi()
    outbox, announced = make(api)
    items = [outbox.put("chat", "hello"), outbox.put("reaction", "🎉"), outbox.put("chat", "bye")]
    await outbox.flush(1)
    assert [(k, b) for k, b, _ in api.calls] == [("chat", "hello"), ("reaction", "🎉"), ("chat", "bye")]
    assert [key for *_, key in api.calls] == [i.idempotency_key for i in items]
    assert len({i.idempotency_key for i in items}) == 3
    assert api.max_in_flight == 1
    assert [i.done.result()["body"] for i in items] == ["hello", "🎉", "bye"]
    assert [(i, s["key"]) for i, s in announced.items] == [(i, i.idempotency_key) for i in items]
    assert outbox.pending == [] and all(i.attempts == 1 for i in items)
    assert sleeps == []
    await outbox.close()


async def test_an_idle_outbox_wakes_for_a_new_item(sleeps) -> None:
    api = FakeApi()
    outbox, _ = make(api)
    await asyncio.sleep(0.01)  # the worker parks on an empty queue
    item = outbox.put("chat", "late")
    assert (await asyncio.wait_for(item.done, 1))["body"] == "late"
    await outbox.flush(1)  # nothing left: returns at once
    await outbox.close()


# ------------------------------------------------------------------------------------ failing sends


async def test_transient_failures_retry_with_the_same_key_and_a_growing_capped_backoff(sleeps) -> None:
    failures = [ConnectionFailed("down"), ServerError("500", status=500)] * 4
    api = FakeApi(*failures)
    outbox, announced = make(api, max_backoff_s=1.0)
    item = outbox.put("chat", "through the storm")
    await asyncio.wait_for(item.done, 2)
    assert len(api.calls) == 9 and item.attempts == 9
    assert {key for *_, key in api.calls} == {item.idempotency_key}
    assert len(api.stored) == 1 and len(announced.items) == 1
    assert sleeps == [0.25, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    # a success resets the back-off for the next item
    api.script = [ConnectionFailed("down")]
    await asyncio.wait_for(outbox.put("chat", "next").done, 2)
    assert sleeps[-1] == 0.25
    await outbox.close()


async def test_rate_limited_waits_as_long_as_the_api_says(sleeps) -> None:
    api = FakeApi(RateLimited("slow down", code="rate_limited", status=429, retry_after=7.5))
    outbox, _ = make(api)
    item = outbox.put("reaction", "👍")
    await asyncio.wait_for(item.done, 1)
    assert sleeps == [7.5] and item.attempts == 2
    await outbox.close()


@pytest.mark.parametrize(
    "refusal",
    [MeetingEnded("ended", code="meeting_ended", status=410), InvalidRequest("too long", status=422)],
)
async def test_a_refusal_fails_that_item_only_and_the_queue_moves_on(sleeps, refusal: MeetupError) -> None:
    api = FakeApi(refusal)
    outbox, announced = make(api)
    refused, after = outbox.put("chat", "x" * 10), outbox.put("chat", "after")
    await outbox.flush(1)
    with pytest.raises(type(refusal)):
        refused.done.result()
    assert after.done.result()["body"] == "after"
    assert [i for i, _ in announced.items] == [after]  # only stored items are announced
    assert len(api.calls) == 2 and sleeps == []
    await outbox.close()


async def test_an_unexpected_error_fails_the_item_and_the_outbox_keeps_working(sleeps) -> None:
    """A send that raises something the SDK did not map (a response that does not validate, a bug)
    must not kill the worker: every later item would then wait forever."""
    api = FakeApi(ValueError("response did not validate"))
    outbox, _ = make(api)
    broken, after = outbox.put("chat", "one"), outbox.put("chat", "two")
    await asyncio.wait_for(asyncio.gather(broken.done, after.done, return_exceptions=True), 1)
    assert isinstance(broken.done.exception(), ValueError)
    assert after.done.result()["body"] == "two"
    await outbox.close()


async def test_a_failing_announcement_does_not_stop_the_outbox(sleeps) -> None:
    api = FakeApi()
    seen: list[str] = []

    async def on_stored(item: OutboxItem, stored: Any) -> None:
        seen.append(item.body)
        raise RuntimeError("the UI fell over")

    outbox, _ = make(api, on_stored)
    first, second = outbox.put("chat", "a"), outbox.put("chat", "b")
    await outbox.flush(1)
    assert first.done.result()["body"] == "a" and second.done.result()["body"] == "b"
    assert seen == ["a", "b"]
    await outbox.close()


async def test_a_long_outage_with_many_items_loses_and_duplicates_nothing(sleeps) -> None:
    api = FakeApi(*[ConnectionFailed("offline")] * 50)
    outbox, announced = make(api)
    items = [outbox.put("chat" if i % 3 else "reaction", f"m{i}") for i in range(500)]
    await outbox.flush(5)
    assert all(i.done.result()["body"] == f"m{n}" for n, i in enumerate(items))
    assert [b for _, b, _ in api.calls[50:]] == [f"m{n}" for n in range(500)]
    assert [kb[1] for kb in api.stored.values()] == [f"m{n}" for n in range(500)]
    assert [i.body for i, _ in announced.items] == [f"m{n}" for n in range(500)]
    assert outbox.pending == []
    await outbox.close()


# ---------------------------------------------------------------------------------- flush and close


async def test_flush_waits_for_what_was_queued_before_it_only(sleeps) -> None:
    api = FakeApi()
    api.gate = asyncio.Event()
    outbox, _ = make(api)
    first = outbox.put("chat", "first")
    flushing = asyncio.ensure_future(outbox.flush(1))
    later = outbox.put("chat", "later")
    await asyncio.sleep(0.01)
    assert not flushing.done()
    api.gate.set()
    await flushing
    assert first.done.done()
    await asyncio.wait_for(later.done, 1)
    await outbox.close()


async def test_a_flush_that_times_out_leaves_the_items_to_complete(sleeps) -> None:
    """``flush`` gives up waiting; it must not cancel the items themselves: they are still sent, and
    whoever awaits ``item.done`` gets the stored message, not a CancelledError."""
    api = FakeApi()
    api.gate = asyncio.Event()
    outbox, announced = make(api)
    item = outbox.put("chat", "slow")
    with pytest.raises(TimeoutError):
        await outbox.flush(timeout_s=0.05)
    assert not item.done.cancelled()
    api.gate.set()
    assert (await asyncio.wait_for(item.done, 1))["body"] == "slow"
    assert [i for i, _ in announced.items] == [item]
    await outbox.close()


async def test_close_cancels_what_is_still_pending_and_stops_sending(sleeps) -> None:
    api = FakeApi(*[ConnectionFailed("offline")] * 1000)
    outbox, announced = make(api)
    items = [outbox.put("chat", "a"), outbox.put("chat", "b")]
    await wait_for(lambda: len(api.calls) >= 3)
    await outbox.close()
    assert all(i.done.cancelled() for i in items)
    calls = len(api.calls)
    await asyncio.sleep(0.01)
    assert len(api.calls) == calls and announced.items == []


# ------------------------------------------------------------- through the SDK's real HTTP client


def posted(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "message_id": "m-1",
        "meeting_id": MEETING,
        "sender_id": "u-1",
        "sender_name": "Ann",
        "text": body["text"],
        "idempotency_key": body["idempotency_key"],
        "created_at": datetime(2026, 1, 1, tzinfo=UTC).isoformat(),
        "relay_notice": "notice",
    }


async def client_over(handler: Callable[[httpx.Request], httpx.Response]) -> Client:
    client = Client("http://api.test", access_token="token", retries=0)
    await client._http.aclose()
    client._http = httpx.AsyncClient(base_url=client.base_url, transport=httpx.MockTransport(handler))
    return client


async def test_real_client_503_and_a_dropped_connection_then_stored_once(sleeps) -> None:
    bodies: list[dict[str, Any]] = []
    answers = iter(["503", "drop", "201"])

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        answer = next(answers)
        if answer == "drop":
            raise httpx.ConnectError("connection refused", request=request)
        if answer == "503":
            return httpx.Response(503, json={"error": {"code": "unavailable", "message": "try later"}})
        return httpx.Response(201, json=posted(body))

    client = await client_over(handler)
    outbox, _ = make(client)
    item = outbox.put("chat", "hello")
    stored = await asyncio.wait_for(item.done, 2)
    assert stored.text == "hello" and stored.idempotency_key == item.idempotency_key
    assert [b["idempotency_key"] for b in bodies] == [item.idempotency_key] * 3
    assert sleeps == [0.25, 0.5]
    await outbox.close()
    await client.aclose()


async def test_real_client_meeting_ended_is_a_final_refusal(sleeps) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(410, json={"error": {"code": "meeting_ended", "message": "over"}})

    client = await client_over(handler)
    outbox, _ = make(client)
    item = outbox.put("reaction", "👋")
    await outbox.flush(1)
    assert isinstance(item.done.exception(), MeetingEnded)
    assert sleeps == []
    await outbox.close()
    await client.aclose()
