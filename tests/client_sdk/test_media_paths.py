"""The SDK's media paths on the local stack (loopback): direct when it works; each TURN path of the join's
ICE servers through the stack's coturn, reported and timed; a refused credential is a TurnRefused within
the paths' bound, never a silent wait. (A client whose UDP is really dropped: tests/regions/test_turn.py.)"""

from __future__ import annotations

import time

import pytest

from client_sdk.media.sources import PatternVideoTrack, ToneAudioTrack
from client_sdk.meeting import MediaPathFailed, Meeting, TurnRefused
from client_sdk.rtc import paths
from local_stack.turn import turnserver_binary
from meetup_protocol.schemas.meetings import IceServer
from meetup_protocol.turn import turn_credentials
from tests.client_sdk.test_meeting import Watcher, new_client
from tests.edge_relay.media import wait_until

needs_coturn = pytest.mark.skipif(
    turnserver_binary() is None, reason="no turnserver (Debian: apt-get install coturn; ./dev installs it)"
)


def test_plans_direct_first_then_one_turn_url_per_transport_in_order() -> None:
    servers = [
        IceServer(
            urls=[
                "turns:t.example:443?transport=tcp",
                "turn:t.example:3478?transport=tcp",
                "turn:t.example:5349?transport=tls",  # aiortc would ignore it: never planned
                "turn:t.example:3478?transport=udp",
                "turn:u.example:3478?transport=udp",  # a second UDP one: aiortc takes one per connection
            ],
            username="1:p",
            credential="c",
        )
    ]
    plans = paths.plan_paths(servers)
    assert [p.path for p in plans] == ["direct", "turn/udp", "turn/tcp", "turn/tls"]
    assert [p.url for p in plans[1:]] == [
        "turn:t.example:3478?transport=udp",
        "turn:t.example:3478?transport=tcp",
        "turns:t.example:443?transport=tcp",
    ]
    direct, *turn = plans
    assert direct.ice_servers == [] and not direct.relay_only
    for plan in turn:  # one TURN server per connection, relay candidates only
        assert plan.relay_only and len(plan.ice_servers) == 1 and plan.ice_servers[0].urls == [plan.url]
        assert (plan.ice_servers[0].username, plan.ice_servers[0].credential) == ("1:p", "c")
    assert [p.path for p in paths.plan_paths([])] == ["direct"]


def test_only_the_last_path_waits_longer_having_nothing_to_fall_back_to() -> None:
    servers = [IceServer(urls=["turn:t.example:3478?transport=udp"], username="1:p", credential="c")]
    direct, turn_udp = paths.plan_paths(servers)
    assert direct.timeout_s == paths.DIRECT_TIMEOUT_S  # UDP may be dropped: TURN comes next
    assert turn_udp.timeout_s == paths.LAST_PATH_TIMEOUT_S
    (alone,) = paths.plan_paths([])  # no TURN offered: a slow direct path beats a failed join
    assert alone.path == "direct" and alone.timeout_s == paths.LAST_PATH_TIMEOUT_S


async def test_a_turn_server_that_does_not_answer_is_unreachable_within_the_probe_bound() -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # bound, never answers
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        plan = paths.plan_paths(
            [IceServer(urls=[f"turn:127.0.0.1:{port}?transport=udp"], username="1:p", credential="c")]
        )[1]
        started = time.monotonic()
        reason = await paths.probe_turn(plan, timeout_s=0.5)
    assert reason is not None and reason.startswith("unreachable") and not paths.refused(reason)
    assert time.monotonic() - started < 2


def without_direct(monkeypatch: pytest.MonkeyPatch, keep: str | None = None) -> None:
    """Plans without the direct path (on loopback it always works), and only ``keep`` of the TURN ones."""
    plan_paths = paths.plan_paths

    def plan(servers: list[IceServer]) -> list[paths.PathPlan]:
        return [p for p in plan_paths(servers) if p.path != "direct" and keep in (None, p.path)]

    import client_sdk.meeting

    monkeypatch.setattr(client_sdk.meeting, "plan_paths", plan)


