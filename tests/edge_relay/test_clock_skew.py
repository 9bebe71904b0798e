"""A relay whose wall clock is wrong: a small skew is tolerated, a large one is seen, reported and avoided.

Real relay processes under Debian's ``faketime`` (libfaketime shifts the wall clock of one process),
joining the session stack's cluster and registry; real join tokens from the API. Ten minutes ahead, a relay
used to refuse every token as expired while the API kept offering it (its heartbeats looked fresh for
ever) and nothing said why; ten minutes behind, it refused them as not yet valid and never joined the
cluster. Loopback is enough here: the network is not what is wrong (tests/regions covers the network).
"""

from __future__ import annotations

import json
import shutil

import httpx
import pytest

from edge_relay.ops.clock import ClockCheck
from local_stack.relays import RelayProcess
from meetup_protocol.metrics import parse
from tests.conftest import Api
from tests.edge_relay.media import wait_until
from tests.edge_relay.test_bad_input import exchange

needs_faketime = pytest.mark.skipif(
    shutil.which("faketime") is None, reason="Debian's faketime is missing (./dev installs it as root)"
)


def skewed_relay(stack, offset: str, region: str) -> RelayProcess:
    relay = RelayProcess(
        region,
        stack.join_public_key,
        env={"FAKETIME_DONT_FAKE_MONOTONIC": "1"},  # only the wall clock is wrong, as on a real host
        command_prefix=["faketime", "-f", offset],
    )
    relay.start()
    return relay


def metrics(relay: RelayProcess) -> dict[str, float]:
    return parse(httpx.get(f"{relay.http_url}/metrics", timeout=5).text)


def join_frame(token: str) -> str:
    return json.dumps({"type": "join", "token": token, "protocol": 1})


@needs_faketime
@pytest.mark.parametrize(
    ("offset", "refusal"), [("+600s", "token_expired"), ("-600s", "token_not_yet_valid")]
)
async def test_a_relay_ten_minutes_off_is_seen_reported_and_not_offered(
    api: Api, stack, offset: str, refusal: str
) -> None:
    relay = skewed_relay(stack, offset, f"skewed{offset[0]}")
    try:
        meeting, host, guests = api.joined_meeting(3)
        for user in (host, *guests):  # three people try it (ahead needs more than one word for it)
            token = api.join(meeting, user).json()["join_token"]
            replies, code = await exchange(relay.url, join_frame(token))
            assert replies[0]["code"] == refusal and code == 4401, replies
        # The API's tokens and the other relays' gossip both say it: unhealthy, and by how much.
        assert await wait_until(lambda: metrics(relay).get("relay_clock_skewed") == 1, 15), metrics(relay)
        sign = -1 if offset.startswith("+") else 1  # the others' clocks minus ours
        assert abs(metrics(relay)["relay_clock_offset_seconds"] - sign * 600) < 10, metrics(relay)
        for path in ("/healthz", "/livez"):  # not ready, and not alive: the orchestrator replaces it
            health = httpx.get(f"{relay.http_url}{path}", timeout=5)
            assert health.status_code == 503 and health.json()["status"] == "clock_skew", path
        # The API no longer offers it (it registers as taking no joins; and a heartbeat from the future
        # is not fresh).
        offered = [r["url"] for r in api.join(meeting, host).json()["relays"]]
        assert relay.url not in offered, offered
        # The healthy relays did not take one wrong peer for their own skew.
        for other in stack.relays:
            if other.proc is not None and other.proc.poll() is None:
                assert metrics(other).get("relay_clock_skewed", 0) == 0
    finally:
        relay.stop()


@needs_faketime
@pytest.mark.parametrize("offset", ["+20s", "-20s"])
async def test_a_small_skew_is_tolerated(api: Api, stack, offset: str) -> None:
    relay = skewed_relay(stack, offset, f"near{offset[0]}")
    try:
        meeting, host, _ = api.joined_meeting(0)
        token = api.join(meeting, host).json()["join_token"]
        replies, _ = await exchange(relay.url, join_frame(token))
        assert replies[0]["type"] == "welcome", replies
        assert httpx.get(f"{relay.http_url}/healthz", timeout=5).status_code == 200
        assert httpx.get(f"{relay.http_url}/livez", timeout=5).status_code == 200
        assert metrics(relay).get("relay_clock_skewed") == 0
    finally:
        relay.stop()


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_wrong_peer_does_not_make_the_others_think_they_are_wrong() -> None:
    clock = ClockCheck(bound_s=30, clock=FakeMonotonic())
    clock.observe_peer("healthy", 0.01)
    clock.observe_peer("ten-minutes-ahead", 600)
    assert not clock.skewed and clock.offset_s == pytest.approx(0.01)
    clock.observe_peer("another-healthy", -0.02)
    assert not clock.skewed


def test_old_tokens_alone_cannot_make_a_relay_think_it_is_ahead() -> None:
    clock = ClockCheck(bound_s=30, clock=FakeMonotonic())
    for _ in range(10):
        clock.observe_api(-3600, "u_attacker")  # an hour-old token, presented again and again
    assert not clock.skewed
    clock.observe_api(-0.5, "u_honest")  # a fresh token: the latest issue time is the best estimate
    assert clock.offset_s == pytest.approx(-0.5)


def test_a_token_from_the_future_is_enough_and_observations_expire() -> None:
    mono = FakeMonotonic()
    clock = ClockCheck(bound_s=30, clock=mono)
    clock.observe_api(600, "u_one")  # nobody can sign a token in the future but the API
    assert clock.skewed
    mono.now += 1000  # the clock was fixed long ago: old evidence is forgotten
    assert not clock.skewed and clock.offset_s is None
