"""Unit tests of client_sdk.relay_select: probe each candidate relay's /healthz, rank by measured RTT.

``probe`` is given an ``httpx.AsyncClient`` over ``httpx.MockTransport``; ``rank_relays`` makes its own
client, so it probes tiny HTTP servers on loopback sockets (one per "relay", each with a behaviour: answer
after a delay, say it is draining, hang, hang up, flap). Nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from client_sdk import relay_select
from client_sdk.relay_select import Candidate, health_url, probe, rank_relays

# ------------------------------------------------------------------------------------------ health_url


@pytest.mark.parametrize(
    "relay, health",
    [
        ("ws://127.0.0.1:7000/ws", "http://127.0.0.1:7000/healthz"),
        ("wss://relay.example/ws", "https://relay.example/healthz"),
        ("wss://relay.example:8443/deep/ws?token=secret#frag", "https://relay.example:8443/healthz"),
        ("http://relay.example/ws", "http://relay.example/healthz"),
    ],
)
def test_health_url(relay: str, health: str) -> None:
    assert health_url(relay) == health  # the query (a join token, say) never travels to /healthz


# --------------------------------------------------------------------------------- probe, mocked HTTP


def mock_client(handler: Callable[[httpx.Request], object]) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))  # type: ignore[arg-type]


async def test_probe_is_the_median_of_its_samples_on_healthz() -> None:
    delays = iter([0.03, 0.001, 0.06])
    seen: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        await asyncio.sleep(next(delays))
        return httpx.Response(200, json={"status": "ok"})

    async with mock_client(handler) as http:
        rtt = await probe(http, "ws://relay.test:7000/ws", samples=3)
    assert seen == ["http://relay.test:7000/healthz"] * 3
    assert rtt is not None and 25 <= rtt < 55  # the median sample (30 ms), not the 1 ms nor the 60 ms


@pytest.mark.parametrize("status", [503, 500, 404, 301, 204])
async def test_probe_of_a_relay_that_does_not_answer_200_is_none(status: int) -> None:
    async with mock_client(lambda request: httpx.Response(status)) as http:
        assert await probe(http, "ws://relay.test/ws") is None


async def test_probe_of_a_relay_that_turns_draining_between_samples_is_none() -> None:
    """A relay cannot win with one good answer: every sample must be a 200."""
    answers = iter([200, 200, 503])
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(next(answers))

    async with mock_client(handler) as http:
        assert await probe(http, "ws://relay.test/ws", samples=3) is None
    assert len(calls) == 3


@pytest.mark.parametrize(
    "error", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("garbage")]
)
async def test_probe_of_an_unreachable_relay_is_none(error: Exception) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    async with mock_client(handler) as http:
        assert await probe(http, "ws://relay.test/ws") is None


async def test_probe_passes_its_timeout_to_each_request() -> None:
    timeouts: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        timeouts.append(request.extensions["timeout"])
        return httpx.Response(200)

    async with mock_client(handler) as http:
        assert await probe(http, "ws://relay.test/ws", samples=2, timeout_s=0.25) is not None
    assert timeouts == [{"connect": 0.25, "read": 0.25, "write": 0.25, "pool": 0.25}] * 2


@pytest.mark.parametrize(
    "url",
    [
        "ws://127.0.0.1:99999/ws",  # port out of range
        "ws://[::1/ws",  # broken IPv6 literal
        "ws:///ws",  # no host
        "tcp://relay.test/ws",  # no HTTP behind it
    ],
)
async def test_probe_of_a_malformed_relay_url_is_none_not_an_error(url: str) -> None:
    async with httpx.AsyncClient() as http:
        assert await probe(http, url, timeout_s=0.5) is None


# ---------------------------------------------------------------------- rank_relays, loopback servers


class Relay:
    """One loopback HTTP server answering GET /healthz per ``behaviour``:
    ``ok`` (after ``delay_s``), ``draining`` (503), ``hang`` (reads, never answers), ``hangup`` (closes)."""

    def __init__(self, behaviour: str = "ok", delay_s: float = 0.0) -> None:
        self.behaviour, self.delay_s = behaviour, delay_s
        self.requests = 0
        self.server: asyncio.Server | None = None
        self.url = ""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"GET /healthz HTTP/1.1\r\n")
                self.requests += 1
                if self.behaviour == "hangup":
                    break
                if self.behaviour == "hang":
                    await asyncio.sleep(3600)
                await asyncio.sleep(self.delay_s)
                status = b"503 Service Unavailable" if self.behaviour == "draining" else b"200 OK"
                writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> Relay:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/ws"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.server.wait_closed(), 0.5)


@contextlib.asynccontextmanager
async def relays(*specs: tuple[str, float]) -> AsyncIterator[list[Relay]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(Relay(b, d)) for b, d in specs]


def free_port_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"ws://127.0.0.1:{port}/ws"  # nothing listens there any more: connection refused


async def test_no_candidates_gives_an_empty_ranking() -> None:
    assert await rank_relays([]) == []


async def test_relays_are_ranked_by_measured_rtt_not_by_the_order_given() -> None:
    async with relays(("ok", 0.06), ("ok", 0.0), ("ok", 0.025)) as (far, near, middle):
        ranked = await rank_relays([(far.url, "far"), (near.url, "near"), (middle.url, "middle")])
    assert [c.region for c in ranked] == ["near", "middle", "far"]
    assert all(isinstance(c, Candidate) for c in ranked)
    assert ranked[0].url == near.url and ranked[2].rtt_ms >= 60
    assert (far.requests, near.requests, middle.requests) == (3, 3, 3)


async def test_draining_refusing_hanging_up_and_malformed_relays_are_left_out() -> None:
    async with relays(("ok", 0.0), ("draining", 0.0), ("hangup", 0.0)) as (good, draining, hangup):
        ranked = await rank_relays(
            [
                (draining.url, "draining"),
                (hangup.url, "hangup"),
                (free_port_url(), "refused"),
                ("ws://127.0.0.1:99999/ws", "bad port"),
                ("ws://[::1/ws", "bad url"),
                (good.url, "good"),
            ]
        )
    assert [c.region for c in ranked] == ["good"]


async def test_a_relay_that_does_not_answer_within_the_budget_is_left_out_in_time() -> None:
    async with relays(("ok", 0.0), ("hang", 0.0)) as (good, hanging):
        started = time.perf_counter()
        ranked = await rank_relays([(hanging.url, "hang"), (good.url, "good")], budget_s=0.3)
        elapsed = time.perf_counter() - started
    assert [c.region for c in ranked] == ["good"]
    assert hanging.requests == 1
    assert elapsed < 1.0  # the budget, not the per-request timeout (1.5 s), bounds the wait


async def test_all_unreachable_gives_an_empty_ranking() -> None:
    async with relays(("draining", 0.0)) as (draining,):
        assert await rank_relays([(draining.url, "a"), (free_port_url(), "b")]) == []


async def test_ties_keep_the_order_the_api_ranked_them_in(monkeypatch) -> None:
    measured = {"ws://a/ws": 12.0, "ws://b/ws": 5.0, "ws://c/ws": 12.0, "ws://d/ws": 5.0}

    async def fake_probe(http: httpx.AsyncClient, url: str) -> float | None:
        return measured[url]

    monkeypatch.setattr(relay_select, "probe", fake_probe)
    ranked = await rank_relays([(url, url[5]) for url in measured])
    assert [c.region for c in ranked] == ["b", "d", "a", "c"]  # stable: API order among equals


async def test_a_probe_that_raises_costs_only_its_own_candidate(monkeypatch) -> None:
    async def lying_probe(http: httpx.AsyncClient, url: str) -> float | None:
        if "liar" in url:
            raise RuntimeError("the probe itself failed")
        return 1.0

    monkeypatch.setattr(relay_select, "probe", lying_probe)
    ranked = await rank_relays([("ws://liar/ws", "x"), ("ws://honest/ws", "y")])
    assert [c.region for c in ranked] == ["y"]