async def publisher_and_viewer(stack, before_viewer=lambda: None, **viewer_options):  # type: ignore[no-untyped-def]
    """A host publishing a camera (direct), then a guest who publishes a microphone and receives it."""
    host = await new_client(stack.api_url, "Host")
    created = await host.create_meeting("paths")
    a = await Meeting.join(host, created.meeting_id, publish={"camera": PatternVideoTrack(320, 240)})
    assert a.media_path == "direct"
    before_viewer()
    guest = await new_client(stack.api_url, "Guest")
    started = time.monotonic()
    b = await Meeting.join(
        guest,
        created.meeting_id,
        created.passcode,
        publish={"microphone": ToneAudioTrack()},
        **viewer_options,
    )
    return a, b, time.monotonic() - started, (host, guest)


async def test_direct_first_and_reported(stack) -> None:
    a, b, took, clients = await publisher_and_viewer(stack)
    try:
        assert b.media_path == "direct" and b.path_errors == {}
        assert b.connect_time_s is not None and b.connect_time_s <= took
        print(f"direct: connected in {b.connect_time_s:.2f} s")
    finally:
        for m in (b, a):
            await m.leave()
        for c in clients:
            await c.aclose()


@needs_coturn
@pytest.mark.parametrize("path", ["turn/udp", "turn/tcp", "turn/tls"])
async def test_each_turn_path_carries_media(stack, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert stack.turn_server is not None
    # aiortc verifies turns: with the default context: trust the stack's self-signed certificate.
    monkeypatch.setenv("SSL_CERT_FILE", str(stack.turn_server.cert_path))
    a, b, _, clients = await publisher_and_viewer(stack, lambda: without_direct(monkeypatch, keep=path))
    watcher = Watcher(b)
    try:
        assert b.media_path == path
        assert await wait_until(lambda: sum(watcher.frames.values()) >= 10, 15), watcher.frames
        print(f"{path}: connected in {b.connect_time_s:.2f} s")
    finally:
        watcher.stop()
        for m in (b, a):
            await m.leave()
        for c in clients:
            await c.aclose()


@needs_coturn
@pytest.mark.parametrize("kind", ["expired", "forged"])
async def test_a_refused_turn_credential_is_a_clear_error_within_the_bound(
    stack, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert stack.turn_server is not None
    monkeypatch.setenv("SSL_CERT_FILE", str(stack.turn_server.cert_path))  # TLS is refused for its 401 too
    secret = stack.turn_server.secret if kind == "expired" else "not-the-turn-secret"
    expiry = int(time.time()) + (-10 if kind == "expired" else 300)
    username, credential = turn_credentials(secret, "p_test", expiry)
    servers = [IceServer(urls=stack.turn_server.urls, username=username, credential=credential)]
    started = time.monotonic()  # the host joins too: the bound below is generous
    with pytest.raises(TurnRefused) as caught:
        await publisher_and_viewer(stack, lambda: without_direct(monkeypatch), ice_servers=servers)
    took = time.monotonic() - started
    assert caught.value.code == "turn_refused"
    assert set(caught.value.attempts) == {"turn/udp", "turn/tcp", "turn/tls"}
    assert all("401" in why for why in caught.value.attempts.values()), caught.value.attempts
    assert took < paths.PROBE_TIMEOUT_S + 10, took
    print(f"{kind}: TurnRefused after {took:.2f} s: {caught.value}")


async def test_no_path_at_all_is_a_media_path_failure_not_a_hang(
    stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No TURN offered and direct made impossible (a 0 s bound): MediaPathFailed, naming what was tried."""

    def no_direct() -> None:
        monkeypatch.setattr(paths, "DIRECT_TIMEOUT_S", 0.0)
        monkeypatch.setattr(paths, "LAST_PATH_TIMEOUT_S", 0.0)

    started = time.monotonic()
    with pytest.raises(MediaPathFailed) as caught:
        await publisher_and_viewer(stack, no_direct, ice_servers=[])
    assert not isinstance(caught.value, TurnRefused)
    assert list(caught.value.attempts) == ["direct"] and caught.value.code == "media_path_failed"
    assert "offered no TURN" in str(caught.value)
    assert time.monotonic() - started < 20
